# SPDX-License-Identifier: Apache-2.0
import json

from nova_postcopy.bench import anchors
from nova_postcopy.bench import matrix
from nova_postcopy.bench import runner
from nova_postcopy.cmd import bench
from nova_postcopy import plugins
from nova_postcopy.sim import workload as workload_mod
from nova_postcopy.tests.unit import base

BUSY = 'ram_gib=4,link_gbps=10,wss_gib=3,dirty_gbps=20,seed=3'
# Its working set a quarter of RAM: what a first pass leaves is much less
# than what a switch at the start leaves. Written at 4x the link, so that
# the bitmap never falls below QEMU's threshold (55 % of this set).
BUSY_SMALL_SET = 'ram_gib=4,link_gbps=10,wss_gib=1,dirty_gbps=40,seed=3'
QUIET = 'ram_gib=4,link_gbps=10,wss_gib=0.1,dirty_gbps=0.5'


class TestBenchCommand(base.TestCase):

    def run_bench(self, *argv):
        return self.run_main(bench.main, *argv)

    def test_json_shape(self):
        code, out, _ = self.run_bench('--json', '--workload', BUSY,
                                      '--workload', QUIET,
                                      '--policy', 'default',
                                      '--policy', 'nova_timeout')
        self.assertEqual(0, code)
        data = json.loads(out)
        self.assertEqual(4, len(data['results']))
        row = data['results'][0]
        for key in ('policy', 'workload', 'outcome', 'switched', 'total_s',
                    'downtime_ms', 'postcopy_s', 'bytes_sent', 'bound_s'):
            self.assertIn(key, row)
        self.assertIn(row['outcome'],
                      ('converged', 'postcopy', 'aborted', 'unfinished'))
        summary = data['summary']['default']
        for key in ('completion_rate', 'unnecessary_switches',
                    'ratio_to_first_pass_p50', 'ratio_to_first_pass_p95',
                    'ratio_to_bound_p50', 'postcopy_s_p50',
                    'postcopy_s_p95', 'postcopy_requests_p50'):
            self.assertIn(key, summary)
        self.assertEqual(['default', 'nova_timeout'],
                         sorted(data['summary']))
        by = {(r['policy'], r['workload']): r for r in data['results']}
        busy = by[('default', 'ram=4G link=10G wss=3G dirty=20G steady')]
        self.assertEqual('postcopy', busy['outcome'])
        quiet = by[('default', 'ram=4G link=10G wss=0.1G dirty=0.5G steady')]
        self.assertEqual('converged', quiet['outcome'])
        self.assertFalse(quiet['switched'])

    def test_table_lists_targets(self):
        code, out, _ = self.run_bench('--workload', BUSY, '--policy',
                                      'default')
        self.assertEqual(0, code)
        self.assertIn('target completion_rate', out)
        self.assertIn('ratio_to_first_pass_p95', out)

    def test_rst_is_a_table_the_guide_can_include(self):
        code, out, _ = self.run_bench('--rst', '--workload', BUSY,
                                      '--policy', 'default',
                                      '--policy', 'postcopy_from_start')
        self.assertEqual(0, code)
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith('QEMU 10.0 (sync=pass), 1 '
                                            'workloads per policy'))
        rules = [i for i, line in enumerate(lines)
                 if line and set(line) == {'=', ' '}]
        self.assertEqual(3, len(rules))
        self.assertEqual(rules[0] + 2, rules[1])
        self.assertIn('post-copy p50 s', lines[rules[0] + 1])
        body = [line.split()[0] for line in lines[rules[1] + 1:rules[2]]]
        self.assertEqual(['default', 'postcopy_from_start'], body)
        # Every cell sits under its column: the rule's gaps are blank.
        gaps = [i for i, char in enumerate(lines[rules[0]]) if char == ' ']
        for line in lines[rules[0] + 1:rules[2]]:
            self.assertEqual([' '] * len(gaps),
                             [line.ljust(len(lines[rules[0]]))[i]
                              for i in gaps], line)
        self.assertIn('``ratio_to_first_pass_p95`` 1.0 (wanted <= 1.1): met',
                      out)

    def test_rst_and_json_are_exclusive(self):
        code, _, err = self.run_bench('--rst', '--json')
        self.assertEqual(2, code)
        self.assertIn('choose one', err)

    def test_bad_workload_is_rejected(self):
        code, _, err = self.run_bench('--workload', 'ram_gib=4,link=10')
        self.assertEqual(2, code)
        self.assertIn("unknown workload key 'link'", err)

    def test_unknown_policy_is_rejected(self):
        code, _, err = self.run_bench('--policy', 'vmotion')
        self.assertEqual(2, code)
        self.assertIn("invalid choice: 'vmotion'", err)

    def test_check_needs_the_default_policy(self):
        code, _, err = self.run_bench('--check', '--policy', 'stall')
        self.assertEqual(2, code)
        self.assertIn('--check judges', err)

    def test_the_qemu_sets_the_sync_mode_of_every_workload(self):
        for qemu, mode in (('11.1', 'frequent'), ('10.0', 'pass')):
            code, out, _ = self.run_bench('--json', '--qemu', qemu,
                                          '--workload', BUSY,
                                          '--policy', 'default')
            self.assertEqual(0, code)
            data = json.loads(out)
            self.assertEqual([mode], data['sync'])
            self.assertEqual('QEMU %s (sync=%s)' % (qemu, mode),
                             data['models'])
        self.assertEqual({'frequent'}, {w.sync for w in bench.parse_args(
            ['--qemu', '11.1'], self.conf).workloads})
        self.assertEqual({'pass'}, {w.sync for w in bench.parse_args(
            [], self.conf).workloads})

    def test_a_spec_says_its_sync_unless_it_contradicts_the_qemu(self):
        args = bench.parse_args(['--workload', BUSY + ',sync=frequent'],
                                self.conf)
        self.assertEqual('frequent', args.workloads[0].sync)
        code, _, err = self.run_bench('--qemu', '10.0', '--workload',
                                      BUSY + ',sync=frequent')
        self.assertEqual(2, code)
        self.assertIn('says sync=frequent, but QEMU 10.0 syncs "pass"', err)

    def test_an_unmeasured_qemu_is_refused(self):
        code, _, err = self.run_bench('--qemu', '8.0')
        self.assertEqual(2, code)
        self.assertIn("invalid choice: '8.0'", err)

    def test_every_policy_name_is_accepted(self):
        names = runner.policy_names(self.conf)
        self.assertEqual(['default'] + plugins.available_policies()
                         + list(anchors.NAMES), names)


class TestBuiltinMatrix(base.TestCase):

    def test_shape(self):
        workloads = matrix.builtin()
        self.assertEqual(5 * 3 * 8, len(workloads))
        self.assertEqual(len(workloads), len({w.label for w in workloads}))
        outages = [w for w in workloads if w.outage_s]
        self.assertEqual(30, len(outages))

    def test_our_policies_never_switch_during_an_outage(self):
        outages = [w for w in matrix.builtin() if w.outage_s]
        names = ['default'] + plugins.available_policies()
        rows = runner.run(names, self.conf, outages)
        ours = [r for r in rows if r.policy in names]
        self.assertEqual(len(names) * len(outages), len(ours))
        self.assertEqual([], [(r.policy, r.workload) for r in ours
                              if r.switch_in_outage])
        self.assertEqual([], [(r.policy, r.workload) for r in ours
                              if r.outcome not in ('converged',
                                                   'postcopy')])

    def test_default_chain_completes_every_workload(self):
        rows = runner.run(['default'], self.conf, matrix.builtin())
        summary = runner.summarize(rows, ['default'])['default']
        self.assertEqual(1.0, summary['completion_rate'])
        self.assertEqual(0, summary['failed'])
        # Where pre-copy alone converges, a switch never made it slower.
        self.assertEqual(0, summary['costly_switches'])


class TestPhysicalBound(base.TestCase):
    """Switching before the first pass ends trades post-copy for time."""

    def test_from_the_start_is_faster_and_longer_in_postcopy(self):
        busy = workload_mod.Workload.parse(BUSY_SMALL_SET)
        ours = runner.run_one('default', self.conf, busy)
        early = runner.run_one('postcopy_from_start', self.conf, busy)
        self.assertEqual('postcopy', early.outcome)
        self.assertLess(early.switch_at_s, 1)
        # Each page moves once: within 5 % of the bound, the default chain
        # (at the end of the first pass) well above it.
        self.assertLess(early.total_s, 1.05 * early.bound_s)
        self.assertGreater(ours.total_s, 1.1 * ours.bound_s)
        # Paid for in post-copy: the guest runs without all of its memory
        # for longer and waits on more pages.
        self.assertGreater(early.postcopy_s, 3 * ours.postcopy_s)
        self.assertGreater(early.postcopy_requests,
                           2 * ours.postcopy_requests)

    def test_the_summary_reports_postcopy_only_where_it_was_needed(self):
        rows = runner.run(['default'], self.conf, [
            workload_mod.Workload.parse(BUSY),
            workload_mod.Workload.parse(QUIET)])
        summary = runner.summarize(rows, ['default'])['default']
        busy = [r for r in rows if r.policy == 'default' and r.switched]
        self.assertEqual(1, len(busy))
        self.assertEqual(busy[0].postcopy_s, summary['postcopy_s_p50'])
        self.assertEqual(busy[0].postcopy_requests,
                         summary['postcopy_requests_p50'])


class TestKubevirtAnchor(base.TestCase):
    """The anchor does what KubeVirt d923fdb815's monitor does."""

    # Never converges: 4 GiB over 10 Gbit/s, 3 GiB rewritten at 20 Gbit/s.
    def run_anchor(self, sync):
        workload = workload_mod.Workload.parse('%s,sync=%s' % (BUSY, sync))
        return runner.run_one('kubevirt_stall', self.conf, workload)

    def test_with_a_sync_per_pass_it_switches_once_stalled(self):
        row = self.run_anchor('pass')
        self.assertEqual('postcopy', row.outcome)
        self.assertIn('local minimum', row.switch_reason)
        # Stalled means no 4 % gain over a 40 s window: not before it.
        self.assertGreater(row.switch_at_s, 40)

    def test_with_syncs_ten_times_a_second_it_aborts_at_its_timeout(self):
        # Every wake is an iteration event: the bandwidth estimate is never
        # fed, so nothing is stalled and the timeout cancels (KubeVirt logs
        # "value of ewmaBandwidthBps not set").
        row = self.run_anchor('frequent')
        self.assertEqual('aborted', row.outcome)
        self.assertFalse(row.switched)
        # 4 GiB is 5 decimal GB: 150 s each.
        self.assertAlmostEqual(750, row.total_s, delta=2)
