# SPDX-License-Identifier: Apache-2.0
"""No guest is lost at the switch to post-copy (issue #11).

The shape that lost 6 guests of 9 on forky (libvirt 12.8, QEMU 11.1, TCG):
512 MiB of RAM, a working set of 256 MiB rewritten at 64 MiB/s, a 16 MiB/s
link, switched by the default chain right after the first pass. With QEMU
11.1 sending, TCG guests switched to post-copy panic or hang on arrival
(through libvirt and with QEMU alone, whatever QEMU receives them). Where
the sending QEMU does that, the plan keeps TCG guests on pre-copy;
everywhere else they are switched and must arrive healthy.
"""

import subprocess

from nova_postcopy.tests.lab import base

# The budget that ends pre-copy when the plan refused post-copy.
BUDGET = 'precopy_timeout_max = 25'


class Issue11Shape(object):

    def issue11_guest(self, pattern='sequential'):
        return self.guest(256, 64, ram_mib=512, pattern=pattern)


class TestSwitchedAndHealthy(Issue11Shape, base.LabTestCase):
    """The default stack (QEMU 10.0 sending) switches the shape safely."""

    def test_issue11_shape_switched_three_times(self):
        for _ in range(3):
            name = self.issue11_guest()
            code, report, output = self.migrate(name, bandwidth_mibs=16)
            self.assertEqual(0, code, output)
            self.assertEqual('postcopy', report['result'], output)
            self.assertNotIn('tcg-postcopy', report['plan'])
            self.assertHealthyOn('B', name)
            base.lab('destroy', name)

    def test_random_writer_switched_after_its_first_pass(self):
        name = self.issue11_guest('random')
        code, report, output = self.migrate(
            name, '--policy', 'first_pass', bandwidth_mibs=16)
        self.assertEqual('postcopy', report['result'], output)
        self.assertEqual(1, len(report['passes']))
        self.assertHealthyOn('B', name)


class TestTrixieSwitchedAndHealthy(Issue11Shape, base.LabTestCase):
    suite = 'trixie'

    def test_issue11_shape_switched_twice(self):
        for _ in range(2):
            name = self.issue11_guest()
            code, report, output = self.migrate(name, bandwidth_mibs=16)
            self.assertEqual('postcopy', report['result'], output)
            self.assertHealthyOn('B', name)
            base.lab('destroy', name)


class TestForkyKeepsTcgGuestsOnPrecopy(Issue11Shape, base.LabTestCase):
    """QEMU 11.1 sending: the plan refuses post-copy, the guest lives."""

    suite = 'forky'

    def test_issue11_shape_stays_healthy_on_precopy(self):
        name = self.issue11_guest()
        code, report, output = self.migrate(
            name, bandwidth_mibs=16, config=self.config(BUDGET))
        self.assertIn('pre-copy only', report['plan'])
        self.assertIn('tcg-postcopy: source', report['plan'])
        self.assertIn('QEMU 11.1.2 loses TCG guests switched to post-copy',
                      report['plan'])
        # Said once, before anything moved.
        self.assertEqual(1, output.count(
            'loses TCG guests switched to post-copy'))
        self.assertLess(output.index('tcg-postcopy'),
                        output.index('migrating to'))
        self.assertFalse(report['switched'])
        self.assertEqual('aborted', report['result'], output)
        self.assertHealthyOn('A', name)

    def test_a_quiet_guest_still_converges(self):
        name = self.quiet_guest()
        code, report, output = self.migrate(name)
        self.assertEqual(0, code, output)
        self.assertEqual('converged', report['result'])
        self.assertIn('tcg-postcopy', report['plan'])
        self.assertHealthyOn('B', name)

    def check_host_a(self, virt_type):
        return subprocess.run(
            ['nova-postcopy-check', '--uri', base.lab('uri', 'A'),
             '--no-trial', '--virt-type', virt_type],
            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def test_check_fails_the_host_for_tcg_with_the_remedy(self):
        check = self.check_host_a('qemu')
        self.assertEqual(1, check.returncode, check.stdout)
        self.assertIn('tcg-postcopy', check.stdout)
        self.assertIn('QEMU 11.1.2 loses TCG guests switched to post-copy',
                      check.stdout)
        self.assertIn('virt_type = kvm', check.stdout)
        kvm = self.check_host_a('kvm')
        # KVM was not measured: warned, not refused.
        self.assertEqual(0, kvm.returncode, kvm.stdout)
        self.assertIn('KVM guests were not measured', kvm.stdout)
