# SPDX-License-Identifier: Apache-2.0
"""Switch when pre-copy cannot converge in its budget, never while it can.

What a pass leaves for the next one is what QEMU had not walked when it
synced plus u(T): the distinct bytes the guest dirties in the T seconds the
pass takes. QEMU syncs once what is left falls below its threshold X
(bandwidth x downtime target) and completes if what is pending then is
below X (``migration_iteration_run``, QEMU 10.0): a pass walks R - X and
leaves X + u((R - X) / bandwidth), less the writes that landed on the
unwalked X, which were dirty already. A guest writing D bytes/s over a
working set of W bytes dirties u(T) = W * (1 - exp(-D * T / W)): linear for
short passes, saturating at W for long ones. Two measured points of u pin
down W and D, and projecting the excess over X pass by pass says when it
falls within one of QEMU's iterations, or that it never does. The
projection leaves out the writes that land on the unwalked X: credited by
the fitted working set's share, they made it see convergence where there
was none (the matrix's p95 against virsh's first-pass switch: 1.48).

The points are the last two passes when their lengths differ; else the
last pass and QEMU's dirty-rate sampler (``calc-dirty-rate``: distinct
bytes dirtied in 1 s), which a job port may provide. With both, the
decision comes when the first pass ends, the moment virsh's
``--postcopy-after-precopy`` switches. Without either, one case needs no
model: a guest that dirtied faster than the link carried data even over a
long pass dirties faster still over any shorter one, so passes never get
shorter and pre-copy cannot converge.

Before the first pass completes nothing is known of the dirtying (QEMU has
not synced its bitmap yet); the only certain thing is the time the first
pass still needs, which is checked against the budget.

The margin (``forecast_safety_margin``) makes the projection optimistic by
that much (less dirtying, a later deadline), so that measurement noise does
not cause a switch pre-copy did not need. Near a fixed point noise can keep
an optimistic projection converging forever; three passes that did not
improve settle it. The model assumes the guest keeps behaving as it did in
the last passes: a guest that is about to turn quiet will be switched.

Where QEMU re-syncs within passes (11.1, once post-copy is enabled;
measured on the lab), passes read from the data straddle syncs and misfit
the model, but the data left includes the dirty log, so its fall is
measured: a drain that reaches the target within the budget overrules a
"no" of the model.
"""

import math

from nova_postcopy.policies import base
from nova_postcopy import units

MIB = units.MIB
MAX_PROJECTED_PASSES = 1000
# Two passes closer in length than this cannot separate W from D.
DISTINCT_DURATIONS = 0.9
PROBE_S = 1.0
STUCK_PASSES = 3
# QEMU checks its threshold between RAM iterations of up to 50 ms (MAX_WAIT
# in migration/ram.c): an excess it walks within one is the last.
QEMU_ITERATION_S = 0.05


class ForecastPolicy(base.SwitchPolicy):
    name = 'forecast'

    def __init__(self, conf):
        super().__init__(conf)
        self._verdict = None

    def decide(self, progress, context):
        bandwidth = progress.bandwidth
        if not bandwidth or progress.network_stalled:
            return self.keep_going()
        margin = self.conf.forecast_safety_margin / 100.0
        deadline = context.budget_s * (1 + margin)
        if not progress.passes:
            sample = progress.sample
            left = sample.memory_remaining / (bandwidth * sample.walk_factor)
            if progress.elapsed_s + left > deadline:
                return self.switch(
                    'the first pass over RAM alone needs about %.0f s more '
                    'at %.0f MiB/s; the budget has %.0f s left', left,
                    bandwidth / MIB, context.budget_s - progress.elapsed_s)
            return self.keep_going()
        if progress.pass_completed and stuck(progress.passes, margin):
            return self.switch(
                'pre-copy is not converging: the last %d passes each began '
                'with about %.0f MiB, no better than %d passes ago',
                STUCK_PASSES, progress.passes[-1].dirtied / MIB,
                STUCK_PASSES)
        if progress.pass_completed or self._verdict is None:
            self._verdict = project(
                intervals(progress.passes, progress.sample.dirty_rate_probe),
                progress.current_pass_remaining,
                progress.current_pass_start_s, bandwidth,
                context.max_downtime_s, margin)
        converge_at, why = self._verdict
        if converge_at is None or converge_at > deadline:
            drained_at = drain_end(progress, context, margin)
            if drained_at is not None and drained_at <= deadline:
                return self.keep_going(
                    'the data left fell by %.0f MiB/s during this pass and '
                    'reaches the downtime target by %.0f s, whatever the '
                    'pass model says (%s)', progress.drain_rate / MIB,
                    drained_at, why)
        if converge_at is None:
            return self.switch('pre-copy cannot converge: %s', why)
        if converge_at > deadline:
            return self.switch(
                'pre-copy would converge at %.0f s, after its budget of '
                '%.0f s: %s', converge_at, context.budget_s, why)
        return self.keep_going('converges by %.0f s: %s', converge_at, why)


class Interval:
    """A measured point of u: ``dirtied`` distinct bytes in ``duration_s``."""

    def __init__(self, duration_s, dirtied):
        self.duration_s = duration_s
        self.dirtied = dirtied

    @property
    def dirty_rate(self):
        return self.dirtied / self.duration_s


def intervals(passes, probe_rate):
    """The two most telling measured points of u, the latest pass last.

    The last two passes if their lengths differ enough, else the last pass
    and the 1 s dirty-rate sample (taken at the start, so only a stand-in
    for the present).
    """
    # What a pass left less what QEMU had not walked when it synced: the
    # guest dirtied only the rest.
    points = [Interval(p.duration_s, p.new) for p in passes[-2:]]
    if len(points) == 2 and _distinct(points):
        return points
    if probe_rate > 0:
        probe = Interval(PROBE_S, probe_rate * PROBE_S)
        if _distinct([probe, points[-1]]):
            return [probe, points[-1]]
    return points


def _distinct(points):
    short, long_ = sorted(p.duration_s for p in points)
    return short < DISTINCT_DURATIONS * long_


def dirtying_model(points):
    """Fit u(T) to one or two points; a function T -> bytes, and its words.

    :param points: :class:`Interval` or :class:`nova_postcopy.progress.Pass`
        objects, the most recent last.
    """
    last = points[-1]
    if len(points) == 1:
        rate = last.dirty_rate
        return (lambda seconds: rate * seconds,
                '%.0f MiB/s dirtied in one pass' % (rate / MIB))
    longer, shorter = sorted(points, key=lambda p: -p.duration_s)
    if not _distinct(points):
        if last.dirtied >= points[0].dirtied:
            wss = last.dirtied
            return (lambda seconds: wss,
                    'passes no longer shrink (%.0f MiB each)' % (wss / MIB))
        rate = shorter.dirty_rate
        return (lambda seconds: rate * seconds,
                '%.0f MiB/s dirtied' % (rate / MIB))
    ratio = shorter.dirtied / max(longer.dirtied, 1.0)
    linear = shorter.duration_s / longer.duration_s
    if ratio <= linear * 1.001:
        rate = shorter.dirty_rate
        return (lambda seconds: rate * seconds,
                '%.0f MiB/s dirtied, no working set limit seen'
                % (rate / MIB))
    if ratio >= 0.999:
        wss = max(shorter.dirtied, longer.dirtied)
        return (lambda seconds: wss,
                'a working set of %.0f MiB rewritten within every pass'
                % (wss / MIB))
    decay = _solve_decay(ratio, shorter.duration_s, longer.duration_s)
    wss = longer.dirtied / -math.expm1(-decay * longer.duration_s)
    return (lambda seconds: wss * -math.expm1(-decay * seconds),
            'a working set of %.0f MiB written at %.0f MiB/s'
            % (wss / MIB, decay * wss / MIB))


def _solve_decay(ratio, short_s, long_s):
    """The a of W(1 - e^(-aT)) with u(short) / u(long) == ratio."""
    low, high = 1e-9, 1.0
    while _ratio(high, short_s, long_s) < ratio and high < 1e9:
        high *= 4
    for _ in range(60):
        middle = math.sqrt(low * high)
        if _ratio(middle, short_s, long_s) < ratio:
            low = middle
        else:
            high = middle
    return math.sqrt(low * high)


def _ratio(decay, short_s, long_s):
    return math.expm1(-decay * short_s) / math.expm1(-decay * long_s)


def drain_end(progress, context, margin):
    """When the data left reaches the target at its measured drain, or None.

    Where QEMU re-syncs within passes the data left includes the dirty log
    and its fall is measured, not modelled (the pass model misreads passes
    that straddle re-syncs). A drain slower than the margin's share of the
    bandwidth is noise, not convergence.
    """
    drain = progress.drain_rate
    if drain is None or drain < margin * progress.bandwidth:
        return None
    target = progress.bandwidth * context.max_downtime_s
    left = max(progress.sample.memory_remaining - target, 0)
    return progress.elapsed_s + left / drain


def stuck(passes, margin):
    """Whether the data at pass starts stopped improving, measured.

    The projection can be fooled by noise near a fixed point; the passes
    themselves cannot. Improving by less than half the margin over
    ``STUCK_PASSES`` passes is a fixed point whatever the model says.
    """
    if len(passes) <= STUCK_PASSES:
        return False
    before = passes[-STUCK_PASSES - 1].dirtied
    recent = min(p.dirtied for p in passes[-STUCK_PASSES:])
    return recent >= before * (1 - margin / 2)


def project(points, remaining, start_s, bandwidth, downtime_s, margin):
    """Earliest convergence time of pre-copy, or None; with the evidence.

    :param points: measured intervals (see :func:`intervals`), the last
        completed pass last.
    :param remaining: bytes the current pass began with.
    :param start_s: job time the current pass began.
    """
    last = points[-1]
    target = bandwidth * downtime_s
    dirtied, model = dirtying_model(points)
    evidence = ('the last pass took %.1f s and left %.0f MiB (%s) at %.0f '
                'MiB/s of bandwidth; the %.0f ms downtime target needs at '
                'most %.0f MiB' % (last.duration_s, last.dirtied / MIB, model,
                                   bandwidth / MIB, downtime_s * 1000,
                                   target / MIB))
    if last.dirty_rate >= bandwidth * (1 + margin) and remaining > target:
        return None, evidence
    at = start_s
    for _ in range(MAX_PROJECTED_PASSES):
        excess = remaining - target
        if excess <= bandwidth * QEMU_ITERATION_S:
            return at, evidence
        duration = excess / bandwidth
        following = (1 - margin) * dirtied(duration)
        if following >= excess * 0.999:
            return None, evidence
        at += duration
        remaining = target + following
    return None, evidence
