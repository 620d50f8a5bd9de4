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


class OvirtPostcopy(base.SwitchPolicy):
    """oVirt's "Post-copy migration" policy as VDSM runs it.

    Downtime 100 ms, then 150 ms and 200 ms on the next new iterations,
    then post-copy on the one after; VDSM looks every 10 s.
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
    """KubeVirt's VEP 248 stall detector with its defaults.

    Records (remaining, time) whenever the iteration counter moves, is
    stalled when the newest record is not 4 % below the best record older
    than 40 s, switches to post-copy at a local minimum, relaxing its best
    value after a patience period that halves each time, and switches at
    the completion timeout anyway.
    """

    name = 'kubevirt_stall'
    WINDOW_S, MARGIN, PATIENCE_DECAY = 40.0, 0.04, 0.5

    def __init__(self, conf):
        super().__init__(conf)
        self._records = []
        self._last_iteration = None
        self._patience = self.WINDOW_S
        self._best = None
        self._best_since = None

    def decide(self, progress, context):
        sample = progress.sample
        now = progress.elapsed_s
        if now > context.budget_s:
            return self.switch('completion timeout of %.0f s',
                               context.budget_s)
        if sample.memory_iteration == self._last_iteration:
            return self.keep_going()
        self._last_iteration = sample.memory_iteration
        remaining = sample.data_remaining
        self._records.append((now, remaining))
        outside = [r for t, r in self._records if t < now - self.WINDOW_S]
        if not outside or remaining < min(outside) * (1 - self.MARGIN):
            self._best = None
            return self.keep_going()
        if self._best is None:
            self._best = min(r for _, r in self._records)
            self._best_since = now
        elif now - self._best_since > self._patience:
            higher = sorted(r for _, r in self._records if r > self._best)
            if higher:
                self._best = higher[0]
            self._best_since = now
            self._patience *= self.PATIENCE_DECAY
        if remaining <= self._best * (1 + self.MARGIN):
            return self.switch('stalled; local minimum')
        return self.keep_going()


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
         'kubevirt_stall')
