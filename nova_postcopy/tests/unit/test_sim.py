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
        # Dirtying twice the bandwidth over 3 GiB: the pages the guest makes
        # dirty between syncs always outnumber what the link sends. (Over 1
        # GiB it would converge: QEMU syncs as soon as the bitmap is below
        # the threshold, 55 % of that working set, and most writes then land
        # on pages still unsent.)
        sim, outcome = run('ram_gib=4,link_gbps=10,wss_gib=3,dirty_gbps=20',
                           budget_s=120)
        self.assertEqual('aborted', outcome.result)
        self.assertGreaterEqual(outcome.total_s, 120)
        threshold = sim.link * 1.05 * 0.5     # the link jitters by 5 %
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


class TestQemuTen(base.TestCase):
    """What the lab's 40 QEMU 10.0 recordings showed the model lacked."""

    def syncs(self, spec, until=60.0):
        sim = model.MigrationModel(workload.Workload.parse(spec))
        seen, before = [], (sim.sync_count, sim.remaining())
        while sim.t < until and not sim.finished:
            sim.advance_to(sim.t + 0.01)
            if sim.sync_count != before[0]:
                seen.append((sim.t, before[1], sim.remaining()))
            before = (sim.sync_count, sim.remaining())
        return sim, seen

    def test_qemu_syncs_with_its_threshold_still_to_walk(self):
        # 1 Gbit/s, 500 ms: the threshold is about 56 MiB.
        sim, seen = self.syncs('ram_gib=1,link_gbps=1,wss_gib=0.25,'
                               'dirty_gbps=2', until=20)
        threshold = sim.link * 1.05 * 0.5     # the link jitters by 5 %
        self.assertGreater(len(seen), 3)
        for _, left, _ in seen[1:]:
            self.assertLessEqual(left, threshold + 1)
            self.assertGreater(left, 0.5 * threshold)

    def test_nothing_moves_while_libvirt_sets_up(self):
        sim = model.MigrationModel(workload.Workload.parse(
            'ram_gib=1,link_gbps=1,setup_s=0.45'))
        sim.advance_to(0.4)
        self.assertEqual(0, sim.sent)
        self.assertNotIn('memory_total', sim.job_stats())
        sim.advance_to(0.6)
        self.assertGreater(sim.sent, 0)

    def test_zeros_at_the_end_are_found_after_the_rest(self):
        spread = model.MigrationModel(workload.Workload.parse(
            'ram_gib=1,link_gbps=1,zero_pct=50'))
        end = model.MigrationModel(workload.Workload.parse(
            'ram_gib=1,link_gbps=1,zero_pct=50,zeros=end'))
        for sim in (spread, end):
            sim.advance_to(2.0)
        self.assertGreater(spread.zero_pages, 0.2 * 1024 ** 3 / 4096)
        self.assertEqual(0, end.zero_pages)
        # Once the rest is sent, they take a tenth of a second a GiB.
        for sim in (spread, end):
            sim.advance_to(sim.nonzero / sim.link + 0.2)
        self.assertGreater(end.zero_pages, 0.5 * 1024 ** 3 / 4096 - 1)

    def test_an_abort_ends_the_job_after_libvirt_tore_it_down(self):
        sim = model.MigrationModel(workload.Workload.parse(
            'ram_gib=1,link_gbps=1'))
        sim.advance_to(1.0)
        sim.request_abort()
        sim.advance_to(1.0 + model.SWITCH_LATENCY_S)
        sent = sim.sent
        sim.advance_to(2.5)
        self.assertFalse(sim.finished)
        self.assertEqual(sent, sim.sent)
        sim.advance_to(3.5)
        self.assertEqual('aborted', sim.state)
        self.assertAlmostEqual(1.0 + model.SWITCH_LATENCY_S
                               + model.ABORT_WIND_DOWN_S,
                               sim.events[-1][0], delta=0.01)

    def test_a_sweep_does_not_rewrite_what_is_still_unsent(self):
        # After a sync, the bitmap holds 50 MiB of the last log unwalked and
        # the guest wrote 100 MiB since. A random writer's log lands partly
        # on those 50 MiB; a sweep's next 100 MiB are other pages, until
        # its round wraps onto the pages of the last log.
        mib = 1024 ** 2

        def unsent(pattern, previous_log, written):
            sim = model.MigrationModel(workload.Workload.parse(
                'ram_gib=1,link_gbps=1,wss_gib=0.5,dirty_gbps=1,pattern='
                + pattern))
            sim.sync_count, sim.bitmap, sim.bitmap_zero = 3, 50 * mib, 0.0
            sim._previous_log, sim.written = previous_log, written
            return sim.dirty_unsent() / mib

        self.assertAlmostEqual(150.0, unsent('sweep', 120 * mib, 100 * mib))
        self.assertLess(unsent('steady', 120 * mib, 100 * mib), 140.0)
        # 400 + 200 MiB of a 512 MiB round: 88 MiB wrapped onto the last
        # log, 22 % of it, and so 22 % of what it left unwalked.
        self.assertAlmostEqual(50 + 200 - 50 * 88 / 400.0,
                               unsent('sweep', 400 * mib, 200 * mib))

    def test_a_capped_qemu_checks_at_window_starts_and_sends_at_once(self):
        # Capped, QEMU checks its threshold as each 100 ms window starts,
        # sends the window's share, and sleeps out the rest: every sync
        # lies on the window grid, and libvirt reads the pass's first
        # figures after the share went. Uncapped, it checks every
        # iteration: the syncs fall anywhere.
        spec = ('ram_gib=0.25,link_gbps=0.1,wss_gib=0.05,dirty_gbps=0.03,'
                'setup_s=0.43')

        def iterations(sim):
            sim.advance_to(60.0)
            return [(t, stats) for t, kind, stats in sim.events
                    if kind == 'iteration']

        capped = model.MigrationModel(workload.Workload.parse(
            spec + ',capped=true'))
        found = iterations(capped)
        self.assertGreater(len(found), 2)
        for t, _ in found:
            windows = (t - 0.43) / model.WINDOW_S
            self.assertAlmostEqual(round(windows), windows, delta=1e-6)
        uncapped = iterations(model.MigrationModel(
            workload.Workload.parse(spec)))
        self.assertTrue(any(
            abs((t - 0.43) / model.WINDOW_S
                - round((t - 0.43) / model.WINDOW_S)) > 0.01
            for t, _ in uncapped))
        # The share: a tenth of a second of the link, read with the pass.
        t, stats = found[1]
        replay = model.MigrationModel(workload.Workload.parse(
            spec + ',capped=true'))
        replay.advance_to(t - 0.05)
        share = replay.link * model.WINDOW_S
        self.assertAlmostEqual(replay.sent + replay.link * 0.05 + share,
                               stats['memory_processed'], delta=0.1 * share)
        # Nothing more moves until the window is over.
        replay.advance_to(t + 0.09)
        self.assertEqual(stats['memory_processed'], int(replay.sent))

    def test_a_run_of_zeros_ends_with_a_check_even_capped(self):
        # Finding zeros costs the cap nothing; the iterations that find
        # them end on QEMU's time limit, and it checks as the run ends:
        # the first pass syncs with the kernel's pages at the top unsent.
        sim = model.MigrationModel(workload.Workload.parse(
            'ram_gib=1,link_gbps=0.5,zero_pct=50,zeros=end,capped=true,'
            'wss_gib=0.1,dirty_gbps=0.4'))
        while sim.sync_count == 1:
            sim.advance_to(sim.t + 0.01)
        t, _, stats = sim.events[0]
        self.assertNotAlmostEqual(
            round(t / model.WINDOW_S), t / model.WINDOW_S, delta=1e-3)
        self.assertAlmostEqual(sim.zero, stats['memory_constant'] * 4096,
                               delta=4096)
        # The top's pages and the log, less the window's share sent.
        self.assertAlmostEqual(
            model.TOP_SHARE * sim.ram + model.TOP_BYTES + sim._previous_log
            - sim.link * model.WINDOW_S, stats['memory_remaining'],
            delta=0.01 * sim.ram)

    def test_a_sync_met_early_does_not_move_the_walk(self):
        # Uncapped on the lab (recording 37): QEMU's threshold (its rate
        # x 500 ms) held more than what the first pass had left, zeros
        # included; it synced there, and while the guest's log kept what
        # was pending above the threshold the walk went on below the zeros.
        mib = 1024 ** 2
        sim = model.MigrationModel(workload.Workload.parse(
            'ram_gib=0.25,link_gbps=2.5,wss_gib=0.125,dirty_gbps=0.3,'
            'pattern=sweep,zero_pct=25,zeros=end'))
        while sim.sync_count == 1:
            sim.advance_to(sim.t + 0.01)
        self.assertGreater(sim._below_left, 1 * mib)
        self.assertGreater(sim.bitmap_zero, 60 * mib)
        below, zero = sim._below_left, sim.bitmap_zero
        sim.advance_to(sim.t + 0.01)
        self.assertEqual('precopy', sim.state)
        self.assertLess(sim._below_left, below)
        self.assertEqual(zero, sim.bitmap_zero)

    def test_pages_the_destination_never_had_stop_at_their_rate(self):
        # The same 30 MiB at the stop: sent again, they go at the veth's
        # rate; never sent (the kernel's pages at RAM's top), at the rate
        # the lab's destinations took fresh pages.
        mib = 1024 ** 2
        spec = ('ram_gib=0.25,link_gbps=0.5,capped=true,uncapped_gbps=9.5,'
                'fresh_gbps=2.5,zero_pct=50,zeros=end')

        def stop_s(fresh, spec=spec):
            sim = model.MigrationModel(workload.Workload.parse(spec))
            sim.t, sim.bitmap, sim.bitmap_zero = 1.0, 30 * mib, 0.0
            sim.fresh = fresh
            sim._stop_and_copy()
            return sim.finish_at - sim.t

        fresh_rate = 2.5e9 / 8 * model.LINK_EFFICIENCY
        veth = 9.5e9 / 8 * model.LINK_EFFICIENCY
        self.assertAlmostEqual(30 * mib / fresh_rate - 30 * mib / veth,
                               stop_s(30 * mib) - stop_s(0.0), places=6)
        # Only those never sent: 10 of the 30 MiB.
        self.assertAlmostEqual(10 * mib / fresh_rate - 10 * mib / veth,
                               stop_s(10 * mib) - stop_s(0.0), places=6)
        # Without a rate of their own, they go as fast as the rest.
        plain = spec.replace(',fresh_gbps=2.5', '')
        self.assertEqual(stop_s(0.0, plain), stop_s(30 * mib, plain))
        # The vCPUs stopped, pages sent before (and the device state) go
        # at the stop's own rate.
        stop_rate = 19e9 / 8 * model.LINK_EFFICIENCY
        sent = 30 * mib + model.DEVICE_STATE_BYTES
        self.assertAlmostEqual(sent / veth - sent / stop_rate,
                               stop_s(0.0) - stop_s(0.0, spec
                                                    + ',stop_gbps=19'),
                               places=6)

    def test_zeros_spread_below_the_run_are_found_as_the_walk_goes(self):
        # 64 MiB of zeros: 16 spread through the RAM below the run of 48
        # at RAM's top. Each stretch walked there holds its share of the
        # 16; the run is found whole, after.
        mib = 1024 ** 2
        sim = model.MigrationModel(workload.Workload.parse(
            'ram_gib=0.25,link_gbps=1,zero_pct=25,spread_zero_pct=6.25,'
            'zeros=end'), postcopy_enabled=False)
        below = sim._below_left
        self.assertAlmostEqual(256 - 64 - sim._top / mib + 16, below / mib)
        sim.advance_to(0.5)
        walked = below - sim._below_left
        self.assertGreater(walked, below / 4)
        self.assertLess(walked, below * 3 / 4)
        self.assertAlmostEqual(walked * 16 * mib / below,
                               64 * mib - sim.bitmap_zero, delta=0.01 * mib)
        self.assertAlmostEqual(walked * (1 - 16 * mib / below), sim.sent,
                               delta=0.01 * mib)

    def test_uncapped_qemu_checks_as_each_iteration_ends(self):
        # Iterations of 50 ms back to back from the job's first page: a
        # threshold crossed within one is seen as it ends.
        sim = model.MigrationModel(workload.Workload.parse(
            'ram_gib=1,link_gbps=1,setup_s=0.3'))
        self.assertAlmostEqual(0.35, sim._next_check(0.32))
        self.assertAlmostEqual(0.35, sim._next_check(0.35))
        capped = model.MigrationModel(workload.Workload.parse(
            'ram_gib=1,link_gbps=1,setup_s=0.3,capped=true'))
        self.assertAlmostEqual(0.4, capped._next_check(0.32))

    def test_uncapped_pages_sent_again_go_at_the_links_own_speed(self):
        # Recording 18's shape: 358 MiB rewritten flat out. The second pass
        # walks pages the destination had at the veth's speed, QEMU's next
        # window measures that rate, and the threshold it gives holds the
        # whole log: the migration converges. With the first pass's rate
        # the threshold never holds the log, and the migration never ends.
        def run(uncapped):
            sim = model.MigrationModel(workload.Workload.parse(
                'ram_gib=0.5,link_gbps=2.8,wss_gib=0.35,dirty_gbps=50,'
                'pattern=sweep,zero_pct=17,zeros=end,fresh_gbps=2.6'
                + (',uncapped_gbps=9.5' if uncapped else '')),
                postcopy_enabled=False)
            sim.advance_to(10.0)
            return sim

        fast, slow = run(True), run(False)
        self.assertEqual('completed', fast.state)
        self.assertGreater(fast._measured_bps, 3 * fast.link)
        self.assertEqual('precopy', slow.state)
        self.assertIsNone(slow._measured_bps)

    def test_the_kernel_pages_at_the_top_are_not_the_working_set(self):
        # At the end of the first pass the walk has the kernel's own pages
        # at RAM's top left: the guest's log meets none of them.
        mib = 1024 ** 2

        def unsent(zeros):
            sim = model.MigrationModel(workload.Workload.parse(
                'ram_gib=1,link_gbps=1,wss_gib=0.25,dirty_gbps=1,'
                'zero_pct=50,zeros=' + zeros))
            sim.bitmap, sim.bitmap_zero = 16 * mib, 0.0
            sim.written = 100 * mib
            return (sim.dirty_unsent() - 16 * mib) / (
                sim.unique(sim.written))

        self.assertAlmostEqual(1.0, unsent('end'))
        self.assertLess(unsent('spread'), 0.99)


class TestWorkloadSpec(base.TestCase):

    def test_parse(self):
        parsed = workload.Workload.parse(
            'ram_gib=16,link_gbps=10,wss_gib=4,dirty_gbps=12,'
            'pattern=phased,seed=3,outage_at_s=5,outage_s=2')
        self.assertEqual((16.0, 10.0, 4.0, 12.0, 'phased', 3),
                         (parsed.ram_gib, parsed.link_gbps, parsed.wss_gib,
                          parsed.dirty_gbps, parsed.pattern, parsed.seed))

    def test_capped_is_a_yes_or_no(self):
        for raw, expected in (('true', True), ('No', False), ('1', True)):
            self.assertEqual(expected, workload.Workload.parse(
                'ram_gib=1,link_gbps=1,capped=' + raw).capped)
        self.assertFalse(workload.Workload.parse(
            'ram_gib=1,link_gbps=1').capped)

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
                ('ram_gib=1,link_gbps=1,zeros=middle', 'zeros must be one'),
                ('ram_gib=1,link_gbps=1,setup_s=-1', 'setup_s must be >='),
                ('ram_gib=1,link_gbps=1,fresh_gbps=-1',
                 'fresh_gbps and stop_gbps must be >= 0'),
                ('ram_gib=1,link_gbps=1,stop_gbps=-1',
                 'fresh_gbps and stop_gbps must be >= 0'),
                ('ram_gib=1,link_gbps=1,zero_pct=10,spread_zero_pct=20,'
                 'zeros=end', 'spread_zero_pct must be from 0 to zero_pct'),
                ('ram_gib=1,link_gbps=1,zero_pct=10,spread_zero_pct=5',
                 'spread_zero_pct needs zeros=end'),
                ('ram_gib=1,link_gbps=x', "'x' is not a float"),
                ('ram_gib=1', 'lacks link_gbps'),
                ('ram_gib=1,link_gbps', 'is not key=value'),
                ('ram_gib=nan,link_gbps=1', 'ram_gib must be a finite'),
                ('ram_gib=1,link_gbps=inf', 'link_gbps must be a finite'),
                ('ram_gib=1,link_gbps=1,wss_gib=1,dirty_gbps=-inf',
                 'dirty_gbps must be a finite'),
                ('ram_gib=1,link_gbps=1e-9', 'link_gbps must be at least'),
                ('ram_gib=1e6,link_gbps=1', 'at most 16384'),
                ('ram_gib=1,link_gbps=1,ram_gib=2', "'ram_gib' given twice"),
                ('ram_gib=1,link_gbps=1,capped=maybe',
                 "capped='maybe' is not true or false")]:
            error = self.assertRaises(workload.InvalidWorkload,
                                      workload.Workload.parse, spec)
            self.assertIn(needle, str(error))
