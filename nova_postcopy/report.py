# SPDX-License-Identifier: Apache-2.0
"""What a migration leaves behind: JSON report, progress line and plot.

And what the CLI prints while and after it runs.
"""

import json
import sys

from nova_postcopy import units

MIB = units.MIB


def progress_line(tracker, decision):
    """One line of what the monitor sees now, for people watching."""
    sample = tracker.sample
    if sample is None:
        return 'waiting for the migration to start'
    verdict = ''
    if decision is not None:
        verdict = ' | %s' % (decision.reason or decision.action.value)
    return ('%6.1f s | pass %d | remaining %6.0f MiB | %5.1f MiB/s | '
            'dirty %5.1f MiB/s%s' % (
                sample.time_elapsed_s, tracker.completed_passes + 1,
                sample.data_remaining / MIB, tracker.bandwidth / MIB,
                sample.memory_dirty_rate / MIB, verdict[:100]))


def build(outcome, libvirt_completed=None, extra=None):
    """The report of one migration.

    The outcome, the passes, every sample, and libvirt's own figures of the
    completed job to check them against.
    """
    data = outcome.as_dict(with_samples=True)
    data['libvirt_completed'] = libvirt_completed or {}
    data.update(extra or {})
    return data


def write_json(path, data):
    with open(path, 'w') as handle:
        json.dump(data, handle, indent=1, sort_keys=True, default=str)
        handle.write('\n')


def plot(path, outcome, title):
    """PNG of remaining data over time, pass ends and the switch marked."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    times = [s.time_elapsed_s for s in outcome.samples]
    remaining = [s.data_remaining / MIB for s in outcome.samples]
    figure, axes = pyplot.subplots(figsize=(9, 4.5), dpi=100)
    axes.plot(times, remaining, color='tab:blue', label='remaining data')
    for number, item in enumerate(outcome.passes):
        axes.axvline(item.end_s, color='grey', linestyle=':', linewidth=1,
                     label='end of a pass' if number == 0 else None)
    if outcome.switch_at_s is not None:
        axes.axvline(outcome.switch_at_s, color='tab:red', linewidth=2,
                     label='switch to post-copy')
    axes.set_xlabel('migration time (s)')
    axes.set_ylabel('remaining (MiB)')
    axes.set_title(title, fontsize=10)
    axes.legend(loc='upper right', fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def summary(outcome, name):
    lines = ['%s: %s in %.1f s' % (name, outcome.result, outcome.total_s)]
    if outcome.switch_at_s is not None:
        lines.append('  switched to post-copy at %.1f s by %s: %s' % (
            outcome.switch_at_s, outcome.switch_policy,
            outcome.switch_reason))
        lines.append('  post-copy took %.1f s, %d page requests' % (
            outcome.postcopy_s, outcome.postcopy_requests))
    if outcome.end_reason:
        lines.append('  %s' % outcome.end_reason)
    if outcome.postcopy_failed_at_s is not None:
        lines.append('  post-copy failed at %.1f s' % (
            outcome.postcopy_failed_at_s))
    if outcome.recovery:
        rec = outcome.recovery
        lines.append('  recovery: %s after %.1f s, %d resume attempt(s)' % (
            rec['result'], rec['took_s'], len(rec['attempts'])))
        if rec['result'] == 'gave-up':
            lines.append('  both halves left: %s' % rec['hosts'])
        if rec['result'] == 'lost':
            lines.append('  the destination has no domain to resume into: '
                         '%s' % rec['hosts'])
        if rec['result'] not in ('recovered', 'completed'):
            lines.append('  next: %s' % rec['next_step'])
    downtime = ('%.0f ms' % outcome.downtime_ms
                if outcome.downtime_ms is not None else 'not reported')
    lines.append('  downtime %s, %d passes, %.0f MiB sent' % (
        downtime, len(outcome.passes), outcome.bytes_sent / units.MIB))
    return '\n'.join(lines)


class Display:
    """A progress bar on a terminal, a line every few seconds in a log."""

    def __init__(self, quiet=False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = -1e9

    def update(self, tracker, decision):
        if self.quiet or tracker.sample is None:
            return
        line = progress_line(tracker, decision)
        if self.tty:
            sample = tracker.sample
            done = 1 - sample.data_remaining / max(sample.data_total, 1)
            bar = '#' * int(20 * done)
            sys.stderr.write('\r[%-20s] %s' % (bar, line[:110]))
            sys.stderr.flush()
        elif tracker.elapsed_s - self.last >= 2.0:
            self.last = tracker.elapsed_s
            print(line, file=sys.stderr)

    def finish(self):
        if self.tty and not self.quiet:
            sys.stderr.write('\n')
