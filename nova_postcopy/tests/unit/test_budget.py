# SPDX-License-Identifier: Apache-2.0
from nova_postcopy import budget
from nova_postcopy.tests.unit import base


class TestBudget(base.TestCase):

    def test_nova_counts_at_least_two_gib_each(self):
        self.assertEqual(2.0, budget.migration_data_gib(512))
        self.assertEqual(16.0, budget.migration_data_gib(16384))
        self.assertEqual(16.0 + 2.0 + 10.0,
                         budget.migration_data_gib(16384, [0.5, 10]))

    def test_per_gib_and_cap(self):
        self.assertEqual(2400.0, budget.precopy_budget_s(16, 150, 3600))
        self.assertEqual(3600.0, budget.precopy_budget_s(256, 150, 3600))
        self.assertEqual(38400.0, budget.precopy_budget_s(256, 150, 0))
        self.assertEqual(600.0, budget.precopy_budget_s(256, 0, 600))
