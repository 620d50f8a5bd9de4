# SPDX-License-Identifier: Apache-2.0
"""One migration between the lab's hosts with QEMU alone, over QMP.

libvirt turns on capabilities by itself (postcopy-preempt whenever both
QEMUs have it, return-path, switchover-ack) and offers no way to keep one
off. To vary one QEMU factor at a time, this starts the lab guest's QEMU
directly in each host's network namespace, chrooted into that host's root
filesystem (the same binaries libvirt runs), sets the capabilities asked
for, migrates over the veth and, if asked, switches to post-copy at a
chosen moment. It reads QEMU's own counters while it runs
(``dirty-sync-count``: how often the dirty bitmap was synced) and checks
the guest where it ends: its QEMU alive, the dirtier's counter advancing,
no memory errors, no panic.

    qmp_switch.py --suite forky --caps postcopy-ram,postcopy-preempt \\
        --switch-at 19.4 [--ram-mib 512 --wss-mib 256 --dirty-mibs 64
        --bandwidth-mibs 16] [--json FILE]

Without ``--switch-at`` the migration is left to converge by pre-copy
(with ``postcopy-ram`` on, that is what a migration that never needed the
switch does). Runs next to the libvirt lab (``lab up``), on ports 49400+.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time

import lab_hosts
import repro

LAB = os.environ.get('NOVA_POSTCOPY_LAB', '/var/tmp/nova-postcopy-lab')
PROGRESS = re.compile(r'DIRTIER seq=(\d+) .*errors=(\d+)')
PANIC = re.compile(r'Kernel panic|BUG: (?!soft lockup)|Oops:|'
                   r'general protection fault')
MIB = 1024 * 1024


class QMP:
    """A blocking QMP client: one command at a time, events kept."""

    def __init__(self, path, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.file = self.sock.makefile('rw')
        self.events = []
        json.loads(self.file.readline())  # greeting
        self.cmd('qmp_capabilities')

    def cmd(self, name, **arguments):
        message = {'execute': name}
        if arguments:
            message['arguments'] = arguments
        self.file.write(json.dumps(message) + '\n')
        self.file.flush()
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError('QEMU closed its monitor during %s' % name)
            reply = json.loads(line)
            if 'event' in reply:
                self.events.append(reply)
                continue
            if 'error' in reply:
                raise RuntimeError('%s: %s' % (name, reply['error']['desc']))
            return reply['return']

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def start_qemu(host, suite, run_dir, args, incoming):
    """QEMU for the lab guest in host's namespace, chrooted to its rootfs."""
    root = os.path.join(LAB, 'rootfs', suite)
    inner = '/var/tmp/qmp-lab/%s' % host
    outer = root + inner
    os.makedirs(outer, exist_ok=True)
    for name in ('qmp.sock', 'serial.log'):
        if os.path.exists(os.path.join(outer, name)):
            os.unlink(os.path.join(outer, name))
    cmdline = ('console=ttyS0 quiet panic=-1 dirty_mb=%d dirty_rate=%d '
               'dirty_pattern=%s' % (args.wss_mib, args.dirty_mibs,
                                     args.pattern))
    qemu = ['/usr/bin/qemu-system-x86_64', '-machine', args.machine,
            '-accel', args.accel,
            '-cpu', 'qemu64', '-m', str(args.ram_mib), '-smp', '1',
            '-nodefaults', '-no-user-config', '-display', 'none',
            '-no-reboot', '-kernel', LAB + '/guest/vmlinuz',
            '-initrd', LAB + '/guest/initramfs.cpio.gz', '-append', cmdline,
            '-serial', 'file:%s/serial.log' % inner,
            '-qmp', 'unix:%s/qmp.sock,server=on,wait=off' % inner]
    if incoming:
        qemu += ['-incoming', 'defer']
    script = ('set -e; mount --rbind /dev "$1/dev"; '
              'mount -t proc proc "$1/proc"; '
              'mount --bind "$2" "$1$2"; shift 2; exec chroot "$ROOT" "$@"')
    log = open(os.path.join(run_dir, 'qemu-%s.log' % host), 'w')
    process = subprocess.Popen(
        ['ip', 'netns', 'exec', 'host' + host, 'unshare', '--mount',
         '--propagation', 'private', 'sh', '-c', script, 'sh', root,
         LAB + '/guest'] + qemu,
        env=dict(os.environ, ROOT=root), stdout=log, stderr=log,
        stdin=subprocess.DEVNULL)
    return process, outer


def console(outer):
    try:
        with open(os.path.join(outer, 'serial.log'), errors='replace') as f:
            return f.read()
    except FileNotFoundError:
        return ''


def progress(text):
    found = PROGRESS.findall(text)
    return (int(found[-1][0]), int(found[-1][1])) if found else (None, 0)


def wait_ready(outer, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if progress(console(outer))[0] is not None:
            return
        time.sleep(0.5)
    raise RuntimeError('the guest printed no progress within %d s' % timeout)


def health(process, outer, wait_s=4.0, first_line_s=10.0):
    # A guest that just arrived may not have printed on this host yet:
    # wait for its first line there, then for the counter to move.
    deadline = time.monotonic() + first_line_s
    before = progress(console(outer))[0]
    while before is None and time.monotonic() < deadline:
        time.sleep(0.2)
        before = progress(console(outer))[0]
    time.sleep(wait_s)
    text = console(outer)
    after, errors = progress(text)
    alive = process.poll() is None
    report = {'alive': alive, 'seq': after,
              'counter_advanced': (before is not None and after is not None
                                   and after > before),
              'memory_errors': max(errors, text.count('DIRTIER CORRUPTION')),
              'panic': bool(PANIC.search(text)),
              'reset': 'Linux version' in text.split('DIRTIER ready')[-1]}
    report['healthy'] = (alive and report['counter_advanced']
                         and not report['memory_errors']
                         and not report['panic'] and not report['reset'])
    if not report['healthy']:
        report['console_tail'] = text.splitlines()[-40:]
        if alive and not report['counter_advanced']:
            # Stalled or dead? Some stalls end: give it 30 s more.
            time.sleep(30)
            later = progress(console(outer))[0]
            report['resumed_within_30s'] = (later is not None
                                            and later > (after or -1))
    return report


def migrate(args, run_dir):
    caps = [c for c in args.caps.split(',') if c]
    src, src_dir = start_qemu('A', args.suite_a, run_dir, args, False)
    dst, dst_dir = start_qemu('B', args.suite_b, run_dir, args, True)
    qa = qb = None
    try:
        qa = QMP(os.path.join(src_dir, 'qmp.sock'))
        qb = QMP(os.path.join(dst_dir, 'qmp.sock'))
        wait_ready(src_dir)
        time.sleep(args.settle)
        capabilities = [{'capability': c, 'state': True} for c in caps]
        for monitor in (qa, qb):
            monitor.cmd('migrate-set-capabilities',
                        capabilities=capabilities)
        parameters = {'max-bandwidth': args.bandwidth_mibs * MIB
                      if args.bandwidth_mibs else 0,
                      'downtime-limit': args.downtime_ms}
        if 'postcopy-ram' in caps and args.postcopy_bandwidth_mibs:
            parameters['max-postcopy-bandwidth'] = (
                args.postcopy_bandwidth_mibs * MIB)
        if not args.bandwidth_mibs:
            parameters['max-bandwidth'] = 10 * 1024 * MIB
        qa.cmd('migrate-set-parameters', **parameters)
        uri = 'tcp:%s:%d' % (lab_hosts.ADDR['B'], args.port)
        qb.cmd('migrate-incoming', uri=uri)
        t0 = time.monotonic()
        qa.cmd('migrate', uri=uri)
        samples, switched, status = [], None, 'setup'
        while time.monotonic() - t0 < args.timeout:
            info = qa.cmd('query-migrate')
            status = info.get('status')
            ram = info.get('ram', {})
            samples.append({
                't': round(time.monotonic() - t0, 3), 'status': status,
                'syncs': ram.get('dirty-sync-count'),
                'remaining_mib': round(ram.get('remaining', 0) / MIB, 1),
                'transferred_mib': round(ram.get('transferred', 0) / MIB,
                                         1)})
            if status in ('completed', 'failed', 'cancelled'):
                break
            if (switched is None and args.switch_at is not None
                    and time.monotonic() - t0 >= args.switch_at):
                qa.cmd('migrate-start-postcopy')
                switched = {'t': round(time.monotonic() - t0, 3),
                            'syncs': samples[-1]['syncs'],
                            'remaining_mib': samples[-1]['remaining_mib']}
            time.sleep(args.poll)
        took = round(time.monotonic() - t0, 2)
        if status == 'completed' or (status or '').startswith('postcopy'):
            # In post-copy the guest runs on B whatever the source says.
            verdict = {'where': 'B', **health(dst, dst_dir)}
            try:
                verdict['dest_status'] = qb.cmd('query-status')['status']
            except (OSError, EOFError, RuntimeError) as error:
                verdict['dest_status'] = 'no answer: %s' % error
        else:
            qa.cmd('migrate_cancel')
            verdict = {'where': 'A', **health(src, src_dir)}
        syncs = [s['syncs'] for s in samples if s['syncs'] is not None]
        return {'suite_a': args.suite_a, 'suite_b': args.suite_b,
                'caps': caps, 'status': status, 'took_s': took,
                'switched': switched, 'syncs': max(syncs) if syncs else 0,
                'lost': not verdict['healthy'], 'guest': verdict,
                'samples': samples}
    finally:
        for monitor in (qa, qb):
            if monitor:
                monitor.close()
        for process in (src, dst):
            if process.poll() is None:
                process.kill()
            process.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(prog='qmp_switch')
    parser.add_argument('--suite', help='both hosts (forky or trixie)')
    parser.add_argument('--suite-a', default='forky')
    parser.add_argument('--suite-b', default='forky')
    parser.add_argument('--caps', default='postcopy-ram,postcopy-preempt',
                        help='migration capabilities on both QEMUs')
    parser.add_argument('--switch-at', type=float,
                        help='seconds after migrate; none: let it converge')
    repro.add_shape_arguments(parser)
    parser.add_argument('--machine', default='pc-i440fx-10.0')
    parser.add_argument('--pattern', choices=('sequential', 'random'),
                        default='sequential')
    parser.add_argument('--accel', default='tcg',
                        help='e.g. tcg,thread=single to rule out MTTCG')
    parser.add_argument('--downtime-ms', type=int, default=300)
    parser.add_argument('--timeout', type=float, default=120.0)
    parser.add_argument('--port', type=int, default=49400)
    args = parser.parse_args(argv)
    if args.suite:
        args.suite_a = args.suite_b = args.suite
    run_dir = os.path.join(LAB, 'qmp-runs')
    os.makedirs(run_dir, exist_ok=True)
    return repro.report(migrate(args, run_dir), args.json)


if __name__ == '__main__':
    sys.exit(main())
