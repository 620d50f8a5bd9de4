# SPDX-License-Identifier: Apache-2.0
"""Normalized migration statistics and what can be learned from their history.

libvirt reports a running migration as a flat dict (``virDomainGetJobStats``)
in mixed units (milliseconds, pages per second). Everything downstream works
on :class:`Sample` in seconds, bytes and bytes per second, and on the
:class:`ProgressTracker`, which derives passes over RAM, bandwidth and
network stalls from the sample stream.

Passes are recognised from the data, not from ``memory_iteration`` alone:
with post-copy enabled, QEMU 11.1 re-syncs the dirty bitmap about ten
times a second (measured on the lab, ``tools/lab/sync_probe.py``; QEMU
10.0 syncs once per pass, as both do without post-copy), and the counter
then says nothing about completed passes. A pass is complete when the
counter moved *and* the pages walked since the pass began (sent, or found
to be zero) add up to what was dirty when it began, less what QEMU still
had to walk when it synced: syncing once per pass, it syncs as soon as
what is left falls below its switchover threshold (bandwidth x max
downtime; ``migration_iteration_run`` in QEMU 10.0's migration.c), so the
pass it began is over for QEMU with up to that much unwalked. The lab's
recordings saw each pass end that way; waiting for the walk to finish
saw it about max-downtime seconds late.

The same re-syncs make ``memory_remaining`` include the dirty log: it
then falls only by what pre-copy sends beyond what the guest dirties, so
its fall within a pass is the drain that pre-copy will keep while the
guest behaves the same. Without them the figure is the bitmap alone and
falls at the bandwidth whatever the guest does; :attr:`ProgressTracker.
drain_rate` is only known in the first case.
"""

import dataclasses

from nova_postcopy import units

# Fraction of a pass's starting data that may still be unwalked when the
# counter says the pass ended; covers rounding between polls.
PASS_TOLERANCE = 0.02
# QEMU's threshold is its own bandwidth sample (100 ms) times the downtime
# limit; the tracker's bandwidth is a 1 s average: allow for the gap.
SYNC_REST_MARGIN = 1.5
# Movement is judged over at least this much job time: QEMU's counters
# advance in bursts, and samples taken at pass ends can be 0.1 s apart.
RATE_WINDOW_S = 1.0
# A window that moved less than this share of the usual bandwidth counts
# as a network stall.
STALL_RATE_SHARE = 0.05
# Counter steps within one pass that show QEMU re-syncing within passes
# (about ten a second there). One sync per pass read late can show two;
# a pass that short converges anyway (it is below the downtime target).
RESYNCS_PER_PASS = 3
EWMA_ALPHA = 0.4


@dataclasses.dataclass(frozen=True)
class Sample:
    """One poll of a migration job, normalized to seconds and bytes."""

    time_elapsed_s: float
    data_total: int = 0
    data_processed: int = 0
    data_remaining: int = 0
    memory_total: int = 0
    memory_processed: int = 0
    memory_remaining: int = 0
    memory_iteration: int = 0
    memory_dirty_rate: float = 0.0
    memory_bps: float = 0.0
    memory_page_size: int = 4096
    memory_constant: int = 0
    memory_normal_bytes: int = 0
    postcopy_requests: int = 0
    dirty_rate_probe: float = 0.0

    @classmethod
    def from_job_stats(cls, stats):
        """Build a sample from a ``virDomainGetJobStats`` dict."""
        page_size = int(stats.get('memory_page_size') or 4096)
        return cls(
            time_elapsed_s=stats.get('time_elapsed', 0) / 1000.0,
            data_total=int(stats.get('data_total', 0)),
            data_processed=int(stats.get('data_processed', 0)),
            data_remaining=int(stats.get('data_remaining', 0)),
            memory_total=int(stats.get('memory_total', 0)),
            memory_processed=int(stats.get('memory_processed', 0)),
            memory_remaining=int(stats.get('memory_remaining', 0)),
            memory_iteration=int(stats.get('memory_iteration', 0)),
            memory_dirty_rate=float(
                stats.get('memory_dirty_rate', 0)) * page_size,
            memory_bps=float(stats.get('memory_bps', 0)),
            memory_page_size=page_size,
            memory_constant=int(stats.get('memory_constant', 0)),
            memory_normal_bytes=int(stats.get('memory_normal_bytes', 0)),
            postcopy_requests=int(
                stats.get('memory_postcopy_requests', 0)),
            # QEMU's dirty-rate sampler (libvirt domain stats, MiB/s),
            # merged in by job ports that run it.
            dirty_rate_probe=float(
                stats.get('dirtyrate.megabytes_per_second', 0)) * units.MIB,
        )

    @property
    def walked_bytes(self):
        """Bytes of guest RAM visited: sent in full, or found to be zero."""
        walked = (self.memory_normal_bytes
                  + self.memory_constant * self.memory_page_size)
        return walked or self.memory_processed

    @property
    def walk_factor(self):
        """Bytes walked per byte sent: above 1 while zero pages abound."""
        if self.memory_processed <= 0:
            return 1.0
        return max(self.walked_bytes / self.memory_processed, 1.0)


@dataclasses.dataclass(frozen=True)
class Pass:
    """A completed pass over the pages that were dirty when it began.

    ``dirtied`` is the data the next pass starts with: what the guest
    dirtied while the pass ran, and ``unwalked``, what QEMU still had to
    walk when it synced (it syncs once what is left fits its threshold).
    ``duration_s`` and :attr:`new` are one point of the guest's "unique
    bytes dirtied in an interval" curve.
    """

    number: int
    start_s: float
    end_s: float
    start_remaining: int
    dirtied: int
    unwalked: int = 0

    @property
    def duration_s(self):
        return max(self.end_s - self.start_s, 1e-3)

    @property
    def new(self):
        """Bytes the guest dirtied during the pass."""
        return max(self.dirtied - self.unwalked, 0)

    @property
    def dirty_rate(self):
        return self.new / self.duration_s


class ProgressTracker:
    """What the history of samples says about a migration.

    Fed one sample per poll; read by switch policies. It holds no I/O and
    no clock: time is the job's own ``time_elapsed``.
    """

    def __init__(self, max_downtime_ms=None):
        self.sample = None
        # None: the threshold is unknown and a pass ends only once walked.
        self.max_downtime_ms = max_downtime_ms
        self.passes = []
        self.pass_completed = False
        self.bandwidth = 0.0
        self.stalled_for_s = 0.0
        self.healthy_for_s = 0.0
        self._pass_start_s = 0.0
        self._pass_start_remaining = None
        self._pass_start_walked = 0
        self._pass_start_iteration = None
        self._resyncs = False
        self._postcopy = False
        self._last_moving_s = 0.0
        self._stall_end_s = 0.0
        self._window_start = None

    @property
    def elapsed_s(self):
        return self.sample.time_elapsed_s if self.sample else 0.0

    @property
    def completed_passes(self):
        return len(self.passes)

    @property
    def has_figures(self):
        """Data figures arrived: only then can movement be judged."""
        return self._window_start is not None

    @property
    def network_stalled(self):
        return self.stalled_for_s > 0

    @property
    def current_pass_start_s(self):
        return self._pass_start_s

    @property
    def current_pass_remaining(self):
        """Data the current pass began with."""
        return self._pass_start_remaining or 0

    @property
    def drain_rate(self):
        """Bytes/s by which the data left fell since this pass began.

        None until it means something: QEMU re-syncs within passes (so the
        figure includes the dirty log), a pass completed before (the first
        one mostly walks RAM that was never sent) and a second of this
        pass has been seen.
        """
        if not (self._resyncs and self.passes and self.sample):
            return None
        span = self.sample.time_elapsed_s - self._pass_start_s
        if span < RATE_WINDOW_S:
            return None
        return ((self._pass_start_remaining - self.sample.memory_remaining)
                / span)

    def enter_postcopy(self):
        """Stop counting passes: pre-copy is over.

        Post-copy's background push walks what is left once more, with
        the guest dirtying nothing on this side; counting that walk would
        report a pre-copy pass that never ran.
        """
        self._postcopy = True

    def update(self, sample):
        previous, self.sample = self.sample, sample
        if sample.postcopy_requests > 0:
            # Read before the post-copy event was: the destination
            # already asks for pages.
            self.enter_postcopy()
        self.pass_completed = False
        if self._window_start is None:
            if sample.memory_total <= 0:
                # libvirt answers with zeros while the job sets up.
                return self
            self._pass_start_remaining = sample.memory_total
            self._pass_start_iteration = sample.memory_iteration
            self._last_moving_s = sample.time_elapsed_s
            self.healthy_for_s = sample.time_elapsed_s
            self._window_start = sample
            return self
        if sample.time_elapsed_s <= previous.time_elapsed_s:
            return self
        self._update_rates(sample)
        if not self._postcopy:
            self._update_pass(previous, sample)
        return self

    def _update_rates(self, sample):
        now = sample.time_elapsed_s
        start = self._window_start
        span = now - start.time_elapsed_s
        if span >= RATE_WINDOW_S:
            self._window_start = sample
            moved = sample.data_processed - start.data_processed
            rate = moved / span
            moving = moved > 0 and (
                not self.bandwidth
                or rate >= STALL_RATE_SHARE * self.bandwidth)
            if moving:
                self.bandwidth = _ewma(self.bandwidth, rate)
                if self.stalled_for_s:
                    # Data moved again from the window's start on.
                    self._stall_end_s = start.time_elapsed_s
                self._last_moving_s = now
                self.stalled_for_s = 0.0
            else:
                self.stalled_for_s = now - self._last_moving_s
                self._stall_end_s = now
        self.healthy_for_s = now - self._stall_end_s

    def _update_pass(self, previous, sample):
        if (sample.memory_iteration
                >= self._pass_start_iteration + RESYNCS_PER_PASS):
            self._resyncs = True
        walked = sample.walked_bytes - self._pass_start_walked
        needed = (1 - PASS_TOLERANCE) * self._pass_start_remaining
        if self.max_downtime_ms is not None and not self._resyncs:
            # Left unwalked at the sync: QEMU's threshold at most.
            threshold = (SYNC_REST_MARGIN * self.bandwidth
                         * self.max_downtime_ms / 1000.0)
            needed -= min(previous.memory_remaining, threshold)
        counter_moved = (sample.memory_iteration == 0
                         or sample.memory_iteration
                         > self._pass_start_iteration)
        if not (counter_moved and walked >= needed and walked > 0):
            return
        # The boundary fell between two polls: what was walked beyond the
        # pass's data belongs to the next pass, both in time and in data.
        overshoot = max(walked - self._pass_start_remaining, 0)
        walk_rate = max(self.bandwidth, 1.0) * sample.walk_factor
        end_s = max(sample.time_elapsed_s - overshoot / walk_rate,
                    self._pass_start_s)
        next_remaining = sample.memory_remaining + overshoot
        self.passes.append(Pass(
            number=len(self.passes) + 1,
            start_s=self._pass_start_s,
            end_s=end_s,
            start_remaining=self._pass_start_remaining,
            dirtied=next_remaining,
            unwalked=int(max(self._pass_start_remaining - walked, 0))))
        self.pass_completed = True
        self._pass_start_s = end_s
        self._pass_start_remaining = next_remaining
        self._pass_start_walked = sample.walked_bytes - overshoot
        self._pass_start_iteration = sample.memory_iteration


def _ewma(current, value, alpha=EWMA_ALPHA):
    return value if not current else alpha * value + (1 - alpha) * current
