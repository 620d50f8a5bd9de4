# SPDX-License-Identifier: Apache-2.0
from nova_postcopy.conf import opts
from nova_postcopy.conf import postcopy
from nova_postcopy import exception
from nova_postcopy import plugins
from nova_postcopy.tests.unit import base


class TestConfig(base.TestCase):

    def test_defaults_load(self):
        conf = self.conf
        self.assertEqual(['forecast', 'stall', 'timeout'],
                         conf.switch_policies)
        self.assertEqual(150, conf.precopy_timeout_per_gib)
        self.assertEqual('abort', conf.precopy_budget_action)

    def test_negative_budget_names_option_value_and_range(self):
        error = self.assertRaises(exception.InvalidConfig, self.load_config,
                                  'precopy_timeout_per_gib = -5')
        text = str(error)
        self.assertIn('precopy_timeout_per_gib', text)
        self.assertIn('-5', text)
        self.assertIn('allowed >= 0', text)

    def test_not_a_number(self):
        error = self.assertRaises(exception.InvalidConfig, self.load_config,
                                  'max_downtime_ms = fast')
        self.assertIn('max_downtime_ms', str(error))
        self.assertIn("'fast' is not a number", str(error))

    def test_out_of_range_float(self):
        error = self.assertRaises(exception.InvalidConfig, self.load_config,
                                  'stall_margin = 75')
        self.assertIn('from 0.1 to 50', str(error))

    def test_unknown_policy_lists_available(self):
        error = self.assertRaises(exception.InvalidConfig, self.load_config,
                                  'switch_policies = forecast,forcast')
        text = str(error)
        self.assertIn("unknown switch policy 'forcast'", text)
        for name in plugins.available_policies():
            self.assertIn(name, text)

    def test_budget_cannot_be_unbounded(self):
        error = self.assertRaises(
            exception.InvalidConfig, self.load_config,
            'precopy_timeout_per_gib = 0\nprecopy_timeout_max = 0')
        self.assertIn('without a budget', str(error))

    def test_either_budget_may_be_zero(self):
        conf = self.load_config(
            'precopy_timeout_per_gib = 0\nprecopy_timeout_max = 600')
        self.assertEqual(0, conf.precopy_timeout_per_gib)

    def test_budget_action_choices(self):
        error = self.assertRaises(exception.InvalidConfig, self.load_config,
                                  'precopy_budget_action = explode')
        self.assertIn('precopy_budget_action', str(error))

    def test_list_opts_for_the_generator(self):
        listed = opts.list_opts()
        self.assertEqual(1, len(listed))
        group, options = listed[0]
        self.assertEqual('postcopy', group.name)
        self.assertIs(postcopy.ALL_OPTS, options)
        for opt in options:
            self.assertTrue(opt.help.strip(), opt.name)

    def test_empty_policy_list_is_pure_precopy(self):
        conf = self.load_config('switch_policies =')
        self.assertEqual([], conf.switch_policies)
