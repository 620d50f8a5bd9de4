# SPDX-License-Identifier: Apache-2.0
"""A switch to post-copy with nothing of nova-postcopy in the path.

To tell the stack's faults from ours, this drives one migration with plain
libvirt-python calls, the ones any libvirt user makes: ``migrateToURI3``
with LIVE|PEER2PEER|POSTCOPY and the bandwidth parameter in a thread, then
``migrateStartPostCopy`` at a chosen moment, then the guest's health where
it ends (``labctl.check``). Every jobStats sample taken meanwhile is kept,
so that the moment of the switch can be placed against QEMU's passes.

    bare_switch.py NAME --switch-at 19.4 [--ram-mib 512 --wss-mib 256
        --dirty-mibs 64 --bandwidth-mibs 16] [--json]
"""

import argparse
import sys
import threading
import time

import libvirt

import lab_hosts
import labctl
import repro

FLAGS = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
         | libvirt.VIR_MIGRATE_POSTCOPY)
MIB = 1024 * 1024


def sample(dom, t0):
    try:
        stats = dom.jobStats()
    except libvirt.libvirtError:
        return None
    return {'t': round(time.monotonic() - t0, 3),
            'iteration': stats.get('memory_iteration'),
            'remaining_mib': round(stats.get('data_remaining', 0) / MIB, 1),
            'processed_mib': round(stats.get('memory_processed', 0) / MIB, 1),
            'dirty_rate_pps': stats.get('memory_dirty_rate'),
            'postcopy_requests': stats.get('memory_postcopy_requests')}


def migrate_once(args):
    labctl.main(['guest', args.name, '--ram-mib', str(args.ram_mib),
                 '--wss-mib', str(args.wss_mib),
                 '--dirty-mibs', str(args.dirty_mibs)])
    time.sleep(args.settle)
    conn = labctl.connect('A')
    dom = conn.lookupByName(args.name)
    params = {libvirt.VIR_MIGRATE_PARAM_URI: lab_hosts.migrate_uri('B')}
    if args.bandwidth_mibs:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = args.bandwidth_mibs
    if args.postcopy_bandwidth_mibs:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY] = (
            args.postcopy_bandwidth_mibs)
    result = {}

    def run():
        try:
            dom.migrateToURI3(lab_hosts.libvirt_uri('B'), params, FLAGS)
            result['error'] = None
        except libvirt.libvirtError as error:
            result['error'] = error.get_error_message()

    t0 = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    samples, switched = [], None
    while thread.is_alive():
        now = time.monotonic() - t0
        point = sample(dom, t0)
        if point:
            samples.append(point)
        if switched is None and now >= args.switch_at:
            try:
                dom.migrateStartPostCopy(0)
                switched = {'t': round(time.monotonic() - t0, 3),
                            'before': point}
            except libvirt.libvirtError as error:
                switched = {'error': error.get_error_message()}
        thread.join(args.poll)
    time.sleep(args.after)
    health = labctl.check(args.name)
    labctl.cmd_destroy(argparse.Namespace(name=args.name))
    conn.close()
    lost = not health['healthy']
    return {'switched': switched, 'error': result.get('error'),
            'took_s': round(time.monotonic() - t0, 1), 'health': health,
            'lost': bool(lost), 'samples': samples}


def main(argv=None):
    parser = argparse.ArgumentParser(prog='bare_switch')
    parser.add_argument('name')
    parser.add_argument('--switch-at', type=float, required=True,
                        help='seconds after migrateToURI3 is called')
    repro.add_shape_arguments(parser)
    parser.add_argument('--after', type=float, default=6.0)
    args = parser.parse_args(argv)
    return repro.report(migrate_once(args), args.json)


if __name__ == '__main__':
    sys.exit(main())
