# SPDX-License-Identifier: Apache-2.0
"""The demo: three migrations on the two-host lab, side by side.

(a) a busy guest, pre-copy only: it does not converge and the budget aborts
it; the guest is still healthy on host A. (b) the same guest with the
default policies: they switch to post-copy, say why, and it completes,
healthy on host B. (c) a quiet guest: it converges without a switch.
"""

import json
import os
import subprocess
import sys
import time

import lab_hosts

HERE = os.path.dirname(os.path.abspath(__file__))
LAB_CMD = os.path.join(HERE, 'lab')
OUT = os.environ.get('NOVA_POSTCOPY_DEMO_OUT', '/var/tmp/nova-postcopy-demo')
DEST = lab_hosts.libvirt_uri('B')
BANDWIDTH_MIBS = 32
BUDGET_CONF = """[postcopy]
# A short budget so that the demo's pre-copy-only run ends in half a minute.
precopy_timeout_max = 30
"""


def lab(*args, capture=False):
    result = subprocess.run([LAB_CMD] + list(args), check=True, text=True,
                            stdout=subprocess.PIPE if capture else None)
    return result.stdout.strip() if capture else None


def migrate(label, guest, extra):
    report = os.path.join(OUT, '%s.json' % label)
    plot = os.path.join(OUT, '%s.png' % label)
    print('\n== (%s) %s' % (label, ' '.join(extra) or 'default policies'),
          flush=True)
    started = time.monotonic()
    subprocess.run(['nova-postcopy-migrate', lab('uri', 'A', capture=True),
                    DEST, guest, '--bandwidth-mibs', str(BANDWIDTH_MIBS),
                    '--dest-check-uri', lab('uri', 'B', capture=True),
                    '--config-file', os.path.join(OUT, 'demo.conf'),
                    '--report', report, '--plot', plot] + extra)
    wall = time.monotonic() - started
    health = json.loads(lab('check', guest, capture=True))
    with open(report) as handle:
        data = json.load(handle)
    return dict(label=label, guest=guest, wall=wall, health=health,
                report=data, plot=plot)


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, 'demo.conf'), 'w') as handle:
        handle.write(BUDGET_CONF)
    started = time.monotonic()
    lab('up')
    for guest in ('busy', 'quiet'):
        lab('destroy', guest)
    print('\nA busy guest: 256 MiB rewritten as fast as it can, over a '
          '%d MiB/s link.' % BANDWIDTH_MIBS, flush=True)
    lab('guest', 'busy', '--ram-mib', '512', '--wss-mib', '256')
    runs = [migrate('a', 'busy', ['--no-postcopy']),
            migrate('b', 'busy', [])]
    print('\nA quiet guest: 64 MiB rewritten at 2 MiB/s.', flush=True)
    lab('guest', 'quiet', '--ram-mib', '512', '--wss-mib', '64',
        '--dirty-mibs', '2')
    runs.append(migrate('c', 'quiet', []))
    print('\n%-4s %-6s %-10s %-8s %-10s %-8s %-28s %s' % (
        'run', 'guest', 'outcome', 'time s', 'switch at', 'on host',
        'guest health', 'why'))
    for run in runs:
        data, health = run['report'], run['health']
        healthy = health['healthy']
        why = data['switch_reason'] or data['end_reason'] or '-'
        print('%-4s %-6s %-10s %-8.1f %-10s %-8s %-28s %s' % (
            run['label'], run['guest'], data['result'], data['total_s'],
            '%.1f' % data['switch_at_s'] if data['switch_at_s'] else '-',
            health['host'] or '-',
            'healthy' if healthy else 'NOT HEALTHY: %s' % health,
            why[:110]))
    print('\nThe plot of (b): %s' % runs[1]['plot'])
    print('Demo took %.0f s.' % (time.monotonic() - started))
    ok = (runs[0]['report']['result'] == 'aborted'
          and runs[0]['health']['host'] == 'A'
          and runs[1]['report']['result'] == 'postcopy'
          and runs[1]['health']['host'] == 'B'
          and runs[2]['report']['result'] == 'converged'
          and not runs[2]['report']['switched'])
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
