# SPDX-License-Identifier: Apache-2.0
"""The same decisions on Debian 13's stack (libvirt 11.3, QEMU 10.0)."""

from nova_postcopy.tests.lab import base
from nova_postcopy.tests.lab import test_migrations


class TestTrixie(base.LabTestCase):
    suite = 'trixie'

    def test_first_pass_waits_for_a_real_pass(self):
        name = self.busy_guest()
        code, report, _ = self.migrate(name, '--policy', 'first_pass')
        self.assertEqual('postcopy', report['result'])
        self.assertIn('1 pass(es) over RAM completed',
                      report['switch_reason'])
        self.assertGreater(report['switch_at_s'], test_migrations.ONE_PASS_S)
        self.assertHealthyOn('B', name)

    def test_busy_guest_switched_by_the_default_chain(self):
        name = self.busy_guest()
        code, report, _ = self.migrate(name)
        self.assertEqual('postcopy', report['result'])
        self.assertEqual('forecast', report['switch_policy'])
        self.assertHealthyOn('B', name)
