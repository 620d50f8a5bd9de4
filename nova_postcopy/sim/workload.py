# SPDX-License-Identifier: Apache-2.0
"""A simulated guest and link, and its ``key=value,...`` spelling."""

import dataclasses
import math

PATTERNS = ('steady', 'phased', 'hotcold', 'sweep')
SYNC_MODES = ('pass', 'frequent')
ZERO_LAYOUTS = ('spread', 'end')
# How each QEMU syncs its dirty bitmap during the first pass once post-copy
# is enabled (every migration the bench runs), measured on the lab by
# tools/lab/sync_probe.py, 2026-12-02: QEMU 10.0.13 (libvirt 11.3 and
# 12.8) no sync in 6 s of the first pass, as without post-copy; QEMU 11.1.2
# (libvirt 12.8) 58 syncs in 6 s, none without post-copy. Not a rule of
# thumb by release: only the versions measured are offered.
QEMU_SYNC = {'10.0': 'pass', '11.1': 'frequent'}
DEFAULT_QEMU = '10.0'
# The range a simulated run stays meaningful and quick in: 10 Mbit/s is
# below any migration network, and the largest guests QEMU runs are a few
# TiB. A link of 1e-9 Gbit/s would keep the simulator busy for minutes.
MIN_LINK_GBPS = 0.01
MAX_RAM_GIB = 16384


class InvalidWorkload(ValueError):
    """A workload spec that cannot describe a real guest."""


@dataclasses.dataclass(frozen=True)
class Workload:
    """A guest and the link it migrates over.

    :param ram_gib: guest RAM.
    :param link_gbps: migration link, gigabits per second.
    :param wss_gib: memory the guest keeps writing to (its working set).
    :param dirty_gbps: rate at which it writes to it.
    :param pattern: ``steady`` (writes land anywhere in the working set,
        a page possibly twice before all were written); ``phased`` (busy
        and quiet phases of ``phase_s`` seconds, quiet at 5 % of the rate);
        ``hotcold`` (80 % of writes go to 20 % of the working set);
        ``sweep`` (each page once per round, as the lab's dirtier writes,
        sequentially or in its scattered order).
    :param zero_pct: share of RAM never touched (zero pages).
    :param zeros: where they lie: ``spread`` through RAM, or at its ``end``
        (RAM a guest never reached, as on the lab's guests): the walk then
        sends every other page before it finds them.
    :param spread_zero_pct: with ``zeros=end``, the share of RAM (part of
        ``zero_pct``) whose zero pages lie spread through the rest, found
        as the walk goes: the lab's guests had 18-40 MiB of them.
    :param outage_at_s: job time at which the link stops carrying data.
    :param outage_s: how long it carries nothing.
    :param rtt_ms: round-trip time of the link.
    :param uncapped_gbps: the link's own speed when ``link_gbps`` is a
        bandwidth cap set on the migration (libvirt ``bandwidth``): QEMU
        lifts the cap for the stop-and-copy, and post-copy without
        ``bandwidth.postcopy`` is not capped; 0 means ``link_gbps``.
    :param fresh_gbps: the rate the destination takes in pages it never
        had, in the stop-and-copy (on the lab about a quarter of the rate
        of pages sent again; likely its QEMU faulting in the guest memory
        it writes for the first time, which post-copy's userfaultfd
        placement does not pay); 0 means no slower than the link.
    :param stop_gbps: the link's speed in the stop-and-copy, for pages
        the destination had: with the guest's vCPUs stopped, the lab's
        veth carried them about twice as fast as post-copy's; 0 means
        ``uncapped_gbps`` (or ``link_gbps``).
    :param capped: ``link_gbps`` is a bandwidth cap QEMU enforces
        (libvirt's ``bandwidth``), in 100 ms windows: it checks its
        threshold at window starts only and sends each window's share at
        once. Not a cap: the link's own speed, checked every iteration.
    :param setup_s: job time before QEMU's migration sends its first page
        (libvirt's job clock runs from its own start).
    :param sync: ``pass`` (dirty bitmap synced once per pass, as QEMU
        10.0 does, and both measured QEMUs without post-copy) or
        ``frequent`` (about ten syncs a second, as QEMU 11.1 does once
        post-copy is enabled); see ``QEMU_SYNC``.
    :param seed: seeds the bandwidth and dirty-rate jitter.
    """

    ram_gib: float
    link_gbps: float
    wss_gib: float = 0.0
    dirty_gbps: float = 0.0
    pattern: str = 'steady'
    zero_pct: float = 0.0
    zeros: str = 'spread'
    spread_zero_pct: float = 0.0
    outage_at_s: float = 0.0
    outage_s: float = 0.0
    rtt_ms: float = 0.2
    uncapped_gbps: float = 0.0
    fresh_gbps: float = 0.0
    stop_gbps: float = 0.0
    capped: bool = False
    phase_s: float = 10.0
    setup_s: float = 0.0
    sync: str = 'pass'
    seed: int = 1
    name: str = ''

    def __post_init__(self):
        problems = ['%s must be a finite number' % field.name
                    for field in dataclasses.fields(self)
                    if isinstance(getattr(self, field.name), float)
                    and not math.isfinite(getattr(self, field.name))]
        if problems:
            raise InvalidWorkload('invalid workload %s: %s'
                                  % (self.label, '; '.join(problems)))
        if not 0 < self.ram_gib <= MAX_RAM_GIB:
            problems.append('ram_gib must be > 0 and at most %d'
                            % MAX_RAM_GIB)
        if self.link_gbps < MIN_LINK_GBPS:
            problems.append('link_gbps must be at least %g (%d Mbit/s): a '
                            'slower link is not a live-migration network'
                            % (MIN_LINK_GBPS, MIN_LINK_GBPS * 1000))
        if self.wss_gib < 0 or self.dirty_gbps < 0:
            problems.append('wss_gib and dirty_gbps must be >= 0')
        if not 0 <= self.zero_pct < 100:
            problems.append('zero_pct must be from 0 to below 100')
        elif self.wss_gib > self.ram_gib * (1 - self.zero_pct / 100.0):
            problems.append(
                'wss_gib %g does not fit into the %g GiB of RAM that is not '
                'zero' % (self.wss_gib,
                          self.ram_gib * (1 - self.zero_pct / 100.0)))
        if self.dirty_gbps > 0 and self.wss_gib == 0:
            problems.append('dirty_gbps > 0 needs a working set (wss_gib)')
        if self.pattern not in PATTERNS:
            problems.append('pattern must be one of %s' % ', '.join(PATTERNS))
        if not 0 <= self.spread_zero_pct <= self.zero_pct:
            problems.append('spread_zero_pct must be from 0 to zero_pct')
        elif self.spread_zero_pct and self.zeros != 'end':
            problems.append('spread_zero_pct needs zeros=end')
        if self.zeros not in ZERO_LAYOUTS:
            problems.append('zeros must be one of %s'
                            % ', '.join(ZERO_LAYOUTS))
        if self.sync not in SYNC_MODES:
            problems.append('sync must be one of %s' % ', '.join(SYNC_MODES))
        if self.outage_at_s < 0 or self.outage_s < 0:
            problems.append('outage_at_s and outage_s must be >= 0')
        if self.rtt_ms < 0 or self.phase_s <= 0:
            problems.append('rtt_ms must be >= 0 and phase_s > 0')
        if self.setup_s < 0:
            problems.append('setup_s must be >= 0')
        if min(self.uncapped_gbps, self.fresh_gbps, self.stop_gbps) < 0:
            problems.append('uncapped_gbps, fresh_gbps and stop_gbps must '
                            'be >= 0')
        if problems:
            raise InvalidWorkload('invalid workload %s: %s'
                                  % (self.label, '; '.join(problems)))

    @property
    def label(self):
        if self.name:
            return self.name
        text = 'ram=%gG link=%gG wss=%gG dirty=%gG %s' % (
            self.ram_gib, self.link_gbps, self.wss_gib, self.dirty_gbps,
            self.pattern)
        if self.outage_s:
            text += ' outage=%gs@%gs' % (self.outage_s, self.outage_at_s)
        return text

    @classmethod
    def parse(cls, spec, **defaults):
        """Parse ``ram_gib=16,link_gbps=10,wss_gib=4,...``.

        :param defaults: values for keys the spec does not give.
        :raises InvalidWorkload: unknown key, bad number, impossible guest.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for item in filter(None, (part.strip() for part in spec.split(','))):
            key, sep, raw = item.partition('=')
            key = key.strip()
            if not sep:
                raise InvalidWorkload('%r is not key=value' % item)
            if key not in fields:
                raise InvalidWorkload(
                    'unknown workload key %r; known keys: %s'
                    % (key, ', '.join(sorted(fields))))
            if key in values:
                raise InvalidWorkload('workload key %r given twice in %r'
                                      % (key, spec))
            kind = type(fields[key].default) if key not in (
                'ram_gib', 'link_gbps') else float
            try:
                values[key] = (_boolean(raw) if kind is bool
                               else kind(raw.strip()))
            except ValueError:
                raise InvalidWorkload('%s=%r is not %s' % (
                    key, raw, 'true or false' if kind is bool
                    else 'a ' + kind.__name__)) from None
        missing = [key for key in ('ram_gib', 'link_gbps')
                   if key not in values]
        if missing:
            raise InvalidWorkload('workload %r lacks %s'
                                  % (spec, ', '.join(missing)))
        return cls(**dict(defaults, **values))


def _boolean(raw):
    words = {'true': True, 'yes': True, '1': True,
             'false': False, 'no': False, '0': False}
    try:
        return words[raw.strip().lower()]
    except KeyError:
        raise ValueError(raw) from None
