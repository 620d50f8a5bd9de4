# SPDX-License-Identifier: Apache-2.0
"""When virsh's ``--postcopy-after-precopy`` switches, on the lab's hosts.

The bench's ``virsh_first_pass`` anchor models virsh's rule: post-copy
once libvirt's migration-iteration event says 2 (``virshMigrateIteration``
in tools/virsh-domain.c). That is the end of the first pass only where
QEMU syncs once a pass; QEMU 11.1 re-syncs about ten times a second once
post-copy is enabled (``sync_probe.py``), and there the rule comes to
post-copy from the start: the yardstick the bench's ``vs-1st`` target is
measured against. This runs the suite's own virsh, inside host A's network
namespace and root filesystem, on a fresh guest; polls the job from here
every 0.1 s; prints when virsh said it switched against the iteration
counter and the data left; and checks the guest's health where it ended
(exit 1 if it was lost).

    virsh_probe.py [--ram-mib 512 --wss-mib 256 --dirty-mibs 64
                    --bandwidth-mibs 16] [--json FILE]
"""

import argparse
import os
import subprocess
import sys
import threading
import time

import libvirt

import lab_hosts
import labctl
import repro

MIB = 1024 * 1024


def virsh_migrate(name, bandwidth_mibs):
    suite_file = os.path.join(labctl.LAB, 'hosts', 'A', 'suite')
    with open(suite_file) as handle:
        suite = handle.read().strip()
    root = os.path.join(labctl.LAB, 'rootfs', suite)
    # -d 0 prints virsh's own "iteration %d finished; switching" line.
    return ['ip', 'netns', 'exec', 'hostA', 'chroot', root, 'virsh', '-d',
            '0', '-c', lab_hosts.libvirt_uri('A'), 'migrate',
            '--live', '--p2p', '--postcopy', '--postcopy-after-precopy',
            '--bandwidth', str(bandwidth_mibs), '--migrateuri',
            lab_hosts.migrate_uri('B'), name,
            lab_hosts.libvirt_uri('B')]


def probe(args, name):
    conn = labctl.connect('A')
    dom = conn.lookupByName(name)
    started = time.monotonic()
    virsh = subprocess.Popen(virsh_migrate(name, args.bandwidth_mibs),
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    said = []

    def read():
        for line in virsh.stdout:
            said.append((round(time.monotonic() - started, 2),
                         line.rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # Times from virsh's start, for the job's figures and virsh's words
    # alike: a post-copy of a small guest can end between two polls, so
    # the switch is when virsh said it switched, not a paused state seen.
    samples = []
    while virsh.poll() is None:
        try:
            stats = dom.jobStats()
        except libvirt.libvirtError:
            break  # the domain left host A
        samples.append({
            't': round(time.monotonic() - started, 2),
            'iteration': stats.get('memory_iteration', 0),
            'remaining_mib': round(stats.get('memory_remaining', 0) / MIB, 1)})
        time.sleep(args.poll)
    virsh.wait()
    reader.join(10)
    conn.close()
    moving = [s for s in samples if s['iteration'] >= 1]
    switched_s = next((t for t, line in said
                       if 'switching to post-copy' in line), None)
    # The data left then, as near as the polls tell: the last poll before
    # the switch that saw data moving, or the first one after it.
    before = [s for s in moving
              if switched_s is not None and s['t'] <= switched_s]
    before = before or moving[:1]
    health = labctl.check(name)
    return {
        'virsh_rc': virsh.returncode,
        'virsh_said': [line for line in said
                       if 'switching to post-copy' in line[1]
                       or 'error' in line[1].lower()],
        'first_data_s': moving[0]['t'] if moving else None,
        'first_pass_mib': moving[0]['remaining_mib'] if moving else None,
        'switched_s': switched_s,
        'iteration_at_switch': before[-1]['iteration'] if before else None,
        'remaining_at_switch_mib': (before[-1]['remaining_mib'] if before
                                    else None),
        'health': health,
        'lost': not labctl.healthy(health),
        'samples': samples}


def main(argv=None):
    parser = argparse.ArgumentParser(prog='virsh_probe')
    repro.add_shape_arguments(parser)
    args = parser.parse_args(argv)
    versions = 'libvirt %s, QEMU %s' % labctl.versions('A')
    with labctl.shaped_guest('virshprobe', args) as name:
        run = probe(args, name)
    run['host_a'] = versions
    print('host A: %s; virsh said %s' % (versions, run['virsh_said']))
    return repro.report(run, args.json)


if __name__ == '__main__':
    sys.exit(main())
