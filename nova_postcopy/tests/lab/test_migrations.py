# SPDX-License-Identifier: Apache-2.0
"""Real migrations between the lab's default hosts (libvirt 12.8, QEMU 10.0).

Some QEMU releases race ``memory_iteration`` about ten times a second once
post-copy is enabled (11.1 does; it also loses TCG guests at the switch,
see test_switchover.py): every pass-based switch is checked to happen
after a real pass, not at the first tick of the counter, on every stack
that switches.
"""

import time

from nova_postcopy.tests.lab import base

# A pass over the busy guest's 256 MiB working set at 32 MiB/s takes ~8 s.
ONE_PASS_S = 5.0


class SwitchesAfterRealPasses(object):
    """What must hold on every stack of the lab that switches."""

    def test_busy_guest_switched_by_the_default_chain(self):
        name = self.busy_guest()
        code, report, output = self.migrate(name)
        self.assertEqual(0, code)
        self.assertEqual('postcopy', report['result'])
        self.assertTrue(report['switched'])
        self.assertEqual('forecast', report['switch_policy'])
        self.assertIn('cannot converge', report['switch_reason'])
        self.assertIn('switch to post-copy (forecast)', output)
        self.assertGreater(report['postcopy_s'], 0)
        self.assertHealthyOn('B', name)
        self.assertReportMatchesLibvirt(report)
        # No --dest-check-uri: the CLI asked the destination over DEST_URI
        # (the lab's management path reaches it), so the plan knows its
        # versions, and with them whether recovery is on.
        self.assertIn('asking the destination over %s' % base.DEST, output)
        self.assertNotIn('version not known', output)

    def test_first_pass_waits_for_a_real_pass(self):
        name = self.busy_guest()
        code, report, _ = self.migrate(name, '--policy', 'first_pass')
        self.assertEqual('postcopy', report['result'])
        self.assertIn('1 pass(es) over RAM completed',
                      report['switch_reason'])
        self.assertGreater(report['switch_at_s'], ONE_PASS_S)
        self.assertEqual(1, len(report['passes']))
        self.assertHealthyOn('B', name)

    def assertReportMatchesLibvirt(self, report):
        completed = report['libvirt_completed']
        self.assertEqual(completed['data_processed'], report['bytes_sent'])
        self.assertEqual(completed['memory_postcopy_requests'],
                         report['postcopy_requests'])
        self.assertEqual(completed['memory_iteration'], report['iterations'])
        self.assertAlmostEqual(completed['time_elapsed'] / 1000.0,
                               report['total_s'], delta=0.01)
        for key in ('result', 'switched', 'switch_reason', 'total_s',
                    'downtime_ms', 'postcopy_s', 'postcopy_requests',
                    'bytes_sent', 'iterations', 'samples', 'passes'):
            self.assertIn(key, report)
        self.assertGreater(len(report['samples']), 10)


class TestMigrations(SwitchesAfterRealPasses, base.LabTestCase):

    def test_converging_guest_is_not_switched(self):
        name = self.quiet_guest()
        code, report, _ = self.migrate(name)
        self.assertEqual(0, code)
        self.assertEqual('converged', report['result'])
        self.assertFalse(report['switched'])
        self.assertHealthyOn('B', name)

    def test_iterations_switch_after_the_configured_passes(self):
        name = self.busy_guest()
        code, report, _ = self.migrate(
            name, '--policy', 'iterations',
            config=self.config('switch_after_passes = 2'))
        self.assertEqual('postcopy', report['result'])
        self.assertIn('2 pass(es)', report['switch_reason'])
        self.assertGreater(report['switch_at_s'], 2 * ONE_PASS_S)
        self.assertEqual(2, len(report['passes']))
        self.assertHealthyOn('B', name)

    def test_stall_switches_when_passes_stop_improving(self):
        name = self.busy_guest()
        code, report, _ = self.migrate(
            name, '--policy', 'stall', config=self.config('stall_window = 10'))
        self.assertEqual('postcopy', report['result'])
        self.assertIn('improved by less than 4 %', report['switch_reason'])
        self.assertGreaterEqual(len(report['passes']), 2)
        self.assertHealthyOn('B', name)

    def test_timeout_switches_when_the_budget_ends(self):
        name = self.busy_guest()
        code, report, _ = self.migrate(
            name, '--policy', 'timeout',
            config=self.config('precopy_timeout_max = 12'))
        self.assertEqual('postcopy', report['result'])
        self.assertIn('budget of 12 s', report['switch_reason'])
        self.assertGreaterEqual(report['switch_at_s'], 12)
        self.assertLess(report['switch_at_s'], 14)
        self.assertHealthyOn('B', name)

    def test_precopy_only_aborts_at_the_budget(self):
        name = self.busy_guest()
        code, report, _ = self.migrate(
            name, '--no-postcopy',
            config=self.config('precopy_timeout_max = 12'))
        self.assertEqual(1, code)
        self.assertEqual('aborted', report['result'])
        self.assertFalse(report['switched'])
        self.assertIn('post-copy not allowed', report['end_reason'])
        self.assertHealthyOn('A', name)

    def test_no_switch_during_a_network_stall(self):
        # The budget ends while the link is down: the switch must wait for
        # data to move again, and for the grace after it.
        name = self.busy_guest()
        cut = {}

        def cut_link():
            time.sleep(8)
            cut['down'] = time.monotonic()
            base.lab('link', 'A', 'down')
            time.sleep(8)
            base.lab('link', 'A', 'up')
            cut['up'] = time.monotonic()

        started = time.monotonic()
        code, report, output = self.migrate(
            name, '--policy', 'timeout',
            config=self.config('precopy_timeout_max = 12\n'
                               'network_stall_grace = 3'),
            during=cut_link)
        self.assertEqual('postcopy', report['result'], output)
        self.assertIn('held: no data moved', output)
        # Job time and wall time start within a second of each other.
        link_back_s = cut['up'] - started
        self.assertGreater(report['switch_at_s'], link_back_s + 2)
        self.assertHealthyOn('B', name)
