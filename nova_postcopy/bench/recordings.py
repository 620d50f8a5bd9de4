# SPDX-License-Identifier: Apache-2.0
"""The simulator against migrations recorded on the lab (issue #14).

``tools/lab/soak --plan record --record DIR`` keeps each lab migration's
report (every sample libvirt gave, the passes, the switch, the end), its
guest's shape, the dirtier's own write rate, the hosts' versions and the
guest's health where it ended. Each recording is replayed here: the same
guest, cap and policies in the simulator, the QEMU's sync mode from the
source's version (once a pass when post-copy was not enabled, as both
measured QEMUs do then), and the two compared on what the policies and the
operator see. A recording agrees when every comparison holds.

How a recording becomes a workload, and why:

* the write rate is what the dirtier says it did (its median line), not
  the shape asked for: flat out (0) is whatever TCG manages; it writes
  each page of its working set once per round, sequentially or in a
  scattered order alike: a ``sweep``;
* the zero pages are those QEMU found by the job's end, the share of RAM
  the guest never touched; most lie in one run at RAM's end, below the
  kernel's own top-down allocations (``zeros=end``): the first passes
  found hundreds of MiB of them between two polls, in their last tenths
  of a second; the rest lie spread below (``spread_zero_pct``);
* the link pre-copy gets is what QEMU said it moved (``memory_bps``, its
  median), capped or not: a cap lets a little more through (16.28 MiB/s
  for 16, 8.77 for 8); the veth's own speed carries post-copy and,
  uncapped, pre-copy's pages sent again (VETH_GBPS: post-copy pushed
  30-724 MiB in 0.07-0.55 s), and the stop-and-copy, the vCPUs stopped,
  about twice as fast (``STOP_MIBS``), but for pages the destination
  never had: it sends those no faster than the uncapped first passes went
  (``FRESH_MIBS``);
* libvirt's set-up is the job time before QEMU reported its first pass;
* a run with a cap is ``capped``: QEMU enforces it in 100 ms windows,
  which decide when it checks its threshold and what libvirt reads.

The recorded passes are read again from the samples by today's tracker,
the one that reads the simulated twin's: the two are compared alike.
"""

import dataclasses
import gzip
import itertools
import json
import math
import os
import re
import statistics

from nova_postcopy.bench import runner
from nova_postcopy import clock
from nova_postcopy import monitor
from nova_postcopy.policies import base
from nova_postcopy.policies import chain as chain_mod
from nova_postcopy import progress
from nova_postcopy.sim import job
from nova_postcopy.sim import model
from nova_postcopy.sim import workload as workload_mod
from nova_postcopy import units

MIB = units.MIB
# The tolerances a recording is held to.
RELATIVE = 0.10                 # times and data: 10 % of the measured
DOWNTIME_MS = 15.0              # downtime: absolute
POSTCOPY_S = 0.3                # post-copy duration: or this, if larger
# The lab's veth under its TCG guests as post-copy pushes and uncapped
# pre-copy sends pages again: about 1.1 GiB/s (see the module's docstring).
VETH_GBPS = 9.5
# Pages the destination never had, in the stop-and-copy: as fast as the
# first passes of the uncapped recordings went (median of their 117
# samples, 177-384 MiB/s), likely the destination faulting in each page.
FRESH_MIBS = 294
# Pages sent before, in the stop-and-copy: with the vCPUs stopped, past
# the stop's fixed cost (model.STOP_OVERHEAD_S), fitted on recordings 18
# and 40 (342 and 59 MiB in 183 and 53 ms).
STOP_MIBS = 2176
PAGE = 4096
# Zero pages found faster than this, poll after poll, make one run of them.
# The longest is the run at RAM's top (found at 6 GiB/s or more on the
# lab); shorter ones count as spread through the RAM below.
ZERO_RUN_BPS = 100 * MIB


class RecordingError(ValueError):
    """A recording this module cannot replay, and why."""


@dataclasses.dataclass
class Check:
    metric: str
    measured: float
    simulated: float
    ok: bool


def load(directory):
    """[(name, recording)] of every ``*.json[.gz]`` in ``directory``."""
    found = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.endswith('.json'):
            with open(path) as handle:
                found.append((name[:-len('.json')], json.load(handle)))
        elif name.endswith('.json.gz'):
            with gzip.open(path, 'rt') as handle:
                found.append((name[:-len('.json.gz')], json.load(handle)))
    return found


def qemu_version(recording):
    """'10.0' of the source host's QEMU, from the recorded versions."""
    match = re.search(r'host A: .*QEMU (\d+)\.(\d+)', recording['hosts'][0])
    if not match:
        raise RecordingError('no QEMU version in %r' % recording['hosts'])
    return '%s.%s' % match.groups()


def _gbps(bytes_per_s):
    return bytes_per_s * 8 / 1e9


def guest_rate(recording):
    rates = [rate for _, rate in recording.get('guest_rates', [])]
    if rates:
        return statistics.median(rates) * MIB
    if recording['shape']['dirty_mibs']:
        return recording['shape']['dirty_mibs'] * MIB
    raise RecordingError('no rate of the guest: its console had no '
                         'DIRTIER line and the shape said flat out')


def zero_layout(recording):
    """(zero pages, the part of them spread), as shares of RAM.

    All the zero pages the run found, by its end: QEMU finds them as its
    walk reaches them, and an uncapped first pass can sync, its threshold
    met, before it reached the long run of them at RAM's top (``19``:
    40 MiB found in the first pass, 117 by the end, 79 in the
    stop-and-copy). Most lie in that run, found within a poll or two
    (``ZERO_RUN_BPS``); the rest (18-46 MiB on the lab's guests) lie
    spread through the RAM below it.
    """
    samples = recording['samples']
    ram = max(s['memory_total'] for s in samples)
    found = [(s['time_elapsed_s'], s['memory_constant'] * PAGE)
             for s in samples]
    run = longest = 0.0
    for (before_s, before), (after_s, after) in zip(found, found[1:]):
        if after - before >= ZERO_RUN_BPS * max(after_s - before_s, 0.0):
            run += after - before
            longest = max(longest, run)
        else:
            run = 0.0
    total = min(found[-1][1] / ram, 0.99)
    return total, min(max(found[-1][1] - longest, 0.0) / ram, total)


def setup_of(recording):
    """Job time until QEMU reported its first pass: libvirt's set-up."""
    return next((s['time_elapsed_s'] for s in recording['samples']
                 if s['memory_iteration'] >= 1), 0.0)


def precopy_rate(recording):
    """Bytes/s pre-copy moved, as QEMU said: the median of its samples."""
    moving = [s['memory_bps'] for s in recording['samples']
              if s['memory_bps'] and not s['postcopy_requests']]
    if not moving:
        raise RecordingError('no sample of pre-copy moving data')
    return statistics.median(moving)


def workload_of(recording):
    """The recorded guest and link as a simulated workload."""
    shape = recording['shape']
    version = qemu_version(recording)
    if version not in workload_mod.QEMU_SYNC:
        raise RecordingError('QEMU %s: its sync mode was not measured'
                             % version)
    link = _gbps(precopy_rate(recording)) / model.LINK_EFFICIENCY
    zeros, spread = zero_layout(recording)
    return workload_mod.Workload(
        ram_gib=shape['ram_mib'] / 1024.0, link_gbps=link,
        wss_gib=shape['wss_mib'] / 1024.0,
        dirty_gbps=_gbps(guest_rate(recording)),
        zero_pct=100.0 * zeros, spread_zero_pct=100.0 * spread,
        uncapped_gbps=VETH_GBPS,
        fresh_gbps=_gbps(FRESH_MIBS * MIB) / model.LINK_EFFICIENCY,
        stop_gbps=_gbps(STOP_MIBS * MIB) / model.LINK_EFFICIENCY,
        capped=bool(shape['link_mibs']),
        pattern='sweep', zeros='end', setup_s=setup_of(recording),
        # Both QEMUs measured sync once per pass without post-copy.
        sync=(workload_mod.QEMU_SYNC[version] if postcopy_allowed(recording)
              else 'pass'), seed=1,
        name='%s %s' % (shape['pattern'], '+'.join(recording['policies'])))


def recorded_options(recording):
    """The ``[postcopy]`` values the recorded run was given, as numbers."""
    values, section = {}, None
    for line in recording.get('config', '').splitlines():
        line = line.strip()
        if line.startswith('['):
            section = line.strip('[]')
        elif '=' in line and section == 'postcopy':
            key, value = (part.strip() for part in line.split('=', 1))
            try:
                values[key] = float(value)
            except ValueError:
                pass  # a list: the policies come from the recording
    return values


def postcopy_allowed(recording):
    return ('precopy' not in recording['policies']
            and recording.get('plan', '').startswith('post-copy allowed'))


def options_of(conf, recording):
    policies = [] if 'precopy' in recording['policies'] else list(
        recording['policies'])
    return runner.PolicyOptions(conf, policies, **recorded_options(recording))


def simulate(conf, recording, options=None):
    """The outcome of the recorded migration's twin in the simulator.

    :param options: the recording's :func:`options_of`, if at hand.
    """
    options = options or options_of(conf, recording)
    guest = workload_of(recording)
    allowed = postcopy_allowed(recording)
    sim = model.MigrationModel(guest, postcopy_enabled=allowed,
                               max_downtime_ms=options.max_downtime_ms)
    virtual = clock.VirtualClock()
    context = base.MigrationContext(recording['budget_s'],
                                    options.max_downtime_ms, allowed)
    watcher = monitor.MigrationMonitor(
        chain_mod.PolicyChain.from_conf(options), context, virtual,
        poll_interval=options.poll_interval,
        horizon_s=recording['budget_s'] * 4)
    return watcher.run(job.SimulatedJob(sim, virtual))


def _close(metric, measured, simulated, floor=0.0):
    allowed = max(RELATIVE * abs(measured), floor)
    return Check(metric, measured, simulated,
                 abs(simulated - measured) <= allowed)


def measured_passes(recording, max_downtime_ms):
    """The recording's passes as today's tracker sees its samples.

    The report kept the passes of the tracker that ran then; read again,
    the samples give the passes the simulated twin is measured with.
    """
    tracker = progress.ProgressTracker(max_downtime_ms)
    started = (recording['total_s'] - recording['postcopy_s']
               if recording['result'] == 'postcopy' else None)
    for values in recording['samples']:
        if started is not None and values['time_elapsed_s'] >= started:
            break
        if values['memory_total'] and not values['memory_remaining']:
            break  # the stop-and-copy is over: its figure is the downtime
        tracker.update(progress.Sample(**values))
    return tracker.passes


def compare(recording, outcome, max_downtime_ms, poll_interval):
    """The comparisons of a recording with its simulated twin.

    The data a pass left is read at the first poll after QEMU's sync,
    which falls anywhere in the poll's interval, recorded or simulated
    alike: either reading misses up to one interval's worth of pre-copy's
    rate (0.9 MiB at 8.77 MiB/s, polled every 0.1 s), the finest the
    comparison can hold, so that much is allowed if more than the 10 %.
    """
    poll_mib = precopy_rate(recording) * poll_interval / MIB
    checks = [Check('result', recording['result'], outcome.result,
                    recording['result'] == outcome.result),
              _close('total s', recording['total_s'], outcome.total_s)]
    for real, simulated in zip(measured_passes(recording, max_downtime_ms),
                               outcome.passes):
        checks.append(_close('pass %d end s' % real.number,
                             real.end_s, simulated.end_s))
        checks.append(_close('pass %d left MiB' % real.number,
                             real.dirtied / MIB, simulated.dirtied / MIB,
                             poll_mib))
    if recording['switch_at_s'] is not None:
        checks.append(_close('switch s', recording['switch_at_s'],
                             outcome.switch_at_s or 0.0))
    if recording['result'] == 'converged':
        checks.append(_close('downtime ms', recording['downtime_ms'] or 0,
                             outcome.downtime_ms or 0, DOWNTIME_MS))
    if recording['result'] == 'postcopy':
        checks.append(_close('post-copy s', recording['postcopy_s'],
                             outcome.postcopy_s, POSTCOPY_S))
    return checks


def replay(conf, recording):
    """The comparisons of a recording with its twin, simulated now."""
    options = options_of(conf, recording)
    return compare(recording, simulate(conf, recording, options),
                   options.max_downtime_ms, options.poll_interval)


def tolerances():
    """The tolerances a recording is held to, in words."""
    return ('times %d %%, data left per pass %d %% or one poll of '
            "pre-copy's rate, downtime %d ms, post-copy %d %% or %.1f s" % (
                RELATIVE * 100, RELATIVE * 100, DOWNTIME_MS, RELATIVE * 100,
                POSTCOPY_S))


# How the comparisons of a kind are summed up: (kind, title, unit); a
# relative error in per cent, the downtime's absolute error in ms.
ERROR_KINDS = (('total', 'total time', '%'),
               ('pass end', 'pass ends', '%'),
               ('left', 'data left per pass', '%'),
               ('switch', 'switch moment', '%'),
               ('downtime', 'downtime', 'ms'),
               ('post-copy', 'post-copy duration', '%'))


def _kind(metric):
    if metric == 'total s':
        return 'total'
    if metric.startswith('pass '):
        return 'pass end' if metric.endswith(' end s') else 'left'
    return {'switch s': 'switch', 'downtime ms': 'downtime',
            'post-copy s': 'post-copy'}.get(metric)


def _nearest_rank(values, share):
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def error_summary(replayed):
    """{kind: (comparisons, median, 90th percentile)} over ``replayed``.

    The figures the benchmark guide gives for the recordings, from the
    comparisons :func:`report` made: relative errors in per cent, the
    downtime's in ms.

    :param replayed: [(name, recording, checks)], as :func:`report` gives.
    """
    errors = {kind: [] for kind, _, _ in ERROR_KINDS}
    for _, _, checks in replayed:
        for check in checks:
            kind = _kind(check.metric)
            if kind is None:
                continue
            gap = abs(check.simulated - check.measured)
            if kind == 'downtime':
                errors[kind].append(gap)
            elif check.measured:
                errors[kind].append(100.0 * gap / abs(check.measured))
    return {kind: (len(values), statistics.median(values),
                   _nearest_rank(values, 0.9))
            for kind, values in errors.items() if values}


def healthy(recording):
    """The verdict the lab's check gave the guest where it ended."""
    return recording['health']['healthy']


def report(conf, directory):
    """[(name, recording, checks)] for every recording in ``directory``."""
    return [(name, recording, replay(conf, recording))
            for name, recording in load(directory)]


def shape_of(name):
    """The run a repeat repeats: ``forky-qemu10-37-r2`` of ``...-37``.

    ``tools/lab/soak --repeat K`` names the k-th run of a plan's migration
    ``<suite>-<run>-r<k>``.
    """
    return re.sub(r'-r\d+$', '', name)


def as_outcome(recording, max_downtime_ms):
    """A recorded run, in the place :func:`compare` gives the twin.

    Its passes are read by today's tracker, as the twin's are.
    """
    return monitor.Outcome(
        result=recording['result'], total_s=recording['total_s'],
        switch_at_s=recording['switch_at_s'],
        downtime_ms=recording['downtime_ms'],
        postcopy_s=recording['postcopy_s'],
        passes=measured_passes(recording, max_downtime_ms))


def lab_against_itself(conf, recorded):
    """(pairs that agree, pairs) of runs of one shape, one against another.

    Each run of a shape is held, under the tolerances the model is held
    to, against every other run of the same shape standing where the twin
    stands: how far the lab repeats a migration, and so the most a model
    can be asked to match one run. Ordered pairs: a tolerance is relative
    to what was measured.

    :param recorded: [(name, recording)], repeats and what they repeat.
    """
    by_shape = {}
    for name, recording in recorded:
        by_shape.setdefault(shape_of(name), []).append(recording)
    agree = pairs = 0
    for runs in by_shape.values():
        for measured, other in itertools.permutations(runs, 2):
            options = options_of(conf, measured)
            checks = compare(measured,
                             as_outcome(other, options.max_downtime_ms),
                             options.max_downtime_ms, options.poll_interval)
            pairs += 1
            agree += all(check.ok for check in checks)
    return agree, pairs
