# SPDX-License-Identifier: Apache-2.0
"""``nova-postcopy-migrate``'s input checks, before any connection.

Nothing here reaches libvirt: a bad value must stop the command before it
connects (the URIs point nowhere; reaching them would be a different
error).
"""

from nova_postcopy.cmd import migrate
from nova_postcopy import conf as np_conf
from nova_postcopy.tests.unit import base

URIS = ['qemu+tcp://192.0.2.1/system', 'qemu+tcp://192.0.2.2/system', 'g']


class TestMigrateInput(base.TestCase):

    def setUp(self):
        super().setUp()
        # main() parses the command line itself, as a console script.
        np_conf.CONF.clear()

    def run_migrate(self, *flags):
        return self.run_main(migrate.main, *(list(flags) + URIS))

    def test_downtime_out_of_range_names_the_range(self):
        for value in ('0', '-5', '3000000'):
            code, _, err = self.run_migrate('--max-downtime-ms', value)
            self.assertEqual(2, code)
            self.assertIn('--max-downtime-ms', err)
            self.assertIn('allowed from 10 to 2000000 ms', err)

    def test_downtime_not_a_number(self):
        code, _, err = self.run_migrate('--max-downtime-ms', 'fast')
        self.assertEqual(2, code)
        self.assertIn("'fast' is not a number", err)

    def test_negative_bandwidth(self):
        code, _, err = self.run_migrate('--bandwidth-mibs', '-1')
        self.assertEqual(2, code)
        self.assertIn('--bandwidth-mibs', err)
        self.assertIn('allowed >= 0', err)

    def test_unknown_policy_lists_the_installed_ones(self):
        code, _, err = self.run_migrate('--policy', 'forcast')
        self.assertEqual(2, code)
        self.assertIn("Unknown switch policy 'forcast'", err)
        self.assertIn('forecast', err)
        self.assertNotIn('cannot connect', err)
