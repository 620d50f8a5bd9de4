# SPDX-License-Identifier: Apache-2.0
from nova_postcopy import progress
from nova_postcopy.tests.unit import base

GIB = base.GIB


class TestSample(base.TestCase):

    def test_normalizes_libvirt_units(self):
        sample = progress.Sample.from_job_stats(base.stats(
            2.5, remaining=GIB, processed=3 * GIB, dirty_rate=1000,
            **{'dirtyrate.megabytes_per_second': 10,
               'memory_postcopy_requests': 7}))
        self.assertEqual(2.5, sample.time_elapsed_s)
        self.assertEqual(1000 * 4096, sample.memory_dirty_rate)
        self.assertEqual(10 * 1024 ** 2, sample.dirty_rate_probe)
        self.assertEqual(7, sample.postcopy_requests)

    def test_walked_counts_zero_pages(self):
        sample = progress.Sample.from_job_stats(base.stats(
            1, remaining=0, processed=GIB, normal_bytes=GIB,
            constant=GIB // 4096))
        self.assertEqual(2 * GIB, sample.walked_bytes)
        self.assertEqual(2.0, sample.walk_factor)

    def test_missing_counters_fall_back_to_processed(self):
        stats = base.stats(1, remaining=0, processed=GIB)
        del stats['memory_normal_bytes']
        sample = progress.Sample.from_job_stats(stats)
        self.assertEqual(GIB, sample.walked_bytes)


class TestPasses(base.TestCase):
    """16 GiB at 1 GiB/s; each pass leaves half of what it began with."""

    def classic(self):
        # Pass 1: 16 GiB in 16 s -> 8 GiB dirtied; pass 2: 8 GiB in 8 s.
        return [base.stats(0, 16 * GIB, 0, iteration=1),
                base.stats(8, 8 * GIB, 8 * GIB, iteration=1),
                base.stats(16, 8 * GIB, 16 * GIB, iteration=2),
                base.stats(20, 4 * GIB, 20 * GIB, iteration=2),
                base.stats(24, 4 * GIB, 24 * GIB, iteration=3)]

    def test_passes_follow_syncs_and_data(self):
        tracker = base.feed(progress.ProgressTracker(), *self.classic())
        self.assertEqual(2, tracker.completed_passes)
        first, second = tracker.passes
        self.assertEqual((0, 16), (first.start_s, first.end_s))
        self.assertEqual(8 * GIB, first.dirtied)
        self.assertEqual((16, 24), (second.start_s, second.end_s))
        self.assertEqual(4 * GIB, second.dirtied)
        self.assertAlmostEqual(GIB, tracker.bandwidth, delta=1)

    def test_racing_counter_does_not_make_passes(self):
        # QEMU 11.1 with post-copy enabled: the counter moves on every poll.
        samples = [base.stats(t, (16 - t) * GIB, t * GIB, iteration=1 + 10 * t)
                   for t in range(0, 16)]
        tracker = base.feed(progress.ProgressTracker(), *samples)
        self.assertEqual(0, tracker.completed_passes)
        base.feed(tracker, base.stats(16.5, 8 * GIB, 16.5 * GIB,
                                      iteration=170))
        self.assertEqual(1, tracker.completed_passes)
        self.assertAlmostEqual(16.0, tracker.passes[0].end_s, delta=0.01)

    def test_setup_samples_of_zeros_are_not_the_start(self):
        # libvirt 12.8 answers all zeros right after the job starts.
        setup = base.stats(0.001, 0, 0, iteration=0, total=0)
        samples = [setup] + self.classic()[1:3]
        tracker = base.feed(progress.ProgressTracker(), *samples)
        self.assertEqual(1, tracker.completed_passes)
        self.assertEqual(16 * base.GIB, tracker.passes[0].start_remaining)
        self.assertEqual(16, tracker.passes[0].end_s)

    def test_data_alone_is_not_a_pass_while_the_counter_stands(self):
        samples = self.classic()[:2] + [
            base.stats(16, 0.1 * GIB, 15.9 * GIB, iteration=1)]
        tracker = base.feed(progress.ProgressTracker(), *samples)
        self.assertEqual(0, tracker.completed_passes)

    def test_boundary_between_polls_is_interpolated(self):
        samples = [base.stats(0, 16 * GIB, 0, iteration=1),
                   base.stats(10, 6 * GIB, 10 * GIB, iteration=1),
                   base.stats(18, 6 * GIB, 18 * GIB, iteration=2)]
        tracker = base.feed(progress.ProgressTracker(), *samples)
        only = tracker.passes[0]
        self.assertAlmostEqual(16.0, only.end_s, delta=0.01)
        self.assertEqual(8 * GIB, only.dirtied)
        self.assertEqual(8 * GIB, tracker.current_pass_remaining)

    def early_sync(self):
        # QEMU 10.0 syncs once what is left is below its threshold: 1 GiB/s
        # for 500 ms. At 15.6 s, 0.4 GiB was still to walk; the sync put
        # the 8 GiB dirtied meanwhile on top.
        return [base.stats(0, 16 * GIB, 0, iteration=1),
                base.stats(15.5, 0.5 * GIB, 15.5 * GIB, iteration=1),
                base.stats(15.6, 8.4 * GIB, 15.6 * GIB, iteration=2)]

    def test_a_pass_ends_when_qemu_synced_under_its_threshold(self):
        tracker = base.feed(progress.ProgressTracker(max_downtime_ms=500),
                            *self.early_sync())
        self.assertEqual(1, tracker.completed_passes)
        only = tracker.passes[0]
        self.assertEqual(15.6, only.end_s)
        self.assertEqual(int(8.4 * GIB), only.dirtied)
        # What QEMU had not walked is not what the guest dirtied.
        self.assertAlmostEqual(0.4 * GIB, only.unwalked, delta=1)
        self.assertAlmostEqual(8 * GIB, only.new, delta=1)

    def test_without_the_downtime_a_pass_waits_for_its_walk(self):
        tracker = base.feed(progress.ProgressTracker(), *self.early_sync())
        self.assertEqual(0, tracker.completed_passes)

    def test_more_left_than_the_threshold_is_no_pass_end(self):
        # A counter step with 2 GiB unwalked is not the sync of a pass's
        # end: QEMU 10.0 does not sync with that much left at 1 GiB/s.
        samples = [base.stats(0, 16 * GIB, 0, iteration=1),
                   base.stats(14, 2 * GIB, 14 * GIB, iteration=1),
                   base.stats(14.2, 9.8 * GIB, 14.2 * GIB, iteration=2)]
        tracker = base.feed(progress.ProgressTracker(max_downtime_ms=500),
                            *samples)
        self.assertEqual(0, tracker.completed_passes)

    def test_postcopy_push_is_not_a_pass(self):
        tracker = base.feed(progress.ProgressTracker(), *self.classic()[:3])
        tracker.enter_postcopy()
        base.feed(tracker, base.stats(24, 0, 24 * GIB, iteration=3))
        self.assertEqual(1, tracker.completed_passes)

    def test_page_requests_say_postcopy_before_the_event(self):
        tracker = base.feed(
            progress.ProgressTracker(), *self.classic()[:3],
            base.stats(24, 0, 24 * GIB, iteration=3,
                       memory_postcopy_requests=12))
        self.assertEqual(1, tracker.completed_passes)
        self.assertAlmostEqual(GIB, tracker.bandwidth, delta=1)


class TestDrain(base.TestCase):
    """The fall of the data left within a pass, where it includes the log."""

    def racing(self):
        # QEMU 11.1 with post-copy: pass 1 walks 16 GiB in 16 s and leaves
        # 8 GiB; the data left then falls by 0.5 GiB/s.
        first = [base.stats(t, (16 - t / 2) * GIB, t * GIB,
                            iteration=1 + 10 * t) for t in range(0, 17)]
        return first + [base.stats(16 + t, (8 - t / 2) * GIB,
                                   (16 + t) * GIB, iteration=161 + 10 * t)
                        for t in (0.5, 1, 2, 3)]

    def test_measured_after_the_first_pass_when_qemu_resyncs(self):
        samples = self.racing()
        tracker = base.feed(progress.ProgressTracker(), *samples[:16])
        self.assertIsNone(tracker.drain_rate, 'the first pass walks RAM')
        base.feed(tracker, *samples[16:18])
        self.assertEqual(1, tracker.completed_passes)
        self.assertIsNone(tracker.drain_rate, 'less than a second of pass')
        base.feed(tracker, *samples[18:])
        self.assertAlmostEqual(0.5 * GIB, tracker.drain_rate, delta=GIB / 100)

    def test_unknown_when_qemu_syncs_at_pass_ends_only(self):
        # The bitmap alone falls at the bandwidth whatever the guest does.
        samples = TestPasses.classic(self)[:4]
        tracker = base.feed(progress.ProgressTracker(), *samples)
        self.assertEqual(1, tracker.completed_passes)
        self.assertIsNone(tracker.drain_rate)


class TestNetworkStall(base.TestCase):

    def test_stall_and_recovery(self):
        tracker = base.feed(
            progress.ProgressTracker(),
            base.stats(0, 16 * GIB, 0), base.stats(1, 15 * GIB, GIB),
            base.stats(2, 14 * GIB, 2 * GIB))
        self.assertFalse(tracker.network_stalled)
        base.feed(tracker, base.stats(3, 14 * GIB, 2 * GIB),
                  base.stats(4, 14 * GIB, 2 * GIB))
        self.assertTrue(tracker.network_stalled)
        self.assertEqual(2, tracker.stalled_for_s)
        self.assertEqual(0, tracker.healthy_for_s)
        base.feed(tracker, base.stats(5, 13 * GIB, 3 * GIB),
                  base.stats(6, 12 * GIB, 4 * GIB))
        self.assertFalse(tracker.network_stalled)
        self.assertEqual(2, tracker.healthy_for_s)
        self.assertAlmostEqual(GIB, tracker.bandwidth, delta=1)

    def test_a_trickle_is_a_stall(self):
        tracker = base.feed(
            progress.ProgressTracker(),
            base.stats(0, 16 * GIB, 0), base.stats(1, 15 * GIB, GIB),
            base.stats(2, 15 * GIB, GIB + 1024))
        self.assertTrue(tracker.network_stalled)

    def test_without_stall_healthy_since_start(self):
        tracker = base.feed(
            progress.ProgressTracker(),
            base.stats(0, 16 * GIB, 0), base.stats(3, 13 * GIB, 3 * GIB))
        self.assertEqual(3, tracker.healthy_for_s)
