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
every 0.1 s; prints when virsh switched against the iteration counter and
the data left; and checks the guest's health where it ended (exit 1 if it
was lost).

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

import labctl
import repro

ADDR = {'A': '10.250.0.1', 'B': '10.250.0.2'}
MIB = 1024 * 1024


def virsh_migrate(name, bandwidth_mibs):
    suite_file = os.path.join(labctl.LAB, 'hosts', 'A', 'suite')
    with open(suite_file) as handle:
        suite = handle.read().strip()
    root = os.path.join(labctl.LAB, 'rootfs', suite)
    # -d 0 prints virsh's own "iteration %d finished; switching" line.
    return ['ip', 'netns', 'exec', 'hostA', 'chroot', root, 'virsh', '-d',
            '0', '-c', 'qemu+tcp://%s/system' % ADDR['A'], 'migrate',
            '--live', '--p2p', '--postcopy', '--postcopy-after-precopy',
            '--bandwidth', str(bandwidth_mibs), '--migrateuri',
            'tcp://%s' % ADDR['B'], name,
            'qemu+tcp://%s/system' % ADDR['B']]


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

    threading.Thread(target=read, daemon=True).start()
    samples = []
    while virsh.poll() is None:
        try:
            stats, state = dom.jobStats(), dom.state()
        except libvirt.libvirtError:
            break  # the domain left host A
        samples.append({
            'job_s': stats.get('time_elapsed', 0) / 1000.0,
            'iteration': stats.get('memory_iteration', 0),
            'remaining_mib': round(stats.get('memory_remaining', 0) / MIB, 1),
            'postcopy': state == [libvirt.VIR_DOMAIN_PAUSED,
                                  libvirt.VIR_DOMAIN_PAUSED_POSTCOPY]})
        time.sleep(args.poll)
    virsh.wait()
    conn.close()
    moving = [s for s in samples if s['iteration'] >= 1]
    switched = next((s for s in samples if s['postcopy']), None)
    health = labctl.check(name)
    return {
        'virsh_rc': virsh.returncode,
        'virsh_said': [line for line in said
                       if 'switching to post-copy' in line[1]
                       or 'error' in line[1].lower()],
        'first_data_s': moving[0]['job_s'] if moving else None,
        'first_pass_mib': moving[0]['remaining_mib'] if moving else None,
        'switched_s': switched['job_s'] if switched else None,
        'iteration_at_switch': switched['iteration'] if switched else None,
        'remaining_at_switch_mib': (switched['remaining_mib'] if switched
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
