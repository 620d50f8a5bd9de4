# SPDX-License-Identifier: Apache-2.0
"""The simulator against migrations recorded on the lab (issue #14).

``tools/lab/soak --plan record --record DIR`` keeps each lab migration's
report (every sample libvirt gave, the passes, the switch, the end), its
guest's shape, the dirtier's own write rate, the hosts' versions and the
guest's health where it ended. Each recording is replayed here: the same
guest, cap and policies in the simulator, the QEMU's sync mode from the
source's version, and the two compared on what the policies and the
operator see. A recording agrees when every comparison holds.

How a recording becomes a workload, and why:

* the write rate is what the dirtier says it did (its median line), not
  the shape asked for: flat out (0) is whatever TCG manages; it writes
  each page of its working set once per round, sequentially or in a
  scattered order alike: a ``sweep``;
* the zero pages are those QEMU found by the end of the first pass (or by
  the end, if it never ended), the share of RAM the guest never touched;
* a cap is the link pre-copy gets (less the stream's overhead, as in the
  model); the veth's own speed carries the stop-and-copy and post-copy;
  without a cap the link is what pre-copy moved, its median rate.
"""

import dataclasses
import gzip
import json
import os
import re
import statistics

from nova_postcopy.bench import runner
from nova_postcopy import clock
from nova_postcopy import monitor
from nova_postcopy.policies import base
from nova_postcopy.policies import chain as chain_mod
from nova_postcopy.sim import job
from nova_postcopy.sim import model
from nova_postcopy.sim import workload as workload_mod
from nova_postcopy import units

MIB = units.MIB
# The tolerances a recording is held to.
RELATIVE = 0.10                 # times and data: 10 % of the measured
DOWNTIME_MS = 15.0              # downtime: absolute
POSTCOPY_S = 0.3                # post-copy duration: or this, if larger
# The lab's veth under the lab's TCG guests (the demo's calibration).
VETH_GBPS = 5.6
PAGE = 4096


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


def zero_share(recording):
    """Zero pages QEMU had found when the first pass ended (or at the end).

    Read there because QEMU finds zero pages as it reaches them: earlier the
    count is a fraction of the share the model needs.
    """
    samples = recording['samples']
    ram = max(s['memory_total'] for s in samples)
    passes = recording['passes']
    chosen = next((s for s in samples if passes
                   and s['time_elapsed_s'] >= passes[0]['end_s']),
                  samples[-1])
    return min(chosen['memory_constant'] * PAGE / ram, 0.99)


def workload_of(recording):
    shape = recording['shape']
    version = qemu_version(recording)
    if version not in workload_mod.QEMU_SYNC:
        raise RecordingError('QEMU %s: its sync mode was not measured'
                             % version)
    if shape['link_mibs']:
        link = _gbps(shape['link_mibs'] * MIB) / model.LINK_EFFICIENCY
        uncapped = VETH_GBPS
    else:
        moving = [s['memory_bps'] for s in recording['samples']
                  if s['memory_bps'] and not s['postcopy_requests']]
        if not moving:
            raise RecordingError('no sample of pre-copy moving data')
        link = _gbps(statistics.median(moving)) / model.LINK_EFFICIENCY
        uncapped = 0.0
    return workload_mod.Workload(
        ram_gib=shape['ram_mib'] / 1024.0, link_gbps=link,
        wss_gib=shape['wss_mib'] / 1024.0,
        dirty_gbps=_gbps(guest_rate(recording)),
        zero_pct=100.0 * zero_share(recording), uncapped_gbps=uncapped,
        pattern='sweep', sync=workload_mod.QEMU_SYNC[version], seed=1,
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


def simulate(conf, recording):
    """The outcome of the recorded migration's twin in the simulator."""
    guest = workload_of(recording)
    allowed = postcopy_allowed(recording)
    policies = [] if 'precopy' in recording['policies'] else list(
        recording['policies'])
    options = runner.PolicyOptions(conf, policies,
                                   **recorded_options(recording))
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


def compare(recording, outcome):
    """The comparisons of a recording with its simulated twin."""
    checks = [Check('result', recording['result'], outcome.result,
                    recording['result'] == outcome.result),
              _close('total s', recording['total_s'], outcome.total_s)]
    for real, simulated in zip(recording['passes'], outcome.passes):
        checks.append(_close('pass %d end s' % real['number'],
                             real['end_s'], simulated.end_s))
        checks.append(_close('pass %d left MiB' % real['number'],
                             real['dirtied'] / MIB, simulated.dirtied / MIB))
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


def healthy(recording):
    """The verdict the lab's check gave the guest where it ended."""
    return recording['health']['healthy']


def report(conf, directory):
    """[(name, recording, checks)] for every recording in ``directory``."""
    return [(name, recording, compare(recording, simulate(conf, recording)))
            for name, recording in load(directory)]
