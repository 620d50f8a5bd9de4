# SPDX-License-Identifier: Apache-2.0
"""How fast a policy that never switches needlessly can be: a bound.

A ``phased`` guest and its steady twin (same RAM, link, seed, working set
and busy rate) give libvirt the same statistics until a bitmap sync shows
that the phased guest went quiet: between syncs the data left falls at the
bandwidth whatever the guest does, and the dirty figures change only at a
sync. Any policy that reads those statistics therefore decides the same
for both until that sync. If it must not switch the phased guest, because
pure pre-copy converges on it, it must not switch the twin before that
sync either.

Holding each twin's switch until then, and switching the moment the
default chain asks after it, gives the fastest any such policy can be on
the twins. With the other workloads at their present figures, that is a
lower bound on ``ratio_to_first_pass_p95`` under "0 unnecessary
switches". With the others at no cost at all (a ratio of 0), it is a bound
for any policy; it settles whether the two targets can be met together on
a matrix, whatever policy one writes.
"""

import dataclasses

from nova_postcopy.bench import runner
from nova_postcopy.policies import base

# Passes of the twins whose leftovers differ by more than this share are
# told apart. The jitter of two same-seed runs stays below it; 5 % or 20 %
# move no moment but one (1 GiB over 1 Gbit/s, by 0.8 s at 20 %).
DISTINGUISHABLE = 0.01


@dataclasses.dataclass
class Twin:
    phased: str
    told_apart_s: float
    first_pass_s: float
    default_s: float
    held_s: float

    @property
    def default_ratio(self):
        return self.default_s / self.first_pass_s

    @property
    def held_ratio(self):
        return self.held_s / self.first_pass_s


class HeldChain:
    """A chain whose switches wait until ``until_s`` of job time."""

    def __init__(self, chain, until_s):
        self.chain = chain
        self.until_s = until_s

    def decide(self, progress, context):
        decision = self.chain.decide(progress, context)
        if (decision.action is base.Action.SWITCH
                and progress.elapsed_s < self.until_s):
            return base.Decision.keep_going(
                'held until %.1f s: %s' % (self.until_s, decision.reason))
        return decision

    def force_complete(self, progress, context):
        return self.chain.force_complete(progress, context)


def steady_twin(workload):
    return dataclasses.replace(workload, pattern='steady',
                               name='steady twin of %s' % workload.label)


def _run(conf, workload, name, wrap=None):
    """The outcome of one run with a chain of its own."""
    chain, budget_s = runner.build(name, conf, workload)
    if wrap is not None:
        chain = wrap(chain, budget_s)
    outcome, _ = runner.simulate(chain, budget_s, conf, workload)
    return outcome


def _precopy(conf, workload):
    """(outcome, passes) of pure pre-copy."""
    outcome = _run(conf, workload, 'precopy')
    return outcome, outcome.passes


def told_apart_s(conf, phased):
    """Job time of the first sync at which the twins' figures differ."""
    outcome, mine = _precopy(conf, phased)
    _, theirs = _precopy(conf, steady_twin(phased))
    for one, other in zip(mine, theirs):
        if (abs(one.dirtied - other.dirtied)
                > DISTINGUISHABLE * max(other.dirtied, 1)):
            return one.end_s
    if outcome.result == 'converged':
        # The sync that let the stop-and-copy begin; the twin's did not.
        return outcome.total_s - outcome.downtime_ms / 1000.0
    return None


def _same_guest(workloads, twin):
    for workload in workloads:
        if dataclasses.replace(workload, seed=twin.seed,
                               name=twin.name) == twin:
            return workload.label
    return twin.label


def compare(conf, phased):
    """The twin of a phased guest under the default chain, free and held."""
    twin = steady_twin(phased)
    apart = told_apart_s(conf, phased)
    # Each run its own chain: policies keep what they learnt.
    free = _run(conf, twin, runner.DEFAULT)
    held = _run(conf, twin, runner.DEFAULT,
                lambda chain, budget_s: HeldChain(chain, apart or budget_s))
    first = _run(conf, twin, 'virsh_first_pass')
    return Twin(phased=phased.label, told_apart_s=apart,
                first_pass_s=first.total_s, default_s=free.total_s,
                held_s=held.total_s)


@dataclasses.dataclass
class Bound:
    twins: list
    p95_today: float
    # The others as the default chain runs them today.
    p95_lowest: float
    # The others at no cost: no policy without unneeded switches beats it.
    p95_floor: float


def bound(conf, workloads):
    """What holding the twins costs the default chain's p95."""
    rows = runner.run([runner.DEFAULT], conf, workloads)
    by = {(r.policy, r.workload): r for r in rows}
    converging = {w.label for w in workloads
                  if by[('precopy', w.label)].outcome == 'converged'}
    ratios = {
        w.label: (by[(runner.DEFAULT, w.label)].total_s
                  / by[('virsh_first_pass', w.label)].total_s)
        for w in workloads if w.label not in converging}
    phased = [w for w in workloads
              if w.pattern == 'phased' and w.label in converging
              and by[(runner.DEFAULT, w.label)].switched]
    twins = [compare(conf, w) for w in phased]
    held = dict(ratios)
    floor = dict.fromkeys(ratios, 0.0)
    for guest, twin in zip(phased, twins):
        # The twin stands in for the workload that differs from it by its
        # seed only (the matrix's busy guest of that size), if any.
        key = _same_guest(workloads, steady_twin(guest))
        held[key] = floor[key] = twin.held_ratio
    return Bound(twins=twins,
                 p95_today=runner.quantile(list(ratios.values()), 0.95),
                 p95_lowest=runner.quantile(list(held.values()), 0.95),
                 p95_floor=runner.quantile(list(floor.values()), 0.95))
