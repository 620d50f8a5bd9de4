# SPDX-License-Identifier: Apache-2.0
"""The lab's guest commands, over libvirt-python: guest, check, destroy.

Called by ``tools/lab/lab``; ``NOVA_POSTCOPY_LAB`` names the lab directory.
A guest's serial console is a file per host (``hosts/X/log/qemu/``), so the
progress lines of its dirtier tell where it runs and whether its memory is
intact.
"""

import argparse
import contextlib
import json
import os
import re
import sys
import time

import libvirt

LAB = os.environ.get('NOVA_POSTCOPY_LAB', '/var/tmp/nova-postcopy-lab')
HOSTS = ('A', 'B')
PROGRESS = re.compile(r'DIRTIER seq=(\d+) .*errors=(\d+)')
PANIC = re.compile(r'Kernel panic|BUG: (?!soft lockup)|Oops:|'
                   r'general protection fault')
RUNNING = libvirt.VIR_DOMAIN_RUNNING
# A machine type both suites' QEMUs know (10.0 and 11.1), so that a guest
# can migrate between them either way: 'pc' would resolve to the newest
# type of the QEMU that starts it, which an older destination refuses.
MACHINE = 'pc-i440fx-10.0'
# How long a guest that just arrived may take to print its first line.
FIRST_LINE_S = 10.0
libvirt.registerErrorHandler(lambda context, error: None, None)

DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{ram_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
    <kernel>{lab}/guest/vmlinuz</kernel>
    <initrd>{lab}/guest/initramfs.cpio.gz</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'>
      <source path='/var/log/libvirt/qemu/{name}-serial.log' append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def uri(host):
    return ('qemu+unix:///system?socket=%s/hosts/%s/run/libvirt-sock'
            % (LAB, host))


def connect(host):
    return libvirt.open(uri(host))


def serial_log(host, name):
    return os.path.join(LAB, 'hosts', host, 'log', 'qemu',
                        '%s-serial.log' % name)


def nova_console(host, name):
    """The console log Nova gave the guest (``<serial><log file=...>``).

    Nova keeps it in the instance's directory, which the lab's hosts share,
    so both QEMUs write the same file (the destination truncates it when it
    opens it): progress is read by its counter, not by its place.
    """
    conn = connect(host)
    try:
        xml = conn.lookupByName(name).XMLDesc(0)
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()
    found = re.search(r"<serial[^>]*>.*?<log file='([^']+)'", xml, re.S)
    return found.group(1) if found else None


def console_file(host, name):
    lab_log = serial_log(host, name)
    if os.path.exists(lab_log):
        return lab_log
    return nova_console(host, name) or lab_log


def read_console(host, name, file_path=None):
    try:
        with open(file_path or console_file(host, name),
                  errors='replace') as handle:
            return handle.read().replace('\x00', '')
    except FileNotFoundError:
        return ''


def last_progress(text):
    """(highest counter, highest error count) the dirtier printed."""
    found = PROGRESS.findall(text)
    if not found:
        return None, 0
    return max(int(seq) for seq, _ in found), max(int(e) for _, e in found)


def where(name):
    """(host, state, reason) of the running copy, else (None, ...)."""
    states = {}
    for host in HOSTS:
        conn = connect(host)
        try:
            dom = conn.lookupByName(name)
            states[host] = tuple(dom.state())
        except libvirt.libvirtError:
            states[host] = None
        finally:
            conn.close()
    for host in HOSTS:
        if states[host] and states[host][0] == RUNNING:
            return host, states
    return None, states


def cmd_guest(args):
    conn = connect('A')
    try:
        try:
            conn.lookupByName(args.name)
            sys.exit('lab: guest %r exists already; lab destroy %s first'
                     % (args.name, args.name))
        except libvirt.libvirtError:
            pass
        for host in HOSTS:
            if os.path.exists(serial_log(host, args.name)):
                os.unlink(serial_log(host, args.name))
        cmdline = ('console=ttyS0 quiet panic=-1 dirty_mb=%d dirty_rate=%d '
                   'dirty_pattern=%s' % (args.wss_mib, args.dirty_mibs,
                                         args.pattern))
        conn.createXML(DOMAIN_XML.format(
            name=args.name, ram_mib=args.ram_mib, cmdline=cmdline,
            machine=args.machine, lab=LAB), 0)
    finally:
        conn.close()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        seq, _ = last_progress(read_console('A', args.name))
        if seq is not None:
            print('lab: guest %s runs on host A (ram %d MiB, working set '
                  '%d MiB, %s MiB/s, %s)' % (
                      args.name, args.ram_mib, args.wss_mib,
                      args.dirty_mibs or 'unthrottled', args.pattern))
            return 0
        time.sleep(0.5)
    sys.exit('lab: guest %s printed no progress within %d s; see %s'
             % (args.name, args.timeout, serial_log('A', args.name)))


def check(name, wait_s=3.0):
    host, states = where(name)
    report = {'name': name, 'host': host, 'running': host is not None,
              'states': {h: list(s) if s else None
                         for h, s in states.items()}}
    files = {h: console_file(h, name) for h in HOSTS}
    texts = {h: read_console(h, name, files[h]) for h in HOSTS}
    before = last_progress(texts[host])[0] if host else None
    if host:
        # A guest that just arrived may not have printed on its new host
        # yet: wait for its first line there before timing the counter.
        deadline = time.monotonic() + FIRST_LINE_S
        while before is None and time.monotonic() < deadline:
            time.sleep(0.2)
            before = last_progress(read_console(host, name, files[host]))[0]
        time.sleep(wait_s)
        texts[host] = read_console(host, name, files[host])
    after, errors = last_progress(texts[host]) if host else (None, 0)
    # One text per file: Nova's guests have one console for both hosts.
    combined = ''.join({files[h]: texts[h] for h in HOSTS}.values())
    corruption = combined.count('DIRTIER CORRUPTION')
    report.update({
        'seq': after,
        'counter_advanced': (before is not None and after is not None
                             and after > before),
        'memory_errors': max(errors, corruption),
        'panic': bool(PANIC.search(combined)),
        # The dirtier announces itself once per boot: twice is a reset.
        'reset': combined.count('DIRTIER start') > 1,
        'soft_lockup': 'soft lockup' in combined,
    })
    report['healthy'] = healthy(report)
    return report


def healthy(report):
    """The one verdict every lab tool gives a guest where it ended.

    Running, its counter advancing, no memory errors, no panic and no reset:
    a guest that rebooted runs and counts again, but it lost its memory.
    """
    return bool(report['running'] and report['counter_advanced']
                and not report['memory_errors'] and not report['panic']
                and not report['reset'])


def cmd_check(args):
    print(json.dumps(check(args.name, args.wait), sort_keys=True))
    return 0


def cmd_destroy(args):
    for host in HOSTS:
        conn = connect(host)
        try:
            conn.lookupByName(args.name).destroy()
        except libvirt.libvirtError:
            pass
        finally:
            conn.close()
    return 0


def cmd_status(args):
    for host in HOSTS:
        conn = connect(host)
        try:
            print('host %s: libvirt %s, QEMU %s, guests: %s' % (
                host, _version(conn.getLibVersion()),
                _version(conn.getVersion()),
                ', '.join('%s %s' % (d.name(), d.state())
                          for d in conn.listAllDomains()) or 'none'))
        finally:
            conn.close()
    return 0


def versions(host):
    """(libvirt, QEMU) of a host, as the lab prints them."""
    conn = connect(host)
    try:
        return _version(conn.getLibVersion()), _version(conn.getVersion())
    finally:
        conn.close()


@contextlib.contextmanager
def shaped_guest(name, shape):
    """A fresh guest on host A, gone from both hosts afterwards.

    ``shape`` holds the probes' guest arguments (``repro``): the guest
    dirties for ``shape.settle`` seconds before it is handed over.
    """
    main(['guest', name, '--ram-mib', str(shape.ram_mib),
          '--wss-mib', str(shape.wss_mib),
          '--dirty-mibs', str(shape.dirty_mibs)])
    try:
        time.sleep(shape.settle)
        yield name
    finally:
        cmd_destroy(argparse.Namespace(name=name))


def _version(number):
    return '%d.%d.%d' % (number // 1000000, number // 1000 % 1000,
                         number % 1000)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='lab')
    sub = parser.add_subparsers(dest='command', required=True)
    guest = sub.add_parser('guest')
    guest.add_argument('name')
    guest.add_argument('--ram-mib', type=int, default=512)
    guest.add_argument('--wss-mib', type=int, default=128)
    guest.add_argument('--dirty-mibs', type=int, default=0)
    guest.add_argument('--timeout', type=int, default=60)
    guest.add_argument('--machine', default=MACHINE)
    guest.add_argument('--pattern', choices=('sequential', 'random'),
                       default='sequential',
                       help='the order the dirtier writes its pages in')
    guest.set_defaults(func=cmd_guest)
    check_ = sub.add_parser('check')
    check_.add_argument('name')
    check_.add_argument('--wait', type=float, default=3.0)
    check_.set_defaults(func=cmd_check)
    destroy = sub.add_parser('destroy')
    destroy.add_argument('name')
    destroy.set_defaults(func=cmd_destroy)
    sub.add_parser('status').set_defaults(func=cmd_status)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
