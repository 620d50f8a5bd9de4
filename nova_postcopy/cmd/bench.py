# SPDX-License-Identifier: Apache-2.0
"""``nova-postcopy-bench``: switch policies on a simulated fleet.

Runs each policy with the production monitor on every workload of the
built-in matrix (or of ``--workload``), side by side with the anchors that
model what Nova, virsh, oVirt and KubeVirt do, and prints how they compare.
"""

import argparse
import json
import sys
import time

from nova_postcopy.bench import matrix
from nova_postcopy.bench import recordings
from nova_postcopy.bench import runner
from nova_postcopy.bench import twins as twins_mod
from nova_postcopy import conf as np_conf
from nova_postcopy import exception
from nova_postcopy.sim import workload as workload_mod

COLUMNS = (
    ('completion_rate', 'done', '{:.0%}'),
    ('aborted', 'abort', '{}'),
    ('failed', 'fail', '{}'),
    ('unfinished', 'unfin', '{}'),
    ('switches', 'switch', '{}'),
    ('unnecessary_switches', 'unneeded', '{}'),
    ('costly_switches', 'costly', '{}'),
    ('switches_in_outage', 'in-outage', '{}'),
    ('ratio_to_first_pass_p50', 'vs-1st p50', '{:.2f}'),
    ('ratio_to_first_pass_p95', 'vs-1st p95', '{:.2f}'),
    ('ratio_to_bound_p50', 'vs-bound p50', '{:.2f}'),
    ('downtime_ms_p95', 'downtime p95 ms', '{:.0f}'),
    ('postcopy_s_p50', 'post-copy p50 s', '{:.1f}'),
    ('postcopy_s_p95', 'post-copy p95 s', '{:.1f}'),
    ('postcopy_requests_p50', 'page requests p50', '{:.0f}'),
)


def parse_args(argv, conf):
    names = runner.policy_names(conf)
    parser = argparse.ArgumentParser(
        prog='nova-postcopy-bench', description=__doc__.split('\n\n')[1])
    parser.add_argument(
        '--policy', action='append', choices=names, metavar='NAME',
        help='policy to run, repeatable; one of: %s (default: all)'
        % ', '.join(names))
    parser.add_argument(
        '--workload', action='append', type=_workload, metavar='SPEC',
        help='replaces the built-in matrix, repeatable; e.g. ram_gib=16,'
        'link_gbps=10,wss_gib=4,dirty_gbps=12,pattern=steady,seed=1')
    parser.add_argument(
        '--qemu', choices=sorted(workload_mod.QEMU_SYNC),
        help='the QEMU modelled, for every workload: how it syncs the dirty '
        'bitmap with post-copy enabled (every migration here), as measured '
        'on the lab: %s (default %s)' % (', '.join(
            '%s %s' % (v, workload_mod.QEMU_SYNC[v])
            for v in sorted(workload_mod.QEMU_SYNC)),
            workload_mod.DEFAULT_QEMU))
    parser.add_argument('--json', action='store_true',
                        help='print results and summary as JSON')
    parser.add_argument(
        '--rst', action='store_true',
        help='print the summary and the targets as reStructuredText, the '
        'form the benchmark guide includes (tools/bench-tables)')
    parser.add_argument('--rows', action='store_true',
                        help='print one line per run, not just the summary')
    parser.add_argument(
        '--check', action='store_true',
        help="exit 1 when the default chain misses a target")
    parser.add_argument(
        '--recordings', metavar='DIR', action='append',
        help='instead of the policies, replay the lab migrations recorded '
        'in DIR (tools/lab/soak --plan record --record DIR) in the '
        'simulator and print how each agrees with what was measured; '
        'repeatable. Where runs repeat one shape (soak --repeat), also how '
        'they agree with each other')
    parser.add_argument(
        '--twins', action='store_true',
        help='instead of the policies, print the lowest vs-1st p95 that '
        'any policy with no unneeded switch can reach on the workloads: '
        'each phased guest that the default chain switches, against its '
        'steady twin held until their figures differ')
    args = parser.parse_args(argv)
    if args.twins and (args.policy or args.check or args.rows):
        parser.error('--twins runs the default chain and its anchors '
                     'only; drop --policy, --check and --rows')
    if args.recordings and (args.twins or args.policy or args.check
                            or args.workload or args.qemu):
        parser.error('--recordings replays each recording with its own '
                     'policies, guest and QEMU; use it alone (or with '
                     '--json or --rst)')
    if args.rst and args.json:
        parser.error('--rst and --json are two forms of the same figures; '
                     'choose one')
    if args.check and args.policy and runner.DEFAULT not in args.policy:
        parser.error('--check judges the %r policy; add --policy %s'
                     % (runner.DEFAULT, runner.DEFAULT))
    sync = workload_mod.QEMU_SYNC[args.qemu or workload_mod.DEFAULT_QEMU]
    if args.workload:
        # The QEMU's mode fills a spec without sync=; one that differs was
        # said by the spec.
        args.workloads = [workload_mod.Workload.parse(spec, sync=sync)
                          for spec in args.workload]
        for spec, workload in zip(args.workload, args.workloads):
            if args.qemu and workload.sync != sync:
                parser.error('workload %r says sync=%s, but QEMU %s syncs '
                             '"%s": drop one of the two'
                             % (spec, workload.sync, args.qemu, sync))
    else:
        args.workloads = matrix.builtin(sync=sync)
    return args


def _workload(spec):
    """A workload spec, checked where argparse can name the option.

    Kept a string so that the QEMU's sync mode fills what it leaves out.
    """
    try:
        workload_mod.Workload.parse(spec)
    except workload_mod.InvalidWorkload as error:
        raise argparse.ArgumentTypeError(str(error))
    return spec


def modelled(workloads):
    """'QEMU 10.0 (sync=pass)' for the sync modes these workloads use."""
    versions = {mode: version
                for version, mode in workload_mod.QEMU_SYNC.items()}
    return ', '.join('QEMU %s (sync=%s)' % (versions[mode], mode)
                     for mode in sorted({w.sync for w in workloads}))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    config_args, argv = _split_config_args(argv)
    np_conf.CONF(config_args, project='nova', default_config_files=[])
    try:
        conf = np_conf.load()
    except exception.InvalidConfig as error:
        print('nova-postcopy-bench: %s' % error, file=sys.stderr)
        return 2
    args = parse_args(argv, conf)
    names = args.policy or runner.policy_names(conf)
    workloads = args.workloads
    started = time.process_time()
    if args.twins:
        _twins(conf, workloads, args.json, args.rst, started)
        return 0
    if args.recordings:
        return _recordings(conf, args.recordings, args.json, args.rst,
                           started)
    rows = runner.run(names, conf, workloads)
    summary = runner.summarize(rows, names)
    cpu_s = time.process_time() - started
    targets = (runner.check_targets(summary[runner.DEFAULT])
               if runner.DEFAULT in summary else [])
    if args.json:
        json.dump({'results': [r.__dict__ for r in rows if r.policy in names],
                   'summary': summary,
                   'targets': [dict(metric=m, value=v, wanted=w, met=ok)
                               for m, v, w, ok in targets],
                   'workloads': len(workloads),
                   'sync': sorted({w.sync for w in workloads}),
                   'models': modelled(workloads),
                   'cpu_s': round(cpu_s, 2)},
                  sys.stdout, indent=1)
        print()
    elif args.rst:
        _print_rst(summary, workloads, cpu_s, targets)
    else:
        if args.rows or args.workload:
            _print_rows([r for r in rows if r.policy in names])
        _print_summary(summary, len(workloads), cpu_s)
        print('Models %s.' % modelled(workloads))
        _print_targets(targets)
    return 1 if args.check and not all(ok for *_, ok in targets) else 0


def _twins(conf, workloads, as_json, as_rst, started):
    result = twins_mod.bound(conf, workloads)
    cpu_s = time.process_time() - started
    words = ('With no unneeded switch: at least %s with the other workloads '
             'as today, at least %s whatever they cost' % (
                 result.p95_lowest, result.p95_floor))
    if as_json:
        json.dump({'twins': [dict(t.__dict__,
                                  default_ratio=round(t.default_ratio, 4),
                                  held_ratio=round(t.held_ratio, 4))
                             for t in result.twins],
                   'ratio_to_first_pass_p95': result.p95_today,
                   'lowest_p95_others_as_today': result.p95_lowest,
                   'lowest_p95_any_policy': result.p95_floor,
                   'cpu_s': round(cpu_s, 2)}, sys.stdout, indent=1)
        print()
        return
    if as_rst:
        print('%s, %.0f s of CPU:\n' % (modelled(workloads), cpu_s))
        print(_rst_table(
            ['steady twin of', 'apart at s', 'first-pass s', 'default s',
             'held s', 'default vs-1st', 'held vs-1st'],
            [[t.phased, '-' if t.told_apart_s is None
              else '%.1f' % t.told_apart_s, '%.1f' % t.first_pass_s,
              '%.1f' % t.default_s, '%.1f' % t.held_s,
              '%.2f' % t.default_ratio, '%.2f' % t.held_ratio]
             for t in result.twins]))
        print('\n``vs-1st p95`` of the default chain: %s. %s.' % (
            result.p95_today, words))
        return
    print('%-28s %9s %10s %9s %9s %7s %7s' % (
        'steady twin of', 'apart at', 'first-pass', 'default', 'held',
        'default', 'held'))
    print('%-28s %9s %10s %9s %9s %7s %7s' % (
        '', 's', 's', 's', 's', 'vs-1st', 'vs-1st'))
    for t in result.twins:
        print('%-28s %9s %10.1f %9.1f %9.1f %7.2f %7.2f' % (
            t.phased[:28], '-' if t.told_apart_s is None
            else '%.1f' % t.told_apart_s, t.first_pass_s, t.default_s,
            t.held_s, t.default_ratio, t.held_ratio))
    print('\nvs-1st p95 of the default chain: %s. %s (%.1f s of CPU).' % (
        result.p95_today, words, cpu_s))


def _recordings(conf, directories, as_json, as_rst, started):
    replayed = []
    for directory in directories:
        try:
            replayed += recordings.report(conf, directory)
        except (OSError, ValueError, KeyError) as error:
            print('nova-postcopy-bench: cannot replay %s: %s' % (
                directory, error), file=sys.stderr)
            return 2
    agree = [name for name, _, checks in replayed
             if all(c.ok for c in checks)]
    healthy = [name for name, rec, _ in replayed if recordings.healthy(rec)]
    by_qemu = {}
    for name, rec, _ in replayed:
        counts = by_qemu.setdefault(recordings.qemu_version(rec), [0, 0])
        counts[0] += name in agree
        counts[1] += 1
    errors = recordings.error_summary(replayed)
    repeated = _repeated(replayed)
    lab = recordings.lab_against_itself(
        conf, [(name, rec) for name, rec, _ in repeated])
    lab_words = _lab_words(lab, repeated, agree)
    cpu_s = time.process_time() - started
    if as_json:
        json.dump({'recordings': [
            {'name': name, 'agrees': name in agree,
             'healthy': name in healthy,
             'checks': [c.__dict__ for c in checks]}
            for name, _, checks in replayed],
            'agree': len(agree), 'total': len(replayed),
            'agree_by_qemu': by_qemu,
            'errors': {kind: dict(zip(('comparisons', 'median', 'p90'),
                                      figures))
                       for kind, figures in errors.items()},
            'lab_against_itself': {
                'agree': lab[0], 'pairs': lab[1], 'runs': len(repeated),
                'model_agrees': len([name for name, _, _ in repeated
                                     if name in agree])},
            'cpu_s': round(cpu_s, 2)}, sys.stdout, indent=1)
        print()
        return 0
    if as_rst:
        print(_rst_table(
            ['QEMU', 'recordings', 'agree'],
            [[version, str(total), str(agreed)]
             for version, (agreed, total) in sorted(by_qemu.items())]
            + [['all', str(len(replayed)), str(len(agree))]]))
        print()
        print(_rst_table(
            ['comparison', 'count', 'median error', '90th percentile'],
            [[title, str(errors[kind][0])] + [
                '%.1f %s' % (value, unit) for value in errors[kind][1:]]
             for kind, title, unit in recordings.ERROR_KINDS
             if kind in errors]))
        print('\nTolerances: %s.' % recordings.tolerances())
        if lab_words:
            print('\n%s' % lab_words)
        return 0
    print('%-18s %5s %5s %5s %5s %-10s %-22s %-16s %-16s %s' % (
        'recording', 'ram', 'wss', 'rate', 'link', 'pattern', 'policies',
        'measured', 'simulated', 'outside the tolerance'))
    for name, rec, checks in replayed:
        shape = rec['shape']
        result, total = checks[0], checks[1]
        print('%-18s %5d %5d %5s %5s %-10s %-22s %-16s %-16s %s' % (
            name[:18], shape['ram_mib'], shape['wss_mib'],
            shape['dirty_mibs'] or 'max', shape['link_mibs'] or 'none',
            shape['pattern'], '+'.join(rec['policies'])[:22],
            '%s %.1f s' % (result.measured, total.measured),
            '%s %.1f s' % (result.simulated, total.simulated),
            ', '.join(c.metric for c in checks if not c.ok) or '-'))
    print('\nErrors: %s.' % '; '.join(
        '%s median %.1f %s, 90th percentile %.1f %s' % (
            title, errors[kind][1], unit, errors[kind][2], unit)
        for kind, title, unit in recordings.ERROR_KINDS if kind in errors))
    print('%d of %d recordings agree within the tolerances (%s), %s; '
          'guests healthy where they ended: %d of %d (%.1f s of CPU).' % (
              len(agree), len(replayed), recordings.tolerances(),
              ', '.join('%d of %d on QEMU %s' % (agreed, total, version)
                        for version, (agreed, total)
                        in sorted(by_qemu.items())),
              len(healthy), len(replayed), cpu_s))
    if lab_words:
        print(lab_words)
    return 0


def _repeated(replayed):
    """The replayed runs whose shape ran more than once."""
    runs = {}
    for name, _, _ in replayed:
        shape = recordings.shape_of(name)
        runs[shape] = runs.get(shape, 0) + 1
    return [entry for entry in replayed
            if runs[recordings.shape_of(entry[0])] > 1]


def _lab_words(lab, repeated, agree):
    agreed, pairs = lab
    if not pairs:
        return ''
    shapes = {recordings.shape_of(name) for name, _, _ in repeated}
    return ('The lab against itself: %d of %d pairs of runs of one shape '
            'agree within the same tolerances (%d runs of %d shapes); the '
            'model agrees with %d of those %d runs.' % (
                agreed, pairs, len(repeated), len(shapes),
                len([name for name, _, _ in repeated if name in agree]),
                len(repeated)))


def _split_config_args(argv):
    config, rest = [], []
    items = iter(argv)
    for item in items:
        if item in ('--config-file', '--config-dir'):
            config += [item, next(items, '')]
        elif item.startswith(('--config-file=', '--config-dir=')):
            config.append(item)
        else:
            rest.append(item)
    return config, rest


def _print_rows(rows):
    print('%-20s %-44s %-10s %9s %9s %9s %10s  %s' % (
        'policy', 'workload', 'outcome', 'total s', 'bound s',
        'down ms', 'switch at', 'switch reason'))
    for r in rows:
        print('%-20s %-44s %-10s %9.1f %9.1f %9.0f %10s  %s' % (
            r.policy, r.workload[:44], r.outcome, r.total_s, r.bound_s,
            r.downtime_ms,
            '' if r.switch_at_s is None else '%.1f' % r.switch_at_s,
            r.switch_reason[:90]))
    print()


def _print_summary(summary, workloads, cpu_s):
    header = '%-20s' % 'policy' + ''.join(
        ' %*s' % (max(len(title), 6), title) for _, title, _ in COLUMNS)
    print(header)
    for name, stats in summary.items():
        cells = []
        for key, title, fmt in COLUMNS:
            value = stats[key]
            text = '-' if value is None else fmt.format(value)
            cells.append(' %*s' % (max(len(title), 6), text))
        print('%-20s' % name + ''.join(cells))
    print('\n%d workloads per policy; %.1f s of CPU.' % (workloads, cpu_s))


# The guide's table: what each policy achieves and what its switches cost.
RST_COLUMNS = tuple(column for column in COLUMNS if column[0] in (
    'completion_rate', 'failed', 'unnecessary_switches', 'costly_switches',
    'switches_in_outage', 'ratio_to_first_pass_p50',
    'ratio_to_first_pass_p95', 'ratio_to_bound_p50', 'postcopy_s_p50',
    'postcopy_requests_p50'))


def _rst_table(titles, rows):
    """A simple reStructuredText table, every cell under its column."""
    widths = [max(len(cell) for cell in column)
              for column in zip(titles, *rows)]
    rule = '  '.join('=' * width for width in widths)

    def line(cells):
        return '  '.join(cell.ljust(width)
                         for cell, width in zip(cells, widths)).rstrip()

    return '\n'.join([rule, line(titles), rule] + [line(r) for r in rows]
                     + [rule])


def _print_rst(summary, workloads, cpu_s, targets):
    titles = ['policy'] + [title for _, title, _ in RST_COLUMNS]
    rows = []
    for name, stats in summary.items():
        rows.append([name] + [
            '-' if stats[key] is None else fmt.format(stats[key])
            for key, _, fmt in RST_COLUMNS])
    print('%s, %d workloads per policy, %.0f s of CPU:\n' % (
        modelled(workloads), len(workloads), cpu_s))
    print(_rst_table(titles, rows))
    if targets:
        print('\nTargets of the default chain: %s.' % '; '.join(
            '``%s`` %s (wanted %s): %s' % (metric, value, wanted,
                                           'met' if met else '**missed**')
            for metric, value, wanted, met in targets))


def _print_targets(targets):
    for metric, value, wanted, met in targets:
        print('target %-26s %-8s %-10s %s' % (
            metric, value, wanted, 'met' if met else 'MISSED'))


if __name__ == '__main__':
    sys.exit(main())
