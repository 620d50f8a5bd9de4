# SPDX-License-Identifier: Apache-2.0
"""Cut the lab's link in post-copy, N times, with and without recovery.

Each run: a guest rewriting 384 MiB at 8 MiB/s, migrated A -> B with
nova-postcopy-migrate (switch after the first pass, post-copy background
capped at 4 MiB/s so that the phase lasts, or ``--postcopy-mibs``); 3 s
after A's domain is paused in post-copy, A's link goes down for 2-20 s.
Measured: seconds from the cut to the end of the migration, and whether
the guest is healthy on B.
TCP gives up after 3 retransmissions in both hosts (as on a migration
network tuned for recovery), restored afterwards.

Three sets: ``baseline`` (no recovery), ``recovery`` (the CLI's, as
``nova-postcopy-migrate`` alone does it) and ``keepalive`` (the same, with
host B's part that nova-compute plays on a destination: TCP keepalive on
the incoming QEMU's connections while it is in post-copy, through the
same watch and helper, run here as root).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, TOP)
from nova_postcopy import clock  # noqa: E402
from nova_postcopy.compute import incoming  # noqa: E402
from nova_postcopy import incoming_sockets  # noqa: E402

import lab_hosts  # noqa: E402

LAB = os.path.join(TOP, 'tools', 'lab', 'lab')
DEST = lab_hosts.libvirt_uri('B')
POSTCOPY = [3, 12]
FAILED = [3, 13]
DEST_FAILED = [1, 11]


def lab(*args):
    return subprocess.run([LAB] + list(args), check=True, text=True,
                          stdout=subprocess.PIPE).stdout.strip()


def tcp_retries2(value):
    for host in ('hostA', 'hostB'):
        subprocess.run(['ip', 'netns', 'exec', host, 'sysctl', '-qw',
                        'net.ipv4.tcp_retries2=%d' % value], check=True)


def state(name, host='A'):
    import libvirt
    libvirt.registerErrorHandler(lambda *a: None, None)
    connection = libvirt.open(lab('uri', host))
    try:
        return connection.lookupByName(name).state()
    except libvirt.libvirtError:
        return None
    finally:
        connection.close()


def destination_keepalive(name):
    """Host B's part, as nova-compute plays it there; a started watch."""
    import libvirt
    connection = libvirt.open(lab('uri', 'A'))
    try:
        domain_uuid = connection.lookupByName(name).UUIDString()
    finally:
        connection.close()

    def read_state():
        found = state(name, 'B')
        return tuple(found) if found is not None else None
    watch = incoming.IncomingWatch(domain_uuid, 5, read_state,
                                   incoming_sockets.keep_incoming_alive,
                                   clock.WallClock())
    threading.Thread(target=watch.run, daemon=True).start()
    return watch


def one_run(outage_s, recover, workdir, keepalive=False, postcopy_mibs=4):
    name = 'rb%s' % uuid.uuid4().hex[:6]
    lab('guest', name, '--ram-mib', '512', '--wss-mib', '384',
        '--dirty-mibs', '8')
    watch = destination_keepalive(name) if keepalive else None
    config = os.path.join(workdir, 'nova.conf')
    with open(config, 'w') as handle:
        handle.write('[postcopy]\nswitch_policies = first_pass\n'
                     'postcopy_bandwidth_mibs = %d\nrecovery_deadline = 120\n'
                     'recovery_retry_max = 2\n' % postcopy_mibs)
    report = os.path.join(workdir, '%s.json' % name)
    cut = {}

    def cutter():
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if state(name) == POSTCOPY:
                time.sleep(3)  # as the lab recipe, see test_recovery.py
                lab('link', 'A', 'down')
                cut['at'] = time.monotonic()
                threading.Thread(target=destination_watch,
                                 daemon=True).start()
                failed = watch_for(outage_s, lambda s: s == FAILED,
                                   until_seen=False)
                lab('link', 'A', 'up')
                cut['up'] = time.monotonic()
                # Moving again: resumed (back in post-copy after a failure)
                # or done; a post-copy that never failed moves at once.
                failed = failed or watch_for(2, lambda s: s == FAILED)
                if not failed:
                    cut['moving'] = cut['up']
                elif watch_for(300, lambda s: s != FAILED):
                    cut['moving'] = time.monotonic()
                return
            time.sleep(0.1)

    def destination_watch():
        # When B's QEMU noticed the failure, if it did.
        end = time.monotonic() + 300
        while time.monotonic() < end and 'ended' not in cut:
            if state(name, 'B') == DEST_FAILED:
                cut['dest_failed'] = time.monotonic()
                return
            time.sleep(0.1)

    def watch_for(seconds, predicate, until_seen=True):
        # Whether it held within seconds (all of them watched unless
        # until_seen).
        end = time.monotonic() + seconds
        seen = False
        while time.monotonic() < end:
            now = state(name)
            if now == FAILED:
                cut.setdefault('source_failed', time.monotonic())
            if predicate(now):
                seen = True
                if until_seen:
                    break
            time.sleep(0.1)
        return seen

    argv = ['nova-postcopy-migrate', lab('uri', 'A'), DEST, name,
            '--bandwidth-mibs', '32', '--dest-check-uri', lab('uri', 'B'),
            '--config-file', config, '--report', report, '--quiet']
    if not recover:
        argv.append('--no-recovery')
    thread = threading.Thread(target=cutter, daemon=True)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    thread.start()
    output, _ = process.communicate(timeout=900)
    ended = cut['ended'] = time.monotonic()
    if watch is not None:
        watch.stop()
    thread.join(30)
    lab('link', 'A', 'up')
    health = json.loads(lab('check', name))
    with open(report) as handle:
        data = json.load(handle)
    lab('destroy', name)
    survived = (process.returncode == 0 and health['host'] == 'B'
                and health['healthy'])
    recovery = data.get('recovery') or {}
    return {'outage_s': outage_s, 'cut': 'at' in cut,
            'cut_to_end_s': round(ended - cut['at'], 1) if 'at' in cut
            else None,
            # What recovery controls: from the cut to pages moving again.
            'cut_to_moving_s': round(cut['moving'] - cut['at'], 1)
            if 'moving' in cut else None,
            'result': data.get('result'),
            'recovery': recovery.get('result'),
            'attempts': len(recovery.get('attempts', [])),
            'survived': survived, 'health': health,
            # How long after the source's QEMU the destination's noticed
            # the failure (issue #13's slow case when large).
            'destination_late_s': round(
                cut['dest_failed'] - cut['source_failed'], 1)
            if 'dest_failed' in cut and 'source_failed' in cut else None,
            # The CLI paused the half that had not noticed the cut.
            'paused_other_half': [
                line.split("paused the ", 1)[1].split("'", 1)[0]
                for line in output.splitlines()
                if 'so that it can be resumed at once' in line],
            'output_tail': output.strip().splitlines()[-3:]}


def outages(runs):
    if runs == 1:
        return [8.0]
    return [round(2 + 18.0 * i / (runs - 1), 1) for i in range(runs)]


def summary(label, results):
    alive = sum(r['survived'] for r in results)
    line = '%-18s survived %d/%d' % (label, alive, len(results))
    for key, what in (('cut_to_end_s', 'cut to completion'),
                      ('cut_to_moving_s', 'cut to moving again')):
        times = [r[key] for r in results
                 if r[key] is not None and r['survived']]
        if times:
            line += ', %s median %.1f s, max %.1f s' % (
                what, statistics.median(times), max(times))
    late = [r['cut_to_moving_s'] - r['outage_s'] for r in results
            if r['cut_to_moving_s'] is not None and r['survived']]
    if late:
        line += ', moving again %.1f s (median) after the link' % (
            statistics.median(late))
    behind = [r['destination_late_s'] for r in results
              if r['destination_late_s'] is not None]
    if behind:
        line += (', destination noticed the failure %.1f s (median), at '
                 'most %.1f s after the source' % (
                     statistics.median(behind), max(behind)))
    return line


SETS = ('baseline', 'recovery', 'keepalive')
TITLES = {'baseline': 'without recovery:', 'recovery': 'with recovery:',
          'keepalive': 'with recovery and B\'s keepalive:'}


def main():
    parser = argparse.ArgumentParser(prog='recovery-bench',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--json', metavar='FILE')
    parser.add_argument('--outage', type=float, action='append',
                        metavar='S', help='outage seconds, repeatable '
                        '(default: --runs of them from 2 to 20 s)')
    parser.add_argument('--postcopy-mibs', type=int, default=4,
                        metavar='MIBS', help='post-copy background cap '
                        '(default 4: post-copy lasts long enough to cut it '
                        'anywhere; 16: what is left after the cut moves in '
                        'seconds, so cut to completion shows recovery)')
    parser.add_argument('--only', choices=SETS, action='append',
                        help='run this set only, repeatable')
    args = parser.parse_args()
    if args.runs < 1:
        parser.error('--runs must be at least 1')
    tcp_retries2(3)
    results = {label: [] for label in SETS}
    try:
        with tempfile.TemporaryDirectory() as workdir:
            for label in SETS:
                if args.only and label not in args.only:
                    continue
                for outage in args.outage or outages(args.runs):
                    result = one_run(outage, label != 'baseline', workdir,
                                     keepalive=label == 'keepalive',
                                     postcopy_mibs=args.postcopy_mibs)
                    results[label].append(result)
                    print('%-10s outage %4.1f s: %s%s, %s' % (
                        label, outage,
                        result['result'],
                        ' (%s, %d attempts)' % (result['recovery'],
                                                result['attempts'])
                        if result['recovery'] else '',
                        'healthy on B %.1f s after the cut (moving again '
                        'after %s s%s%s)' % (
                            result['cut_to_end_s'],
                            result['cut_to_moving_s'],
                            '; paused the %s' % ' and '.join(
                                result['paused_other_half'])
                            if result['paused_other_half'] else '',
                            '; destination noticed %s s after the source'
                            % result['destination_late_s']
                            if result['destination_late_s'] is not None
                            else '')
                        if result['survived'] else
                        'NOT healthy on B: %s' % result['health']),
                        flush=True)
    finally:
        tcp_retries2(15)
        lab('link', 'A', 'up')
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(results, handle, indent=1)
    for label in SETS:
        if results[label]:
            print(summary(TITLES[label], results[label]))
    recovered = results['recovery'] + results['keepalive']
    alive = sum(r['survived'] for r in recovered)
    print('survived %d/%d' % (alive, len(recovered)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
