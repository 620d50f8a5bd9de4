# SPDX-License-Identifier: Apache-2.0
from nova_postcopy import clock
from nova_postcopy import monitor
from nova_postcopy.policies import base as policy_base
from nova_postcopy.policies import chain
from nova_postcopy.policies import passes
from nova_postcopy.sim import job
from nova_postcopy.sim import model
from nova_postcopy.sim import workload
from nova_postcopy.tests.unit import base

GIB = base.GIB


def run(spec, policies=(), budget_s=600, record=True, recovery=False):
    guest = workload.Workload.parse(spec)
    sim = model.MigrationModel(guest, recovery=recovery)
    virtual = clock.VirtualClock()
    watcher = monitor.MigrationMonitor(
        chain.PolicyChain(list(policies)),
        policy_base.MigrationContext(budget_s), virtual, poll_interval=0.5,
        horizon_s=3600, record_samples=record)
    return sim, watcher.run(job.SimulatedJob(sim, virtual))


class TestModel(base.TestCase):

    def test_bytes_are_conserved(self):
        sim, outcome = run('ram_gib=4,link_gbps=10,wss_gib=1,dirty_gbps=3,'
                           'zero_pct=25')
        self.assertEqual('converged', outcome.result)
        must_move = sim.nonzero + sim.resent + model.DEVICE_STATE_BYTES
        self.assertAlmostEqual(must_move, sim.sent, delta=4096)
        self.assertAlmostEqual(sim.zero / 4096, sim.zero_pages, delta=1)

    def test_a_sweep_leaves_its_whole_working_set_after_one_round(self):
        # The lab's dirtier writes each page once per round; writing at
        # random, a round's worth of writes leaves e^-1 of it untouched.
        spec = 'ram_gib=4,link_gbps=10,wss_gib=1,dirty_gbps=3'
        sweep = model.MigrationModel(workload.Workload.parse(
            spec + ',pattern=sweep'))
        steady = model.MigrationModel(workload.Workload.parse(spec))
        self.assertEqual(0.5 * GIB, sweep.unique(0.5 * GIB))
        self.assertEqual(1 * GIB, sweep.unique(1 * GIB))
        self.assertEqual(1 * GIB, sweep.unique(3 * GIB))
        self.assertAlmostEqual(0.632 * GIB, steady.unique(1 * GIB),
                               delta=0.001 * GIB)

    def test_converges_when_dirtying_is_well_below_bandwidth(self):
        sim, outcome = run('ram_gib=4,link_gbps=10,wss_gib=1,dirty_gbps=2')
        self.assertEqual('converged', outcome.result)
        self.assertLess(outcome.total_s, 2 * sim.bound_s)
        self.assertLessEqual(outcome.downtime_ms, 600)

    def test_never_converges_above_bandwidth(self):
        sim, outcome = run('ram_gib=4,link_gbps=10,wss_gib=1,dirty_gbps=20',
                           budget_s=120)
        self.assertEqual('aborted', outcome.result)
        self.assertGreaterEqual(outcome.total_s, 120)
        threshold = sim.link * 0.5
        at_syncs = [s.memory_remaining for previous, s
                    in zip(outcome.samples, outcome.samples[1:])
                    if s.memory_iteration > previous.memory_iteration]
        self.assertGreater(len(at_syncs), 20)
        self.assertGreater(min(at_syncs), threshold)

    def test_dirty_rate_reported_per_pass_is_below_the_write_rate(self):
        sim, outcome = run('ram_gib=16,link_gbps=10,wss_gib=1,dirty_gbps=8',
                           budget_s=60)
        write_rate = 8e9 / 8
        reported = [s.memory_dirty_rate for s in outcome.samples
                    if s.memory_dirty_rate]
        # The 14 s first pass rewrote the 1 GiB working set many times
        # over; libvirt counts each page once.
        self.assertAlmostEqual(GIB / sim.bound_s, reported[0],
                               delta=0.1 * GIB / sim.bound_s)
        self.assertLess(reported[0], write_rate / 10)

    def test_outage_carries_nothing(self):
        sim, outcome = run('ram_gib=16,link_gbps=10,wss_gib=1,'
                           'dirty_gbps=1,outage_at_s=4,outage_s=6')
        inside = [s.memory_processed for s in outcome.samples
                  if 4.2 <= s.time_elapsed_s < 10]
        self.assertGreater(len(inside), 5)
        self.assertEqual(1, len(set(inside)))
        self.assertEqual('converged', outcome.result)

    def test_outage_in_postcopy_loses_the_guest_without_recovery(self):
        spec = ('ram_gib=16,link_gbps=10,wss_gib=4,dirty_gbps=20,'
                'outage_at_s=16,outage_s=5')
        _, lost = run(spec, [passes.FirstPassPolicy(None)])
        self.assertEqual('postcopy-failed', lost.result)
        _, recovered = run(spec, [passes.FirstPassPolicy(None)],
                           recovery=True)
        self.assertEqual('postcopy', recovered.result)

    def test_postcopy_faults_and_finishes(self):
        sim, outcome = run('ram_gib=16,link_gbps=10,wss_gib=4,dirty_gbps=20',
                           [passes.FirstPassPolicy(None)])
        self.assertEqual('postcopy', outcome.result)
        self.assertTrue(outcome.switched)
        self.assertGreater(outcome.postcopy_requests, 0)
        self.assertGreater(outcome.postcopy_s, 0)
        self.assertLess(outcome.downtime_ms, 500)
        self.assertAlmostEqual(sim.bound_s + 4 * GIB / sim.link,
                               outcome.total_s, delta=2)

    def test_frequent_sync_races_the_counter(self):
        sim, outcome = run('ram_gib=16,link_gbps=10,wss_gib=4,dirty_gbps=20,'
                           'sync=frequent', [passes.FirstPassPolicy(None)])
        early = [s for s in outcome.samples if s.time_elapsed_s <= 5]
        self.assertGreater(early[-1].memory_iteration, 40)
        self.assertAlmostEqual(sim.bound_s, outcome.switch_at_s, delta=1)

    def test_deterministic_per_seed(self):
        spec = 'ram_gib=4,link_gbps=1,wss_gib=1,dirty_gbps=0.5,seed=%d'
        first = run(spec % 1, record=False)[1]
        again = run(spec % 1, record=False)[1]
        other = run(spec % 2, record=False)[1]
        self.assertEqual(first.total_s, again.total_s)
        self.assertNotEqual(first.total_s, other.total_s)


class TestWorkloadSpec(base.TestCase):

    def test_parse(self):
        parsed = workload.Workload.parse(
            'ram_gib=16,link_gbps=10,wss_gib=4,dirty_gbps=12,'
            'pattern=phased,seed=3,outage_at_s=5,outage_s=2')
        self.assertEqual((16.0, 10.0, 4.0, 12.0, 'phased', 3),
                         (parsed.ram_gib, parsed.link_gbps, parsed.wss_gib,
                          parsed.dirty_gbps, parsed.pattern, parsed.seed))

    def test_unknown_key_lists_known(self):
        error = self.assertRaises(workload.InvalidWorkload,
                                  workload.Workload.parse,
                                  'ram_gib=1,link_gbps=1,ram=4')
        self.assertIn("unknown workload key 'ram'", str(error))
        self.assertIn('wss_gib', str(error))

    def test_impossible_guests(self):
        for spec, needle in [
                ('ram_gib=1,link_gbps=1,wss_gib=2', 'does not fit'),
                ('ram_gib=0,link_gbps=1', 'ram_gib must be > 0'),
                ('ram_gib=1,link_gbps=1,dirty_gbps=1', 'needs a working'),
                ('ram_gib=1,link_gbps=1,pattern=wavy', 'pattern must be'),
                ('ram_gib=1,link_gbps=x', "'x' is not a float"),
                ('ram_gib=1', 'lacks link_gbps'),
                ('ram_gib=1,link_gbps', 'is not key=value'),
                ('ram_gib=nan,link_gbps=1', 'ram_gib must be a finite'),
                ('ram_gib=1,link_gbps=inf', 'link_gbps must be a finite'),
                ('ram_gib=1,link_gbps=1,wss_gib=1,dirty_gbps=-inf',
                 'dirty_gbps must be a finite'),
                ('ram_gib=1,link_gbps=1e-9', 'link_gbps must be at least'),
                ('ram_gib=1e6,link_gbps=1', 'at most 16384'),
                ('ram_gib=1,link_gbps=1,ram_gib=2', "'ram_gib' given twice")]:
            error = self.assertRaises(workload.InvalidWorkload,
                                      workload.Workload.parse, spec)
            self.assertIn(needle, str(error))
