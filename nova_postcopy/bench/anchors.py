# SPDX-License-Identifier: Apache-2.0
"""What other systems decide, as policies, to measure ours against.

Each anchor reproduces the published behaviour of one system on the same
samples our policies get (see ``doc/source/contributor/benchmark.rst`` for
the sources). They deliberately keep their flaws: they read the raw
iteration counter, and none holds a switch during a network stall.
"""

import math

from nova_postcopy import budget
from nova_postcopy.policies import base
from nova_postcopy.policies import chain
from nova_postcopy import units

Action = base.Action
Decision = base.Decision


class NovaTimeout(base.SwitchPolicy):
    """Nova 34: downtime steps, then force-complete at the timeout.

    ``live_migration_downtime`` 500 ms in 10 steps, one every 75 s/GiB, the
    first at 50 ms; ``live_migration_completion_timeout`` 800 s/GiB with
    ``live_migration_timeout_action = force_complete``.
    """

    name = 'nova_timeout'
    DOWNTIME_MS, STEPS, DELAY_PER_GIB = 500, 10, 75

    def __init__(self, conf, data_gib):
        super().__init__(conf)
        delay = int(self.DELAY_PER_GIB * data_gib)
        base_ms = self.DOWNTIME_MS / self.STEPS
        offset = (self.DOWNTIME_MS - base_ms) / self.STEPS
        self._steps = [(delay * i, int(base_ms + offset * i))
                       for i in range(self.STEPS + 1)]
        self._applied = -1

    def decide(self, progress, context):
        if progress.elapsed_s >= context.budget_s:
            return self.switch('completion timeout of %.0f s',
                               context.budget_s)
        step = self._applied
        while (step + 1 < len(self._steps)
               and progress.elapsed_s >= self._steps[step + 1][0]):
            step += 1
        if step > self._applied:
            self._applied = step
            return Decision(Action.SET_DOWNTIME, 'downtime step',
                            self.name, self._steps[step][1])
        return self.keep_going()


class VirshFirstPass(base.SwitchPolicy):
    """virsh ``--postcopy-after-precopy``: switch when iteration 2 begins."""

    name = 'virsh_first_pass'

    def decide(self, progress, context):
        if progress.sample.memory_iteration >= 2:
            return self.switch('iteration %d began',
                               progress.sample.memory_iteration)
        return self.keep_going()


class PostcopyFromStart(base.SwitchPolicy):
    """Post-copy as soon as the job moves data: each page moves once.

    Not a system's policy but the yardstick of issue #14's physical bound
    (the time to move the non-zero RAM once), and what virsh's rule comes
    to where QEMU re-syncs within the first pass (11.1). What it saves in
    total time it pays for in post-copy: the guest runs on the destination
    while most of its memory is still on the source, for the whole
    transfer, and waits on the network for every page of its working set
    the push has not reached yet.
    """

    name = 'postcopy_from_start'

    def decide(self, progress, context):
        if progress.sample.data_processed > 0:
            return self.switch('the migration moves data')
        return self.keep_going()


class OvirtPostcopy(base.SwitchPolicy):
    """oVirt's "Post-copy migration" policy as VDSM runs it.

    Downtime 100 ms, then 150 ms and 200 ms on the next new iterations,
    then post-copy on the one after; VDSM looks every 10 s.

    Checked against the sources: the policy in oVirt/ovirt-engine
    ``packaging/dbscripts/upgrade/pre_upgrade/0000_config.sql``
    (``MigrationPolicies``, compatibility 4.7, at 3eec250211): initial
    ``setDowntime 100``, stalling limits 1 (150) and 2 (200), last items
    ``postcopy`` then ``abort``; ``ConvergenceSchedule.java`` (ad931d2446)
    gives the last items limit -1. VDSM ``lib/vdsm/virt/migration.py``
    (``MonitorThread``, 0b25557ae8) runs one item per new iteration seen,
    once the iterations since the start exceed its limit, every
    ``migration_monitor_interval`` (10 s, ``config.py.in``); -1 is "the
    next new iteration", which is what limit 3 does here. VDSM aborts after
    ``migration_max_time_per_gib_mem`` (64 s/GiB): the chain's budget. Not
    modelled: the policy also turns on QEMU's auto-converge, which
    throttles the guest's vCPUs (the simulator has no CPU throttling).
    """

    name = 'ovirt_postcopy'
    INTERVAL_S = 10.0
    SCHEDULE = ((None, 100), (1, 150), (2, 200), (3, 'postcopy'))

    def __init__(self, conf):
        super().__init__(conf)
        self._next_look = 0.0
        self._step = 0
        self._last_iteration = None
        self._first_iteration = None

    def decide(self, progress, context):
        sample = progress.sample
        if progress.elapsed_s < self._next_look:
            return self.keep_going()
        self._next_look = progress.elapsed_s + self.INTERVAL_S
        if self._step == 0:
            self._step = 1
            self._first_iteration = self._last_iteration = (
                sample.memory_iteration)
            return Decision(Action.SET_DOWNTIME, 'initial downtime',
                            self.name, 100)
        if sample.memory_iteration <= self._last_iteration:
            return self.keep_going()
        self._last_iteration = sample.memory_iteration
        current = sample.memory_iteration - self._first_iteration
        limit, action = self.SCHEDULE[self._step]
        if limit >= current:
            return self.keep_going()
        self._step = min(self._step + 1, len(self.SCHEDULE) - 1)
        if action == 'postcopy':
            return self.switch('schedule reached post-copy at iteration %d',
                               sample.memory_iteration)
        return Decision(Action.SET_DOWNTIME, 'stalling', self.name, action)


class KubevirtStall(base.SwitchPolicy):
    """KubeVirt's stall detector (VEP 248), with post-copy allowed.

    Modelled on kubevirt/kubevirt d923fdb815:
    ``pkg/virt-launcher/virtwrap/live-migration-source.go`` (the monitor
    loop, ``handleStallDetection``, ``processCompletionTimeouts``),
    ``stall-detector.go`` and the defaults in
    ``pkg/virt-config/virt-config.go``. It runs behind the
    ``MigrationStallDetection`` feature gate; ``allowWorkloadDisruption``
    defaults to ``allowPostCopy``, both on here.

    * The monitor wakes on each migration-iteration event (one per QEMU
      dirty-bitmap sync) or after 400 ms without one. Here a poll that sees
      ``memory_iteration`` move is an event wake.
    * An event records (elapsed, data remaining); a wake without one feeds
      an EWMA (alpha 0.4) of ``memory_bps``. Under QEMU 11.1's syncs ten
      times a second with post-copy enabled, every wake is an event: the
      EWMA is never set, nothing is ever judged stalled, and the completion
      timeout aborts ("value of ewmaBandwidthBps not set").
    * Stalled: the newest record is not 4 % below the lowest one older than
      40 s (``stallProgressTimeout``). Then at a local minimum (within 4 %
      of the best record, the best relaxed to the next higher record after
      a patience of 40 s that halves each time) it switches to post-copy,
      if moving what remains at the EWMA rate fits before twice the
      completion time.
    * At the completion time (150 s per decimal GB of RAM, rounded up) it
      switches if that fits, and aborts otherwise.
    """

    name = 'kubevirt_stall'
    STALL_PROGRESS_TIMEOUT_S, STALL_MARGIN = 40.0, 0.04
    PATIENCE_DECAY, EWMA_ALPHA, COMPLETION_TIMEOUT_FACTOR = 0.5, 0.4, 2.0

    def __init__(self, conf):
        super().__init__(conf)
        self._last_iteration = None
        self._record = None            # (elapsed s, remaining) at an event
        self._candidates = []          # records, remaining falling
        self._min_outside = None       # lowest record older than the window
        self._stalled = False
        self._best = None
        self._history = []
        self._relax_at = None
        self._patience = self.STALL_PROGRESS_TIMEOUT_S
        self._ewma = 0.0

    def decide(self, progress, context):
        sample = progress.sample
        now = progress.elapsed_s
        if sample.memory_iteration != self._last_iteration:
            self._last_iteration = sample.memory_iteration
            self._record = (now, sample.data_remaining)
            if self._stall_iteration(self._record):
                decision = self._at_stall(now, context)
                if decision is not None:
                    return decision
        elif sample.memory_bps:
            self._ewma = (sample.memory_bps if not self._ewma else
                          self.EWMA_ALPHA * sample.memory_bps
                          + (1 - self.EWMA_ALPHA) * self._ewma)
        return self._completion_timeout(now, context)

    def _stall_iteration(self, record):
        if not self._ewma:
            return False
        self._update_candidates(record)
        if self._stalled:
            self._relax(record)
            return True
        if self._min_outside is not None and record[1] >= (
                self._min_outside[1] * (1 - self.STALL_MARGIN)):
            self._best = min([self._min_outside[1]] +
                             [r for _, r in self._candidates])
            self._history = []
            self._patience = self.STALL_PROGRESS_TIMEOUT_S
            self._relax_at = record[0] + self._patience
            self._stalled = True
            return True
        return False

    def _update_candidates(self, record):
        while self._candidates and (record[0] - self._candidates[0][0]
                                    >= self.STALL_PROGRESS_TIMEOUT_S):
            oldest = self._candidates.pop(0)
            if self._min_outside is None or oldest[1] < self._min_outside[1]:
                self._min_outside = oldest
        if self._min_outside is not None and record[1] > self._min_outside[1]:
            return
        if self._candidates and record[1] >= self._candidates[-1][1]:
            return
        self._candidates.append(record)

    def _relax(self, record):
        self._history.append(record[1])
        if record[0] < self._relax_at:
            return
        self._history.sort()
        self._best = self._history.pop(0)
        self._patience *= self.PATIENCE_DECAY
        self._relax_at = record[0] + self._patience

    def _fits(self, now, context):
        """What is left moves, at the EWMA rate, before twice the time."""
        if not self._ewma:
            return False
        transfer_s = (self._record[1] / self._ewma if self._record else 0.0)
        return transfer_s <= (
            context.budget_s * self.COMPLETION_TIMEOUT_FACTOR - now)

    def _at_stall(self, now, context):
        if self._record[1] > self._best * (1 + self.STALL_MARGIN):
            return None
        if not self._fits(now, context):
            return None
        return self.switch('stalled; remaining data at a local minimum')

    def _completion_timeout(self, now, context):
        # KubeVirt acts at its first wake past the time (within 1.4 s).
        if now < context.budget_s:
            return self.keep_going()
        if not self._ewma:
            return Decision(Action.ABORT, 'completion timeout of %.0f s; '
                            'bandwidth estimate never set' % context.budget_s,
                            self.name)
        if self._fits(now, context):
            return self.switch('completion timeout of %.0f s',
                               context.budget_s)
        return Decision(Action.ABORT, 'completion timeout of %.0f s; what '
                        'remains cannot move before the deadline'
                        % context.budget_s, self.name)


def _anchor_chain(policies, budget_action=Action.ABORT):
    return chain.PolicyChain(policies, budget_action=budget_action,
                             guard=False)


def build(name, conf, workload):
    """The chain and the context budget of an anchor for a workload.

    :returns: (chain, budget_s)
    """
    ram_mib = workload.ram_gib * 1024
    ours = budget.precopy_budget_s(budget.migration_data_gib(ram_mib),
                                   conf.precopy_timeout_per_gib,
                                   conf.precopy_timeout_max)
    if name == 'precopy':
        return _anchor_chain([]), ours
    if name == 'nova_timeout':
        data_gib = budget.migration_data_gib(ram_mib)
        return (_anchor_chain([NovaTimeout(conf, data_gib)]),
                800.0 * data_gib)
    if name == 'virsh_first_pass':
        return _anchor_chain([VirshFirstPass(conf)]), math.inf
    if name == 'postcopy_from_start':
        return _anchor_chain([PostcopyFromStart(conf)]), math.inf
    if name == 'ovirt_postcopy':
        # VDSM aborts after migration_max_time_per_gib_mem (64 s/GiB).
        return (_anchor_chain([OvirtPostcopy(conf)]),
                64.0 * max(workload.ram_gib, 1.0))
    if name == 'kubevirt_stall':
        # completionTimeoutPerGiB 150, per decimal GB rounded up.
        gigabytes = math.ceil(workload.ram_gib * units.GIB / 1e9)
        return _anchor_chain([KubevirtStall(conf)]), 150.0 * gigabytes
    raise KeyError(name)


NAMES = ('precopy', 'nova_timeout', 'virsh_first_pass', 'ovirt_postcopy',
         'kubevirt_stall', 'postcopy_from_start')
