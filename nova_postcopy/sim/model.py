# SPDX-License-Identifier: Apache-2.0
"""A fluid model of a QEMU live migration, fast enough for a fleet.

What it models, and why:

* Passes. QEMU sends the pages of its dirty bitmap; pages the guest writes
  meanwhile go to the dirty log. Once the bitmap's estimate falls below the
  switchover threshold (bandwidth x max downtime), QEMU syncs: the log is
  merged into what is left of the bitmap, ``memory_iteration``
  (dirty-sync-count) grows, and if what is now pending fits the threshold
  it stops the guest and completes (``migration_iteration_run`` and
  ``ram_state_pending_exact`` in QEMU 10.0's migration/migration.c and
  ram.c). The lab's recordings show it: the middle half of the counter's
  steps came with 26-31 MiB still to walk at a 64 MiB/s cap, whose
  threshold is 33 MiB. Checked between iterations of at most 50 ms, the
  rule syncs every iteration once the bitmap hovers near the threshold,
  and converges where most writes land on pages still unsent.
* A bandwidth cap (``capped``): QEMU sends each 100 ms window's share at
  the window's start and sleeps out the rest (``migration_rate_limit``),
  so it checks its threshold at window starts only, and libvirt reads a
  new pass after its first share went. The lab's capped recordings show
  both (see :meth:`MigrationModel._next_check`).
* Unique dirtying. The log holds each page once: a guest writing D bytes/s
  over a working set W has ``W * (1 - exp(-written / W))`` bytes in it
  (two such sets for ``hotcold``; ``min(written, W)`` for a ``sweep``,
  which writes each page once per round, as the lab's dirtier does: its
  recordings left the whole working set after passes the exponential
  said left 70 % of it). This is why the dirty rate libvirt
  reports (new pages per second between syncs) is below the write rate on
  long passes.
* Set-up. libvirt's job clock can start before QEMU's migration runs:
  no page moves for the workload's ``setup_s`` (the lab's 40 QEMU 10.0
  recordings: 0.36-0.60 s of job time, median 0.44, while QEMU's own
  ``setup_time`` was 0-5 ms; the QEMU 11.1 demo traces show none).
* Zero pages cost no bandwidth, and are found where the walk reaches them.
* ``frequent`` sync: with post-copy enabled QEMU 11.1 syncs about ten times
  a second, so the counter races, and remaining data includes the log.
* Link: bandwidth with per-second jitter; outages carry nothing.
* Post-copy: a short stop (device state, discard bitmap, round trips), then
  the rest is pushed in the background while the guest faults on missing
  pages of its working set, each fault a round trip plus a page. An outage
  during post-copy fails the migration: QEMU pauses post-copy
  (``postcopy-paused``), and the guest is lost unless the migration is
  resumed once the link is back (:meth:`MigrationModel.request_resume`).
  ``recovery=True`` models an instant resume: post-copy waits the outage
  out.

Times are job seconds; sizes are bytes. The model is deterministic for a
given workload (its seed drives the jitter).
"""

import math
import random

from nova_postcopy.sim import stats
from nova_postcopy import units

GIB = units.GIB
PAGE = stats.PAGE
LINK_EFFICIENCY = 0.94          # TCP and QEMU stream overhead
DEVICE_STATE_BYTES = 2 * units.MIB
# Pausing vCPUs and starting the destination: the lab's stop-and-copies of
# pages sent before took 26 ms and their bytes at 2.1 GiB/s (recording 18:
# 342 MiB in 183 ms, 40: 59 MiB in 53 ms; the capped runs' 28-33 MiB in
# 28-39 ms; the repeats of 18 and 40, not fitted: 76-360 MiB, 60-225 ms
# measured, 61-190 so reckoned), less the device state's and a round trip.
STOP_OVERHEAD_S = 0.025
FREQUENT_SYNC_S = stats.FREQUENT_SYNC_S
SWITCH_LATENCY_S = 0.1          # until the migration thread sees a request
QUIET_SHARE = 0.05              # dirty rate in a quiet phase of ``phased``
PROBE_S = stats.PROBE_S
ITERATE_S = 0.05                # QEMU's longest RAM iteration (MAX_WAIT)
# Under a bandwidth cap QEMU sends in windows of this long (BUFFER_DELAY in
# migration/migration.c), each window's share of the cap at its start.
WINDOW_S = 0.1
# From a cancel to libvirt's job end: QEMU stops sending at once, libvirt
# then tears the destination down. The lab's 25 aborted recordings ended
# 1.9-2.2 s after the budget ran out and the abort was asked.
ABORT_WIND_DOWN_S = 1.9
# QEMU finding zero pages: up to 627 MiB between two polls 0.1 s apart on
# the lab's TCG guests, capped or not (40 recordings); at least this fast.
ZERO_SCAN_BPS = 6 * GIB
# With ``zeros=end``, RAM the walk finds after the zeros: Linux allocates
# its early memory top-down, 64 bytes of struct page per 4 KiB page (1.6 %)
# and a few MiB more whatever the RAM. The lab's first passes had up to
# 7.1, 12.3, 15.7 and 19.8 MiB left after the zeros for 256, 512, 768 and
# 1024 MiB of RAM (the last poll before the sync, capped at 16-64 MiB/s:
# the most of 3-6 recordings each, a poll later than the zeros' end eats
# into them); the share alone gave 4-16.
TOP_SHARE = 64 / 4096
TOP_BYTES = 3 * units.MIB


class MigrationModel(stats.JobStatsView):
    """One migration of one workload, advanced by :meth:`advance_to`."""

    def __init__(self, workload, postcopy_enabled=True, max_downtime_ms=500,
                 recovery=False):
        w = self.workload = workload
        self.postcopy_enabled = postcopy_enabled
        self.recovery = recovery
        self.ram = w.ram_gib * GIB
        self.zero = self.ram * w.zero_pct / 100.0
        self.nonzero = self.ram - self.zero
        self.wss = w.wss_gib * GIB
        self.link = w.link_gbps * 1e9 / 8 * LINK_EFFICIENCY
        self.uncapped = (w.uncapped_gbps * 1e9 / 8 * LINK_EFFICIENCY
                         if w.uncapped_gbps else None)
        self.fresh_rate = (w.fresh_gbps * 1e9 / 8 * LINK_EFFICIENCY
                           if w.fresh_gbps else None)
        self.stop_rate = (w.stop_gbps * 1e9 / 8 * LINK_EFFICIENCY
                          if w.stop_gbps else None)
        self.rtt = w.rtt_ms / 1000.0
        self.max_downtime_s = max_downtime_ms / 1000.0
        self._rng = random.Random(w.seed)
        # QEMU's calc-dirty-rate samples 512 pages per GiB over 1 s.
        self.probe_rate = (self.unique(w.dirty_gbps * 1e9 / 8 * PROBE_S)
                           / PROBE_S * min(max(self._rng.gauss(1, 0.05),
                                               0.85), 1.15))
        self._bw_jitter = 1.0
        self._dirty_jitter = 1.0
        self._next_tick = 0.0
        # Frequent sync: no convergence check can succeed before this.
        self._no_convergence_until = 0.0
        self._last_sync = -math.inf
        self._previous_log = 0.0    # distinct bytes the last sync logged
        self._window_sent_until = 0.0
        # Measured with one sync a pass; QEMU 11.1's re-syncs under a cap
        # were not recorded.
        self._windowed = w.capped and w.sync == 'pass'
        # Uncapped on the lab, pre-copy sends pages the destination had
        # already at the link's own speed, as the stop-and-copy does
        # (recording 40: 114 MiB of its second pass in 0.095 s, after a
        # first pass at 322 MiB/s), and QEMU's threshold follows the rate
        # it measured over its last window (``migration_update_counters``:
        # bytes sent since the last update, at least BUFFER_DELAY before,
        # times the downtime limit), which jumps with it: 40 stopped at
        # once, 18 converged where a threshold from the first pass's rate
        # had it switch to post-copy.
        self._uncapped_walk = bool(self.uncapped and not w.capped
                                   and self.fresh_rate)
        self._measured_bps = None
        self._measure_start = w.setup_s
        self._measure_sent = 0.0
        # Above the zeros at RAM's end: the guest kernel's early memory.
        self._top = (min(TOP_SHARE * self.ram + TOP_BYTES,
                         self.nonzero - self.wss)
                     if w.zeros == 'end' else 0.0)

        self.t = 0.0
        self.state = 'precopy'
        self.events = []
        self.sync_count = 1
        # Current pass: bytes of the bitmap still to walk, and how many of
        # them are zero pages (only in the first pass).
        self.bitmap = self.ram
        self.bitmap_zero = self.zero
        self.written = 0.0          # bytes written by the guest since sync
        self.sent = 0.0
        self.resent = 0.0           # bytes that syncs put back to send
        self.normal_bytes = 0.0
        # Non-zero bytes the destination never had: the walk sends them
        # first (the first pass, then its unwalked rest at RAM's top).
        self.fresh = self.nonzero
        # With ``zeros=end``: the first pass's pages below the zeros not
        # walked yet. A sync does not move the walk: it goes on through
        # them, then the zeros, before it wraps round to the log's pages.
        # Zeros spread through those pages are found as it goes.
        spread_zero = self.ram * w.spread_zero_pct / 100.0
        self._below_left = (self.nonzero - self._top + spread_zero
                            if w.zeros == 'end' else 0.0)
        self._below_zero_left = spread_zero
        self.zero_pages = 0.0
        self.reported_dirty_rate = 0.0
        self._rate_pages = 0.0
        self._rate_since = 0.0
        self.paused_at = None
        self.switch_at = None
        self.abort_at = None
        self.postcopy_started_at = None
        self.resumed_at = None
        self.postcopy_pending = 0.0
        self.postcopy_wss_missing = 0.0
        self.postcopy_requests = 0.0
        self.stop_at = None
        self.downtime_s = 0.0
        self.finish_at = None
        self.complete_pending = None

    # -- what the guest and the link do -----------------------------------

    def bandwidth(self, t):
        w = self.workload
        if w.outage_s and w.outage_at_s <= t < w.outage_at_s + w.outage_s:
            return 0.0
        return self.link * self._bw_jitter

    def write_rate(self, t):
        if self.paused_at is not None or self.state == 'stopped':
            return 0.0
        rate = self.workload.dirty_gbps * 1e9 / 8 * self._dirty_jitter
        if self.workload.pattern == 'phased':
            if int(t // self.workload.phase_s) % 2:
                rate *= QUIET_SHARE
        return rate

    def unique(self, written):
        """Bytes of distinct pages touched by ``written`` bytes of writes."""
        wss = self.wss
        if wss <= 0 or written <= 0:
            return 0.0
        if self.workload.pattern == 'hotcold':
            hot, cold = 0.2 * wss, 0.8 * wss
            return (hot * -math.expm1(-0.8 * written / hot)
                    + cold * -math.expm1(-0.2 * written / cold))
        if self.workload.pattern == 'sweep':
            # A round writes every page once: no page twice before all.
            return min(written, wss)
        return wss * -math.expm1(-written / wss)

    def dirty_unsent(self):
        """Bytes of distinct pages still to send: the bitmap and the log.

        A page can be in both (dirtied again before this pass reached it);
        the log's pages spread over the working set like the writes, so the
        share of them already in the bitmap is the share of the working set
        the bitmap holds. A sweep is the exception once a sync ran with
        pages still unsent (``pass`` sync): those are the previous log's,
        and a round writes a page once, so the new log meets them only
        where the round wrapped (recording 34: after each sync the bitmap
        grew by 93-103 % of what the sweep wrote since the last one).
        """
        log = self.unique(self.written)
        nonzero = self.bitmap - self.bitmap_zero
        if not self.wss or not log:
            return nonzero
        if (self.workload.pattern == 'sweep' and self._previous_log
                and self.workload.sync == 'pass'):
            wrapped = max(self._previous_log + log - self.wss, 0.0)
            shared = min(wrapped / self._previous_log, 1.0)
            return nonzero + log - min(nonzero, log) * shared
        if self.sync_count == 1 and self.nonzero:
            # The first bitmap is all RAM; the working set lies below the
            # kernel's pages at the top (``zeros=end``), walked last.
            below = max(nonzero - self._top, 0.0)
            in_wss = below * self.wss / max(self.nonzero - self._top, 1.0)
        else:
            in_wss = nonzero
        return nonzero + log * (1 - min(in_wss / self.wss, 1.0))

    def threshold(self, bandwidth):
        if self._uncapped_walk and self._measured_bps:
            bandwidth = self._measured_bps
        return bandwidth * self.max_downtime_s

    @property
    def bound_s(self):
        """Time to move the RAM that must move, once, at full bandwidth."""
        return self.nonzero / self.link

    # -- controls ----------------------------------------------------------

    def request_postcopy(self):
        """Like migrate-start-postcopy: harmless once switchover began."""
        if not self.postcopy_enabled:
            return False
        if self.state == 'precopy' and self.switch_at is None:
            self.switch_at = self.t + SWITCH_LATENCY_S
        return True

    def request_resume(self):
        """Like a POSTCOPY_RESUME migration.

        Only a paused post-copy over a working link can resume.
        """
        if self.state != 'postcopy-paused' or not self.bandwidth(self.t):
            return False
        self.state = 'postcopy'
        self.resumed_at = self.t
        return True

    def request_abort(self):
        if self.state == 'precopy' and self.abort_at is None:
            self.abort_at = self.t + SWITCH_LATENCY_S

    def pause_guest(self):
        if self.state == 'precopy' and self.paused_at is None:
            self.paused_at = self.t

    def set_max_downtime(self, milliseconds):
        self.max_downtime_s = milliseconds / 1000.0

    # -- time --------------------------------------------------------------

    @property
    def finished(self):
        return self.state in ('completed', 'aborted', 'failed')

    def advance_to(self, target):
        while self.t < target - 1e-9 and not self.finished:
            if self.t >= self._next_tick:
                self._bw_jitter = min(max(self._rng.gauss(1, 0.02), 0.92),
                                      1.05)
                self._dirty_jitter = min(max(self._rng.gauss(1, 0.05), 0.85),
                                         1.15)
                self._next_tick = math.floor(self.t) + 1.0
            end = min(target, self._next_tick, self._next_boundary())
            if self.state == 'precopy':
                self._precopy(end)
            elif self.state == 'postcopy-paused':
                self.t = end  # both halves wait for a resume
            elif self.state == 'cancelling':
                self._cancelling(end)
            elif self.state == 'stopped':
                self._stopped(end)
            else:
                self._postcopy(end)

    def _next_boundary(self):
        w = self.workload
        times = [self.switch_at, self.abort_at, self.finish_at]
        if w.outage_s:
            times += [w.outage_at_s, w.outage_at_s + w.outage_s]
        if w.pattern == 'phased':
            times.append((math.floor(self.t / w.phase_s) + 1) * w.phase_s)
        if self.workload.sync == 'frequent' and self.state == 'precopy':
            times.append(max(self.t + FREQUENT_SYNC_S,
                             self._no_convergence_until))
        return min([x for x in times if x is not None and x > self.t + 1e-9]
                   or [math.inf])

    def _precopy(self, end):
        if self.abort_at is not None and self.t >= self.abort_at - 1e-9:
            # Nothing moves any more; the job ends once libvirt is done.
            self.state = 'cancelling'
            self.finish_at = self.abort_at + ABORT_WIND_DOWN_S
            return
        if self.t < self.workload.setup_s - 1e-9:
            # A switch asked meanwhile waits for the migration to run.
            self.t = min(end, self.workload.setup_s)
            return
        if self.switch_at is not None and self.t >= self.switch_at - 1e-9:
            self._start_postcopy()
            return
        if self.t < self._window_sent_until - 1e-9:
            # The window's share went at the sync: QEMU sleeps it out.
            end = min(end, self._window_sent_until)
            self.written += self.write_rate(self.t) * (end - self.t)
            self.t = end
            return
        bandwidth = self.bandwidth(self.t)
        if self._uncapped_walk:
            end = self._measure_window(end)
        threshold = self.threshold(bandwidth)
        frequent_check = (bandwidth > 0 and self.workload.sync == 'frequent'
                          and self.t >= self._no_convergence_until - 1e-9)
        gap = self._pending() - threshold if frequent_check else None
        if frequent_check and gap <= 0:
            self._stop_and_copy()
            return
        zero_share, walk_rate, stretch = self._walk(bandwidth)
        if frequent_check:
            # What is pending falls no faster than the walk, and the link's
            # rate and the threshold hold until the next tick: checks before
            # the walk could close the gap would all fail. Skipping them
            # saves most steps of a long pre-copy.
            steps = math.floor(gap / walk_rate / FREQUENT_SYNC_S)
            self._no_convergence_until = min(
                self.t + FREQUENT_SYNC_S * max(steps, 0), self._next_tick)
        if bandwidth > 0:
            # QEMU checks between iterations (see _next_check); the
            # bitmap's end ends an iteration (and a pass) early.
            crossing = (self.bitmap - self._sync_at(threshold)) / walk_rate
            sync_in = self._next_check(self.t + max(crossing, 0.0)) - self.t
            if zero_share == 1.0:
                # A run of zeros costs the cap next to nothing: the
                # iterations finding it end on QEMU's time limit, not the
                # cap, and it checks as the run ends (recording 13: the
                # bitmap fell from 54 to 7 MiB past a 32 MiB threshold
                # before the sync).
                sync_in = stretch / walk_rate
            end = min(end, self.t + min(sync_in, stretch / walk_rate))
        dt = end - self.t
        walked = min(walk_rate * dt, stretch) if bandwidth else 0.0
        self._advance_walk(walked, zero_share)
        self.written += self.write_rate(self.t) * dt
        self.t = end
        zeros_ended = zero_share == 1.0 and walked >= stretch - 1
        due = (self.bitmap <= 1 or (
            self.bitmap <= self._sync_at(threshold) + 1
            and (zeros_ended
                 or self.t >= self._next_check(self.t) - 1e-6)))
        if bandwidth > 0 and due:
            self._sync()
            if self._pending() <= threshold + 1:
                self._stop_and_copy()
            elif self._windowed:
                self._send_window(bandwidth)

    def _measure_window(self, end):
        """QEMU's rate over its last window; steps end at the next one."""
        while self.t >= self._measure_start + WINDOW_S - 1e-9:
            self._measured_bps = self._measure_sent / WINDOW_S
            self._measure_sent = 0.0
            self._measure_start += WINDOW_S
        return min(end, self._measure_start + WINDOW_S)

    def _next_check(self, after):
        """Job time of QEMU's first threshold check at or after ``after``.

        Uncapped, QEMU's RAM iterations run back to back, each ITERATE_S
        long, and it checks as each ends: it sees the bitmap fall below
        the threshold up to ITERATE_S late, with whatever the walk reached
        meanwhile (repeat ``40-r3``: 10 MiB short of the zeros at the
        crossing, it walked them and a 132 MiB run of zeros in the same
        iteration and synced with 17 MiB left). Under a cap it sends each
        100 ms window's share of the cap at the window's start and sleeps
        out the rest (``migration_rate_limit``), so it checks at window
        starts only: the lab's capped recordings
        synced one window after the bitmap fell below the threshold
        (8.77 MiB/s: at 4.12 and 3.73 MiB against 4.39).
        """
        period = WINDOW_S if self._windowed else ITERATE_S
        after = max(after, self._last_sync + period)
        start = self.workload.setup_s
        return start + period * math.ceil((after - start) / period - 1e-6)

    def _send_window(self, bandwidth):
        """After a sync, a capped QEMU sends the window's share at once.

        libvirt reads the pass's first figures after it: the lab's passes
        began one window's share (0.88 MiB at 8.77 MiB/s) below the data
        QEMU had synced. The walk then sleeps out the window.
        """
        zero_share, _, stretch = self._walk(bandwidth)
        if zero_share < 1.0:
            self._advance_walk(min(bandwidth * WINDOW_S / (1 - zero_share),
                                   stretch), zero_share)
            self.events[-1] = (self.t, 'iteration', self.job_stats())
        self._window_sent_until = self.t + WINDOW_S

    def _advance_walk(self, walked, zero_share):
        below = self.workload.zeros == 'end' and self._below_left > 1
        zero_walked = walked * zero_share
        self.bitmap -= walked
        self.bitmap_zero = max(self.bitmap_zero - zero_walked, 0.0)
        self.zero_pages += zero_walked / PAGE
        self.normal_bytes += walked - zero_walked
        self.sent += walked - zero_walked
        self.fresh = max(self.fresh - (walked - zero_walked), 0.0)
        self._measure_sent += walked - zero_walked
        if below:
            self._below_left = max(self._below_left - walked, 0.0)
            self._below_zero_left = max(
                self._below_zero_left - zero_walked, 0.0)

    def _walk(self, bandwidth):
        """(zero share, walk rate, bytes) of the bitmap walked next.

        Zero pages cost no bandwidth. Spread through RAM, they speed the
        whole walk up; at its end (``zeros=end``: RAM the guest never
        touched, as on the lab, where a pass's last tenths of a second
        find hundreds of MiB of them) the walk sends the rest first, then
        finds them at the speed QEMU checks pages.
        """
        zero = self.bitmap_zero
        if self.workload.zeros == 'end':
            # The first pass's pages below the zeros, the zeros, then the
            # kernel's own pages at the top of RAM and the log's pages:
            # a sync meanwhile (its threshold met early) moves nothing.
            if self._below_left > 1:
                share = min(self._below_zero_left / self._below_left, 0.99)
                return share, bandwidth / (1 - share), self._below_left
            if zero >= 1:
                return 1.0, ZERO_SCAN_BPS, zero
            if self._uncapped_walk:
                # The kernel's pages are new to the destination; the log's
                # were sent before, and go at the link's own speed.
                fresh = min(self.fresh, self.bitmap)
                if fresh > 1:
                    return 0.0, bandwidth, fresh
                return 0.0, self.uncapped, self.bitmap
        share = zero / self.bitmap if self.bitmap else 0.0
        rate = bandwidth / (1 - share) if share < 1 else 1e18
        return share, rate, self.bitmap

    def _sync_at(self, threshold):
        """Bitmap left when QEMU syncs; frequent sync needs no pass end."""
        return threshold if self.workload.sync == 'pass' else 0.0

    def _pending(self):
        return (self.dirty_unsent() + self.bitmap_zero
                if self.workload.sync == 'frequent' else self.bitmap)

    def _stop_and_copy(self):
        """What is pending fits the downtime target: the guest stops."""
        if self.workload.sync == 'frequent':
            self._sync()
        self.state = 'stopped'
        self.stop_at = self.t
        # Zero pages still in the bitmap are found, not sent.
        zero = self.bitmap_zero
        self.zero_pages += zero / PAGE
        self.bitmap -= zero
        self.bitmap_zero = 0.0
        self.complete_pending = self.bitmap
        bandwidth = (self.stop_rate or self.uncapped
                     or self.bandwidth(self.t) or self.link)
        fresh = min(self.fresh, self.bitmap) if self.fresh_rate else 0.0
        self.finish_at = self.t + STOP_OVERHEAD_S + self.rtt + (
            self.bitmap - fresh + DEVICE_STATE_BYTES) / bandwidth + (
            fresh / min(self.fresh_rate or bandwidth, bandwidth)) + (
            zero / ZERO_SCAN_BPS)

    def _sync(self):
        if self.workload.sync == 'pass':
            # The log's pages still in the bitmap are sent once; zero pages
            # not reached yet stay in it, to be found when walked.
            new = self.dirty_unsent() - (self.bitmap - self.bitmap_zero)
            self.bitmap += new
            self._previous_log = self.unique(self.written)
        else:
            new = self.unique(self.written)
            # Zero pages are only in the first bitmap and cost nothing.
            self.zero_pages += self.bitmap_zero / PAGE
            self.bitmap += new - self.bitmap_zero
            self.bitmap_zero = 0.0
        self.resent += new
        self.written = 0.0
        self.sync_count += 1
        self._last_sync = self.t
        if self.workload.sync == 'pass':
            self.events.append((self.t, 'iteration', self.job_stats()))
        self._rate_pages += new / PAGE
        if self.t - self._rate_since >= 1.0:
            self.reported_dirty_rate = self._rate_pages / (
                self.t - self._rate_since)
            self._rate_pages = 0.0
            self._rate_since = self.t

    def _cancelling(self, end):
        if end >= self.finish_at - 1e-9:
            self.t = self.finish_at
            self.state = 'aborted'
            self.events.append((self.t, 'cancelled', None))
            return
        self.t = end

    def _stopped(self, end):
        if self.finish_at is not None and end >= self.finish_at - 1e-9:
            self.t = self.finish_at
            moved = self.complete_pending + DEVICE_STATE_BYTES
            self.sent += moved
            self.normal_bytes += self.complete_pending
            self.bitmap = 0.0
            started = self.paused_at if self.paused_at is not None else (
                self.stop_at)
            self.downtime_s = self.t - started
            self.state = 'completed'
            self.events.append((self.t, 'completed', None))
            return
        self.t = end

    def _start_postcopy(self):
        t = self.t
        bandwidth = self.uncapped or self.bandwidth(t) or self.link
        pending = self.dirty_unsent()
        bitmap_nonzero = self.bitmap - self.bitmap_zero
        wss_share = (self.wss / self.nonzero
                     if self.sync_count == 1 and self.nonzero else 1.0)
        # Everything pending outside the bitmap is working-set pages.
        self.postcopy_wss_missing = min(
            self.wss, pending - bitmap_nonzero * (1 - wss_share))
        self.postcopy_pending = pending
        self.zero_pages += self.bitmap_zero / PAGE
        self.bitmap = self.bitmap_zero = self.written = 0.0
        stop_s = (STOP_OVERHEAD_S + 2 * self.rtt
                  + (DEVICE_STATE_BYTES + self.ram / PAGE / 8) / bandwidth)
        self.sent += DEVICE_STATE_BYTES
        self.downtime_s = stop_s
        self.state = 'postcopy'
        self.switch_at = None
        self.postcopy_started_at = t
        self.events.append((t, 'postcopy-started', None))
        self.t = t + stop_s

    def _postcopy(self, end):
        bandwidth = self.bandwidth(self.t)
        if bandwidth and self.uncapped:
            bandwidth = self.uncapped
        if bandwidth == 0:
            if not self.recovery:
                self.state = 'postcopy-paused'
                self.events.append((self.t, 'postcopy-failed', None))
                return
            self.t = end
            return
        if self.postcopy_pending <= 0:
            self._finish_postcopy()
            return
        left = self.postcopy_pending / bandwidth
        # Faults change slowly; a few dozen steps per phase keep the count
        # within a percent without slowing the fleet down.
        step = max(left / 40.0, 0.05)
        end = min(end, self.t + left, self.t + step)
        dt = end - self.t
        moved = min(bandwidth * dt, self.postcopy_pending)
        if self.wss and self.postcopy_pending:
            share = self.postcopy_wss_missing / self.postcopy_pending
            missing_share = self.postcopy_wss_missing / self.wss
            fault_rate = min(self.write_rate(self.t) / PAGE * missing_share,
                             1.0 / (self.rtt + PAGE / bandwidth))
            faults = min(fault_rate * dt, self.postcopy_wss_missing / PAGE)
            self.postcopy_requests += faults
            self.postcopy_wss_missing = max(
                self.postcopy_wss_missing - moved * share - faults * PAGE,
                0.0)
        self.postcopy_pending -= moved
        self.sent += moved
        self.normal_bytes += moved
        self.t = end
        if self.postcopy_pending <= 1:
            self._finish_postcopy()

    def _finish_postcopy(self):
        self.postcopy_pending = 0.0
        self.state = 'completed'
        self.events.append((self.t, 'completed', None))

    # -- what libvirt would say -------------------------------------------
