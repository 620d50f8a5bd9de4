# SPDX-License-Identifier: Apache-2.0
"""How often the lab's QEMU syncs its dirty bitmap, with and without post-copy.

The simulator models two behaviours (``sync=pass``: once per pass;
``sync=frequent``: many times a second during the first pass) and the
bench must say which QEMU it models. Which QEMU does which is measured
here, not read from QEMU's source: one pre-copy per setting, with
``VIR_MIGRATE_POSTCOPY`` off and on, plain libvirt-python calls, jobStats
every 0.1 s for ``--watch`` seconds of the first pass; then the job is
aborted (pre-copy: the guest stays on the source) and the guest's health is
checked there; both runs migrate the same guest. A sync shows as
``memory_iteration`` going up; the first pass of this shape lasts longer
than the watch (RAM over the cap), so "pass" syncs show none in it.

    sync_probe.py [--watch 6] [--json FILE]    # on the lab's current hosts
"""

import argparse
import json
import sys
import threading
import time

import libvirt

import lab_hosts
import labctl
import repro

BASE_FLAGS = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
MIB = 1024 * 1024


def probe(args, name, postcopy):
    conn = labctl.connect('A')
    dom = conn.lookupByName(name)
    flags = BASE_FLAGS | (libvirt.VIR_MIGRATE_POSTCOPY if postcopy else 0)
    params = {libvirt.VIR_MIGRATE_PARAM_URI: lab_hosts.migrate_uri('B'),
              libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: args.bandwidth_mibs}

    def run():
        try:
            dom.migrateToURI3(lab_hosts.libvirt_uri('B'), params, flags)
        except libvirt.libvirtError:
            pass  # aborted, as meant; a completed one fails the health check

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    t0 = time.monotonic()
    iterations, moving_at, figures = [], None, []
    while time.monotonic() - t0 < args.watch + 30 and thread.is_alive():
        try:
            stats = dom.jobStats()
        except libvirt.libvirtError:
            stats = {}
        processed = stats.get('memory_processed', 0)
        if moving_at is None and processed:
            moving_at = time.monotonic()
        if moving_at is not None:
            if time.monotonic() - moving_at > args.watch:
                break
            iterations.append(stats.get('memory_iteration', 0))
            figures.append((time.monotonic(), stats.get('data_remaining', 0),
                            processed, stats.get('memory_dirty_rate', 0),
                            stats.get('memory_page_size', 4096)))
        time.sleep(args.poll)
    # From a second connection: on the migrating one, without an event
    # loop, abortJob waited for migrateToURI3 to return (12 min on forky).
    aborter = labctl.connect('A')
    try:
        aborter.lookupByName(name).abortJob()
    except libvirt.libvirtError:
        pass
    finally:
        aborter.close()
    thread.join(60)
    conn.close()
    health = labctl.check(name)
    syncs = sum(1 for a, b in zip(iterations, iterations[1:]) if b > a)
    # What data_remaining does meanwhile: it falls at the sending rate when
    # it is the bitmap alone, and slower when re-syncs add the dirty log.
    (t_a, left_a, sent_a, _, _), (t_b, left_b, sent_b, dirty, page) = (
        figures[0], figures[-1])
    span = max(t_b - t_a, 1e-3)
    healthy = health['host'] == 'A' and health['healthy']
    return {'postcopy': postcopy, 'watched_s': args.watch,
            'samples': len(iterations), 'syncs': syncs,
            'last_iteration': iterations[-1] if iterations else None,
            'mode': 'frequent' if syncs >= args.watch else 'pass',
            'sent_mibs': round((sent_b - sent_a) / span / MIB, 1),
            'remaining_fall_mibs': round((left_a - left_b) / span / MIB, 1),
            'dirty_rate_mibs': round(dirty * page / MIB, 1),
            'healthy_on_source': healthy, 'health': health}


def main(argv=None):
    parser = argparse.ArgumentParser(prog='sync_probe')
    repro.add_shape_arguments(parser)
    parser.add_argument('--watch', type=float, default=6.0)
    args = parser.parse_args(argv)
    versions = dict(zip(('libvirt', 'qemu'), labctl.versions('A')))
    # One guest for both: an aborted pre-copy leaves it running on A.
    with labctl.shaped_guest('syncprobe', args) as name:
        runs = [probe(args, name, postcopy) for postcopy in (False, True)]
    result = {'host_a': versions, 'shape': {
        'ram_mib': args.ram_mib, 'wss_mib': args.wss_mib,
        'dirty_mibs': args.dirty_mibs, 'bandwidth_mibs': args.bandwidth_mibs},
        'runs': runs}
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(result, handle, indent=1)
    print('host A: libvirt %(libvirt)s, QEMU %(qemu)s' % versions)
    for run in runs:
        print('post-copy %-3s: %d syncs in %.0f s of the first pass -> %s; '
              'sent %.1f MiB/s, data_remaining fell %.1f MiB/s, '
              'memory_dirty_rate %.1f MiB/s; guest healthy on the source: %s'
              % ('on' if run['postcopy'] else 'off', run['syncs'],
                 run['watched_s'], run['mode'], run['sent_mibs'],
                 run['remaining_fall_mibs'], run['dirty_rate_mibs'],
                 run['healthy_on_source']))
    return 0 if all(run['healthy_on_source'] for run in runs) else 1


if __name__ == '__main__':
    sys.exit(main())
