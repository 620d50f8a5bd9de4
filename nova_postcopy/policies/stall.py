# SPDX-License-Identifier: Apache-2.0
"""Switch when pre-copy stopped converging: a stall detector on passes.

Nova once switched when remaining data shrank by less than 10 % between two
polls and removed it: a poll lands anywhere on the sawtooth of a pass
(remaining falls through a pass and jumps at the next bitmap sync), and
during block migration memory does not move at all, so healthy migrations
looked stalled. This policy therefore looks only at the data each pass
started with, and only at completed passes, and asks whether the best of
those inside a sliding window of job time improved on the best before it
by at least a margin (KubeVirt VEP 248: 40 s, 4 %).

Once stalled it switches at a local minimum, a pass that starts within the
margin of the best seen, so that post-copy begins with as little data as
pre-copy is likely to reach; it waits for one at most a window's length,
and not at all when the budget would run out first.
"""

from nova_postcopy.policies import base
from nova_postcopy import units

GIB = units.GIB


class StallPolicy(base.SwitchPolicy):
    name = 'stall'

    def __init__(self, conf):
        super().__init__(conf)
        self._stalled_since = None

    def decide(self, progress, context):
        if not progress.pass_completed:
            return self.keep_going()
        window = self.conf.stall_window
        margin = self.conf.stall_margin / 100.0
        now = progress.passes[-1].end_s
        before = [p.dirtied for p in progress.passes
                  if p.end_s < now - window]
        inside = [p.dirtied for p in progress.passes
                  if p.end_s >= now - window]
        if not before or min(inside) < min(before) * (1 - margin):
            self._stalled_since = None
            return self.keep_going()
        if self._stalled_since is None:
            self._stalled_since = now
        best = min(before + inside)
        current = inside[-1]
        summary = ('data at pass starts improved by less than %.0f %% over '
                   '%d s (best %.2f GiB, now %.2f GiB)'
                   % (margin * 100, window, best / GIB, current / GIB))
        if current <= best * (1 + margin):
            return self.switch('%s; switching at a local minimum', summary)
        if now - self._stalled_since >= window:
            return self.switch('%s; no local minimum for %d s', summary,
                               window)
        if progress.bandwidth and (progress.elapsed_s
                                   + current / progress.bandwidth
                                   >= context.budget_s):
            return self.switch('%s; the budget of %.0f s ends before '
                               'another pass', summary, context.budget_s)
        return self.keep_going('stalled; waiting for a local minimum')
