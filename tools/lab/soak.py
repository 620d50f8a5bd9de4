# SPDX-License-Identifier: Apache-2.0
"""N live migrations on the lab, each guest's health checked where it ends.

A lost guest is the one failure this project must never have, and one
switchover proves little: the guests that died at the switch on QEMU 11.1
died in one run of three. So this runs many migrations, A -> B, with
nova-postcopy-migrate as an operator runs it, over a spread of guest
shapes (RAM, working set share, dirty rate, sequential or random writes,
capped or uncapped link) and of the policies that switch; after each one
the guest is checked on the host where it runs: running, counter
advancing, no memory errors, no panic, no reset. A guest kept healthy on A
(pre-copy refused to finish, or the budget aborted it) survived; one on
neither host, or panicked, reset or with memory errors, is lost, and its
serial logs are kept. Prints a table and, last, ``survived K/N``.
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import lab_hosts

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
LAB = os.path.join(TOP, 'tools', 'lab', 'lab')
LAB_DIR = os.environ.get('NOVA_POSTCOPY_LAB', '/var/tmp/nova-postcopy-lab')
DEST = lab_hosts.libvirt_uri('B')
# RAM MiB, working set MiB, dirty MiB/s (0: flat out), pattern, link MiB/s
# (0: uncapped). The first is issue #11's shape, which lost 6 guests of 9.
SHAPES = (
    (512, 256, 64, 'sequential', 16),
    (512, 256, 64, 'random', 16),
    (256, 64, 0, 'sequential', 32),
    (256, 128, 0, 'random', 32),
    (768, 192, 32, 'random', 16),
    (1024, 768, 16, 'sequential', 8),
    (1024, 512, 128, 'random', 64),
    (512, 128, 0, 'sequential', 0),
    (384, 96, 8, 'random', 0),
    (512, 384, 0, 'random', 0),
)
POLICIES = (('forecast', 'stall', 'timeout'), ('first_pass',),
            ('iterations',), ('stall', 'timeout'))
CONFIG = """[postcopy]
precopy_timeout_per_gib = 60
precopy_timeout_max = 20
"""
# --plan record (issue #14): the spread the simulator is calibrated on.
# RAM 256-1024 MiB, working set 10-90 % of it (less a quarter, at least 128
# MiB, for the guest's kernel and initramfs: 640 of 768 MiB panicked "System
# is deadlocked on memory"), 4-128 MiB/s or flat out, sequential and random
# writers, capped 8-64 MiB/s or not, pre-copy alone and switched by several
# policies. Each knob cycles at its own period, so 40 runs cross them.
RECORD_RAM = (256, 512, 768, 1024)
RECORD_WSS_SHARE = (0.1, 0.3, 0.5, 0.7, 0.9)
RECORD_RATE = (4, 16, 32, 64, 128, 0)
RECORD_LINK = (8, 16, 32, 64, 0)
RECORD_POLICIES = (('precopy',), ('forecast', 'stall', 'timeout'),
                   ('first_pass',), ('iterations',), ('timeout',),
                   ('stall',), ('precopy',))
RECORD_CONFIG = CONFIG + 'poll_interval = 0.1\n'
GUEST_RESERVE_MIB = 128


def record_plan(runs):
    """(shape, policies) of run i: every knob cycles at its own period."""
    plan = []
    for i in range(runs):
        ram = RECORD_RAM[i % len(RECORD_RAM)]
        share = RECORD_WSS_SHARE[(i // 2) % len(RECORD_WSS_SHARE)]
        reserve = max(GUEST_RESERVE_MIB, ram // 4)
        wss = max(min(int(ram * share), ram - reserve), 16)
        shape = (ram, wss, RECORD_RATE[i % len(RECORD_RATE)],
                 ('sequential', 'random')[(i // 3) % 2],
                 RECORD_LINK[(i // 4) % len(RECORD_LINK)])
        plan.append((shape, RECORD_POLICIES[i % len(RECORD_POLICIES)]))
    return plan


def guest_rates(name):
    """The dirtier's own (t, MiB/s) lines on the source, as it wrote them."""
    path = os.path.join(LAB_DIR, 'hosts', 'A', 'log', 'qemu',
                        name + '-serial.log')
    try:
        with open(path, errors='replace') as handle:
            text = handle.read()
    except OSError:
        return []
    return [(float(t), float(rate)) for t, rate in re.findall(
        r'DIRTIER seq=\d+ t=([\d.]+) .*?rate_mbs=([\d.]+)', text)]


def lab(*args, check=True):
    return subprocess.run([LAB] + list(args), check=check, text=True,
                          stdout=subprocess.PIPE).stdout.strip()


def one_run(index, shape, policies, workdir, keep, record=None,
            config_text=CONFIG, attempt=None):
    ram, wss, rate, pattern, link = shape
    name = 'soak%02d%s' % (index, uuid.uuid4().hex[:4])
    try:
        lab('guest', name, '--ram-mib', str(ram), '--wss-mib', str(wss),
            '--dirty-mibs', str(rate), '--pattern', pattern)
    except subprocess.CalledProcessError:
        lab('destroy', name, check=False)
        sys.exit('soak: guest shape %r did not start (see lab guest above); '
                 'nothing was migrated' % (shape,))
    time.sleep(3)  # the guest is dirtying already: it printed progress
    config = os.path.join(workdir, 'nova.conf')
    with open(config, 'w') as handle:
        handle.write(config_text)
    report_path = os.path.join(workdir, '%s.json' % name)
    argv = ['nova-postcopy-migrate', lab('uri', 'A'), DEST, name,
            '--dest-check-uri', lab('uri', 'B'), '--config-file', config,
            '--report', report_path, '--quiet']
    if link:
        argv += ['--bandwidth-mibs', str(link)]
    for policy in policies:
        argv += (['--no-postcopy'] if policy == 'precopy'
                 else ['--policy', policy])
    started = time.monotonic()
    cli = subprocess.run(argv, text=True, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=600)
    took = time.monotonic() - started
    check = json.loads(lab('check', name))
    try:
        with open(report_path) as handle:
            report = json.load(handle)
    except (OSError, ValueError):
        report = {}
    row = {'run': index, 'name': name, 'ram': ram, 'wss': wss,
           'rate': rate, 'pattern': pattern, 'link': link,
           'policies': ','.join(policies), 'cli_rc': cli.returncode,
           'result': report.get('result', 'no report'),
           'plan': report.get('plan') or '',
           'switch_at_s': report.get('switch_at_s'),
           'took_s': round(took, 1), 'host': check['host'],
           'check': check, 'survived': check['healthy']}
    if record and report:
        kept = dict(report, shape=dict(
            ram_mib=ram, wss_mib=wss, dirty_mibs=rate, pattern=pattern,
            link_mibs=link), policies=list(policies), hosts=record['hosts'],
            config=config_text,
            guest_rates=guest_rates(name), health=check)
        path = os.path.join(record['dir'], '%s-%02d%s.json' % (
            record['suite'], index, '' if attempt is None
            else '-r%d' % attempt))
        with open(path, 'w') as handle:
            json.dump(kept, handle, sort_keys=True, separators=(',', ':'))
            handle.write('\n')
    if not row['survived']:
        lost = os.path.join(keep, name)
        os.makedirs(lost, exist_ok=True)
        for host in ('A', 'B'):
            for suffix in ('-serial.log', '.log'):
                path = os.path.join(LAB_DIR, 'hosts', host, 'log', 'qemu',
                                    name + suffix)
                if os.path.exists(path):
                    shutil.copy(path, os.path.join(lost, host + suffix))
        with open(os.path.join(lost, 'cli.txt'), 'w') as handle:
            handle.write(cli.stdout)
        if os.path.exists(report_path):
            shutil.copy(report_path, lost)
    lab('destroy', name, check=False)
    return row


def table(rows):
    head = ('run', 'ram', 'wss', 'rate', 'pattern', 'link', 'policies',
            'result', 'switch', 'took', 'host', 'guest')
    lines = ['%-3s %5s %5s %5s %-10s %5s %-24s %-16s %7s %6s %-4s %s'
             % head]
    for row in rows:
        lines.append('%-3d %5d %5d %5s %-10s %5s %-24s %-16s %7s %6.1f %-4s '
                     '%s' % (
                         row['run'], row['ram'], row['wss'],
                         row['rate'] or 'max', row['pattern'],
                         row['link'] or 'none', row['policies'],
                         row['result'],
                         '-' if row['switch_at_s'] is None
                         else '%.1f' % row['switch_at_s'],
                         row['took_s'], row['host'] or '-',
                         'healthy' if row['survived'] else 'LOST'))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='soak', description=__doc__)
    parser.add_argument('--runs', type=int, default=30)
    parser.add_argument('--suite-a', default='forky-qemu10',
                        help="host A's suite (default: the lab's own)")
    parser.add_argument('--suite-b', default='forky-qemu10')
    parser.add_argument('--seed', type=int, default=11)
    parser.add_argument('--from', dest='first', type=int, default=1,
                        metavar='K', help='start at run K of the seeded plan '
                        '(to finish a soak that stopped)')
    parser.add_argument('--keep', default=os.path.join(LAB_DIR, 'soak-lost'),
                        help='where the logs of lost guests go')
    parser.add_argument('--json', metavar='FILE')
    parser.add_argument(
        '--repeat', type=int, default=1, metavar='K',
        help='run each migration of the plan K times (recorded as '
        'DIR/<suite-a>-<run>-r<k>.json): how far the lab repeats itself')
    parser.add_argument(
        '--plan', choices=('survival', 'record'), default='survival',
        help='survival (default): shapes that lost guests, shuffled; '
        'record: the spread of shapes and policies the simulator is '
        'calibrated on, in order, polled every 0.1 s')
    parser.add_argument(
        '--record', metavar='DIR',
        help='keep every run\'s report, with its shape, the hosts\' '
        'versions, the dirtier\'s own rates and the guest\'s health, as '
        'DIR/<suite-a>-<run>.json')
    args = parser.parse_args(argv)
    if args.runs < 1 or args.repeat < 1:
        parser.error('--runs and --repeat must be at least 1')
    lab('up', '--suite-a', args.suite_a, '--suite-b', args.suite_b)
    hosts = lab('status').splitlines()[-2:]
    print('\n'.join(hosts))
    if args.plan == 'record':
        plan, config_text = record_plan(args.runs), RECORD_CONFIG
    else:
        plan = [(SHAPES[i % len(SHAPES)], POLICIES[i % len(POLICIES)])
                for i in range(args.runs)]
        random.Random(args.seed).shuffle(plan)
        config_text = CONFIG
    record = None
    if args.record:
        os.makedirs(args.record, exist_ok=True)
        record = {'dir': args.record, 'suite': args.suite_a,
                  'hosts': [h.split(', guests:')[0] for h in hosts]}
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for index, (shape, policies) in enumerate(plan, 1):
            if index < args.first:
                continue
            for attempt in range(1, args.repeat + 1):
                row = one_run(index, shape, policies, workdir, args.keep,
                              record, config_text,
                              attempt if args.repeat > 1 else None)
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(rows, handle, indent=1)
    lost = [r for r in rows if not r['survived']]
    if lost:
        print('lost: %s (logs in %s)' % (
            ', '.join(r['name'] for r in lost), args.keep))
    print('survived %d/%d' % (len(rows) - len(lost), len(rows)))
    return 1 if lost else 0


if __name__ == '__main__':
    sys.exit(main())
