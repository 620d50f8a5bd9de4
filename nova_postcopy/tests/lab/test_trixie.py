# SPDX-License-Identifier: Apache-2.0
"""The same decisions on Debian 13's stack (libvirt 11.3, QEMU 10.0)."""

from nova_postcopy.tests.lab import base
from nova_postcopy.tests.lab import test_migrations


class TestTrixie(test_migrations.SwitchesAfterRealPasses, base.LabTestCase):
    suite = 'trixie'

    def test_plan_says_recovery_is_unavailable_before_migrating(self):
        name = self.quiet_guest()
        code, report, output = self.migrate(
            name, '--dest-check-uri', base.lab('uri', 'B'))
        self.assertEqual(0, code, output)
        self.assertIn('recovery off', report['plan'])
        self.assertIn('11.3.0 crashes the destination libvirtd',
                      report['plan'])
        self.assertIn('will not be resumed', output)
        # Said before any memory moved.
        self.assertLess(output.index('recovery off'),
                        output.index('migrating to'))
