# SPDX-License-Identifier: Apache-2.0
"""Replaying lab recordings in the simulator (issue #14, item 2)."""

import dataclasses
import json
import os
import tempfile

from nova_postcopy.bench import recordings
from nova_postcopy.cmd import bench
from nova_postcopy.sim import model
from nova_postcopy.tests.unit import base
from nova_postcopy import units

MIB = units.MIB


def recording(**changes):
    """A small pre-copy recording as tools/lab/soak --record keeps it."""
    samples = []
    for tenth in range(1, 101):
        t = tenth / 10.0
        # Half of RAM is zero pages: the first pass walks it in 8 s; then
        # the next sends the 66 MiB it left (nearly all of the working set,
        # and the kernel's pages at the top), in 4.125 s.
        sent = int(t * 16 * MIB)
        zero = min(sent, 128 * MIB)
        later = max(t - 8.0, 0.0)
        remaining = (256 * MIB - sent - zero if t < 8.0 else
                     int(66 * MIB - 16 * MIB * (later % 4.125)))
        samples.append({
            'time_elapsed_s': t, 'memory_total': 256 * MIB,
            'memory_remaining': remaining,
            'memory_iteration': 1 + (t >= 8.0) + int(later // 4.125),
            'memory_processed': sent, 'memory_normal_bytes': sent,
            'memory_constant': zero // 4096,
            'memory_bps': 16 * MIB, 'postcopy_requests': 0})
    data = {
        'shape': {'ram_mib': 256, 'wss_mib': 64, 'dirty_mibs': 32,
                  'pattern': 'random', 'link_mibs': 16},
        'policies': ['precopy'],
        'hosts': ['host A: libvirt 12.8.0, QEMU 10.0.13',
                  'host B: libvirt 12.8.0, QEMU 10.0.13'],
        'guest_rates': [[1.0, 31.0], [2.0, 33.0], [3.0, 32.0]],
        'config': '[postcopy]\nprecopy_timeout_max = 20\n'
                  'poll_interval = 0.1\n',
        'plan': 'post-copy not allowed: pre-copy only asked',
        'budget_s': 20.0, 'result': 'aborted', 'total_s': 22.0,
        'switch_at_s': None, 'downtime_ms': None, 'postcopy_s': 0.0,
        'passes': [{'number': 1, 'start_s': 0.0, 'end_s': 8.0,
                    'start_remaining': 256 * MIB, 'dirtied': 66 * MIB}],
        'samples': samples,
        'health': {'running': True, 'counter_advanced': True,
                   'memory_errors': 0, 'panic': False, 'reset': False,
                   'healthy': True},
    }
    data.update(changes)
    return data


class TestWorkloadOf(base.TestCase):

    def test_the_guest_as_measured(self):
        guest = recordings.workload_of(recording())
        self.assertEqual(0.25, guest.ram_gib)
        self.assertEqual(0.0625, guest.wss_gib)
        # The dirtier's median line, not the shape's wish.
        self.assertAlmostEqual(32 * MIB * 8 / 1e9, guest.dirty_gbps)
        # Half of what the first pass walked was zero pages.
        self.assertAlmostEqual(50.0, guest.zero_pct, delta=1)
        self.assertAlmostEqual(16 * MIB * 8 / 1e9 / model.LINK_EFFICIENCY,
                               guest.link_gbps)
        self.assertEqual(recordings.VETH_GBPS, guest.uncapped_gbps)
        self.assertEqual('pass', guest.sync)

    def test_the_link_is_what_precopy_moved_capped_or_not(self):
        # QEMU's cap lets through a little more than asked (16.28 MiB/s for
        # 16 on the lab): the model's link is what QEMU said it moved.
        for cap in (0, 16):
            data = recording(shape=dict(recording()['shape'], link_mibs=cap))
            for sample in data['samples']:
                sample['memory_bps'] = 16.28 * MIB
            guest = recordings.workload_of(data)
            self.assertAlmostEqual(
                16.28 * MIB * 8 / 1e9 / model.LINK_EFFICIENCY,
                guest.link_gbps)
            self.assertEqual(recordings.VETH_GBPS, guest.uncapped_gbps)
            self.assertEqual('end', guest.zeros)
            # Only a cap is enforced in QEMU's windows.
            self.assertEqual(bool(cap), guest.capped)

    def test_zeros_found_by_the_end_most_in_one_run(self):
        # Recording 19's layout: the first pass synced, its threshold met,
        # with 20 MiB of zeros found one by one; the stop-and-copy found
        # the run of 100 MiB at RAM's top.
        data = recording()
        for sample in data['samples']:
            sample['memory_constant'] = int(
                min(sample['time_elapsed_s'], 2.0) * 10 * MIB) // 4096
        data['samples'][-1]['memory_constant'] = 120 * MIB // 4096
        guest = recordings.workload_of(data)
        self.assertAlmostEqual(100.0 * 120 / 256, guest.zero_pct)
        self.assertAlmostEqual(100.0 * 20 / 256, guest.spread_zero_pct)
        self.assertEqual((0.0, 0.0), recordings.zero_layout(recording(
            samples=[dict(s, memory_constant=0)
                     for s in data['samples']])))

    def test_set_up_lasts_until_qemu_reports_its_first_pass(self):
        data = recording()
        for sample in data['samples'][:4]:
            sample.update(memory_iteration=0, memory_remaining=0)
        self.assertEqual(0.5, recordings.workload_of(data).setup_s)
        self.assertEqual(0.1, recordings.workload_of(recording()).setup_s)

    def test_qemu_11_1_syncs_frequently_once_postcopy_is_enabled(self):
        hosts = ['host A: libvirt 12.8.0, QEMU 11.1.2',
                 'host B: libvirt 12.8.0, QEMU 11.1.2']
        allowed = recordings.workload_of(recording(
            hosts=hosts, policies=['first_pass'],
            plan='post-copy allowed: both hosts and the instance support '
                 'post-copy'))
        self.assertEqual('frequent', allowed.sync)
        # The lab's forky hosts keep TCG guests on pre-copy: one sync a pass.
        refused = recordings.workload_of(recording(hosts=hosts))
        self.assertEqual('pass', refused.sync)

    def test_an_unmeasured_qemu_is_refused(self):
        self.assertRaises(recordings.RecordingError, recordings.workload_of,
                          recording(hosts=['host A: libvirt 9.0.0, QEMU '
                                           '7.2.0', 'host B: ...']))

    def test_options_of_the_run_are_replayed(self):
        self.assertEqual({'precopy_timeout_max': 20.0, 'poll_interval': 0.1},
                         recordings.recorded_options(recording()))


class TestCompare(base.TestCase):

    def test_a_recording_and_its_twin(self):
        data = recording()
        outcome = recordings.simulate(self.conf, data)
        checks = {c.metric: c for c in recordings.compare(data, outcome,
                                                          500, 0.1)}
        self.assertEqual('aborted', outcome.result)
        self.assertTrue(checks['result'].ok)
        self.assertTrue(checks['total s'].ok, checks['total s'])
        self.assertIn('pass 1 end s', checks)
        self.assertIn('pass 1 left MiB', checks)

    def test_data_left_is_held_to_what_one_poll_resolves(self):
        # A pass's data left is read at a poll after QEMU's sync, on both
        # sides: pre-copy's 16 MiB/s over one poll is the finest it holds,
        # when that is more than 10 % of the data.
        data = recording()
        outcome = recordings.simulate(self.conf, data)
        real = recordings.measured_passes(data, 500)[0]
        off = real.dirtied + 12 * MIB  # 18 % of the 66 MiB left
        outcome.passes = [dataclasses.replace(outcome.passes[0],
                                              dirtied=off)]

        def left_ok(poll_interval):
            return {c.metric: c for c in recordings.compare(
                data, outcome, 500, poll_interval)}['pass 1 left MiB'].ok

        self.assertFalse(left_ok(0.1))      # 1.6 MiB or 10 %: 6.6 MiB
        self.assertFalse(left_ok(0.5))      # 8 MiB
        self.assertTrue(left_ok(1.0))       # 16 MiB

    def test_passes_are_read_again_from_the_samples(self):
        # The report's passes are the tracker's of the day; the samples
        # decide, read as the simulated twin's are.
        data = recording(passes=[])
        checks = {c.metric: c for c in recordings.replay(self.conf, data)}
        self.assertIn('pass 1 end s', checks)
        self.assertTrue(checks['pass 1 end s'].ok, checks['pass 1 end s'])
        passes = recordings.measured_passes(data, 500)
        self.assertAlmostEqual(8.0, passes[0].end_s, delta=0.11)
        self.assertAlmostEqual(66 * MIB, passes[0].dirtied, delta=2 * MIB)

    def test_a_wrong_measurement_is_outside(self):
        data = recording(total_s=40.0)
        checks = {c.metric: c for c in recordings.replay(self.conf, data)}
        self.assertFalse(checks['total s'].ok)

    def replay_one_agreeing_one_not(self, *options):
        """The command on two recordings: 'one' agrees, 'two' took 40 s."""
        with tempfile.TemporaryDirectory() as directory:
            for name in ('one', 'two'):
                with open(os.path.join(directory, name + '.json'),
                          'w') as handle:
                    json.dump(recording(total_s=40.0 if name == 'two'
                                        else 22.0), handle)
            return self.run_main(bench.main, '--recordings', directory,
                                 *options)

    def test_the_command_prints_each_and_the_share(self):
        code, out, _ = self.replay_one_agreeing_one_not()
        self.assertEqual(0, code)
        self.assertIn('1 of 2 recordings agree', out)
        self.assertRegex(out, r'two .* total s')

    def test_the_guides_tables_come_from_the_command(self):
        code, out, _ = self.replay_one_agreeing_one_not('--rst')
        self.assertEqual(0, code)
        self.assertRegex(out, r'\n10\.0 +2 +1\n')
        self.assertRegex(out, r'\nall +2 +1\n')
        # 22 s and 40 s measured, about 22 simulated: 0 and 45 %.
        self.assertRegex(out, r'\ntotal time +2 +2\d\.\d % +4\d\.\d %\n')
        self.assertIn('or one poll of', out)

    def test_runs_of_one_shape_are_held_against_each_other(self):
        # 'one' and 'one-r1' repeat a shape within the tolerances; 'two'
        # and 'two-r1' differ by 18 s. Four ordered pairs, two agree.
        with tempfile.TemporaryDirectory() as first, \
                tempfile.TemporaryDirectory() as second:
            for directory, name, total in ((first, 'one', 22.0),
                                           (second, 'one-r1', 22.5),
                                           (first, 'two', 22.0),
                                           (second, 'two-r1', 40.0),
                                           (second, 'three-r1', 22.0)):
                with open(os.path.join(directory, name + '.json'),
                          'w') as handle:
                    json.dump(recording(total_s=total), handle)
            code, out, _ = self.run_main(bench.main, '--recordings', first,
                                         '--recordings', second)
            _, alone, _ = self.run_main(bench.main, '--recordings', first)
        self.assertEqual(0, code)
        self.assertIn('4 of 5 recordings agree', out)
        self.assertIn('The lab against itself: 2 of 4 pairs of runs of one '
                      'shape agree within the same tolerances (4 runs of 2 '
                      'shapes); the model agrees with 3 of those 4 runs.',
                      out)
        self.assertNotIn('against itself', alone)

    def test_recordings_run_alone(self):
        code, _, err = self.run_main(bench.main, '--recordings', '/x',
                                     '--policy', 'default')
        self.assertEqual(2, code)
        self.assertIn('use it alone', err)
        self.assertIn('--rst', err)


class TestErrorSummary(base.TestCase):

    def test_median_and_90th_percentile_per_kind(self):
        check = recordings.Check
        replayed = [
            ('a', {}, [check('result', 'converged', 'converged', True),
                       check('total s', 10.0, 11.0, True),
                       check('pass 1 end s', 4.0, 4.0, True),
                       check('pass 1 left MiB', 20.0, 15.0, False),
                       check('downtime ms', 100, 130, False)]),
            ('b', {}, [check('total s', 20.0, 20.0, True),
                       check('pass 1 left MiB', 0.0, 1.0, False),
                       check('switch s', 8.0, 6.0, False)])]
        errors = recordings.error_summary(replayed)
        self.assertEqual((2, 5.0, 10.0), errors['total'])
        self.assertEqual((1, 0.0, 0.0), errors['pass end'])
        # Nothing measured has no relative error: left out, not infinite.
        self.assertEqual((1, 25.0, 25.0), errors['left'])
        self.assertEqual((1, 25.0, 25.0), errors['switch'])
        self.assertEqual((1, 30, 30), errors['downtime'])
        self.assertNotIn('post-copy', errors)


class TestLabRecordings(base.TestCase):
    """The recordings committed as test data (tools/lab/soak --plan record).

    Issue #14 wants 90 % of them within the tolerances; the simulator is
    calibrated on them only in part (the benchmark guide names what is left
    and why), so this holds the share reached and fails if a change lowers
    it.
    """

    DATA = os.path.join(os.path.dirname(__file__), 'data', 'lab_recordings')
    AGREE_AT_LEAST = 43  # of 52 (32 of 40 on QEMU 10.0, 11 of 12 on 11.1)

    def setUp(self):
        super().setUp()
        self.recorded = recordings.load(self.DATA)

    def test_every_guest_survived_where_it_ended(self):
        self.assertEqual([], [name for name, data in self.recorded
                              if not recordings.healthy(data)])

    def test_the_spread_the_issue_asks_for(self):
        self.assertGreaterEqual(len(self.recorded), 40)
        shapes = [data['shape'] for _, data in self.recorded]
        rams = {s['ram_mib'] for s in shapes}
        self.assertEqual((256, 1024), (min(rams), max(rams)))
        shares = [s['wss_mib'] / s['ram_mib'] for s in shapes]
        self.assertLessEqual(min(shares), 0.1)
        self.assertGreaterEqual(max(shares), 0.7)
        self.assertEqual({'sequential', 'random'},
                         {s['pattern'] for s in shapes})
        rates = {s['dirty_mibs'] for s in shapes}
        self.assertTrue({0, 4, 128}.issubset(rates), rates)
        links = {s['link_mibs'] for s in shapes}
        self.assertTrue({0, 8, 64}.issubset(links), links)
        policies = {p for _, data in self.recorded for p in data['policies']}
        self.assertIn('precopy', policies)
        self.assertGreaterEqual(len(policies - {'precopy'}), 3)
        results = {data['result'] for _, data in self.recorded}
        self.assertTrue({'converged', 'postcopy', 'aborted'}.issubset(results))
        # Both suites: QEMU 10.0 (forky-qemu10) and 11.1 (forky).
        self.assertEqual({'10.0', '11.1'},
                         {recordings.qemu_version(data)
                          for _, data in self.recorded})

    def test_agreement_does_not_fall(self):
        agree = [name for name, data in self.recorded
                 if all(c.ok for c in recordings.replay(self.conf, data))]
        self.assertGreaterEqual(len(agree), self.AGREE_AT_LEAST,
                                'agree: %s' % agree)


class TestLabRepeats(base.TestCase):
    """The eight uncapped shapes of the plan, run four times each.

    ``tools/lab/soak --plan record --from N --runs N --repeat 4``: the
    benchmark guide reads from them how far the lab repeats a migration
    (within a day, against the recordings of another), and they are a set
    the model was not fitted on: a change fitted on the recordings must
    not lose them.
    """

    DATA = os.path.join(os.path.dirname(__file__), 'data', 'lab_repeats')
    AGREE_AT_LEAST = 19  # of 32

    def test_every_guest_survived_and_each_shape_ran_four_times(self):
        repeats = recordings.load(self.DATA)
        self.assertEqual([], [name for name, data in repeats
                              if not recordings.healthy(data)])
        shapes = {}
        for name, data in repeats:
            run = name.rsplit('-r', 1)[0]
            shapes.setdefault(run, set()).add(
                tuple(sorted(data['shape'].items())))
        self.assertEqual(8, len(shapes))
        self.assertEqual([1] * 8, [len(s) for s in shapes.values()])
        self.assertEqual(32, len(repeats))
        self.assertEqual({0}, {data['shape']['link_mibs']
                               for _, data in repeats})

    def test_the_lab_repeats_uncapped_downtimes_only_within_a_day(self):
        # The guide's reason for the 9 recordings left (8 uncapped): runs
        # of one uncapped shape agree about half the time the same day,
        # seldom with the recording of another day.
        repeats = recordings.load(self.DATA)
        originals = [entry for entry
                     in recordings.load(TestLabRecordings.DATA)
                     if entry[0] in {recordings.shape_of(name)
                                     for name, _ in repeats}]
        same_day = recordings.lab_against_itself(self.conf, repeats)
        both = recordings.lab_against_itself(self.conf, repeats + originals)
        self.assertEqual(96, same_day[1])
        self.assertEqual(160, both[1])
        self.assertTrue(0.25 < same_day[0] / same_day[1] < 0.75, same_day)
        across = (both[0] - same_day[0], both[1] - same_day[1])
        self.assertLess(across[0] / across[1], 0.15, across)

    def test_they_replay(self):
        replayed = [recordings.replay(self.conf, data)
                    for _, data in recordings.load(self.DATA)]
        self.assertEqual(32, len(replayed))
        self.assertTrue(all(checks[0].ok for checks in replayed))
        agree = [checks for checks in replayed
                 if all(check.ok for check in checks)]
        self.assertGreaterEqual(len(agree), self.AGREE_AT_LEAST)
