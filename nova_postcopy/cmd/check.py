# SPDX-License-Identifier: Apache-2.0
"""``nova-postcopy-check``: is this host ready for post-copy live migration?

Checks the kernel and the QEMU user's access to userfaultfd on this host,
and asks libvirt and an incoming QEMU (started paused, destroyed at once)
whether post-copy and its recovery work. With ``--uri`` only the libvirt
side of that host is checked. Exit status: 0 ready, 1 not ready, 2 usage
error.
"""

import argparse
import dataclasses
import json
import sys

from nova_postcopy import capabilities
from nova_postcopy import libvirt_api
from nova_postcopy import probe


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='nova-postcopy-check',
                                     description=__doc__.split('\n\n')[1])
    parser.add_argument('--uri', help='libvirt URI of the host to check '
                        '(default: this host, qemu:///system)')
    parser.add_argument('--no-trial', action='store_true',
                        help='do not start an incoming QEMU to ask it')
    parser.add_argument('--json', action='store_true',
                        help='print the checks as JSON')
    parser.add_argument('--virt-type', choices=('kvm', 'qemu'),
                        help="what guests run under on that host, as "
                        "nova.conf's [libvirt] virt_type (qemu: TCG, "
                        "software emulation); default: kvm where libvirt "
                        "offers it, else qemu")
    parser.add_argument(
        '--udev-rule', action='store_true',
        help='print the udev rule that opens /dev/userfaultfd to the group '
        'QEMU runs as on this host (and to nobody else), for '
        '/etc/udev/rules.d/; checks nothing')
    parser.add_argument(
        '--qemu-group', metavar='GROUP',
        help='with --udev-rule: the group QEMU runs as, where this host '
        'cannot tell (libvirt in a container); default: qemu.conf\'s '
        '"group", else its "user"\'s own group')
    parser.add_argument(
        '--apparmor-rule', action='store_true',
        help='where AppArmor keeps libvirt\'s QEMU from opening '
        '/dev/userfaultfd on this host, print the file and the line (tab '
        'between) that let it; print nothing where it does not; checks '
        'nothing else')
    args = parser.parse_args(argv)
    if (args.udev_rule or args.apparmor_rule) and args.uri:
        parser.error('--udev-rule and --apparmor-rule are about this host; '
                     'drop --uri')
    if args.udev_rule and args.apparmor_rule:
        parser.error('--udev-rule and --apparmor-rule print one thing each; '
                     'run them one at a time')
    if args.qemu_group and not args.udev_rule:
        parser.error('--qemu-group goes with --udev-rule')
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.udev_rule:
        return print_udev_rule(args.qemu_group)
    if args.apparmor_rule:
        if probe.apparmor_denies_userfaultfd():
            print('%s\t%s' % (capabilities.APPARMOR_LOCAL,
                              capabilities.APPARMOR_RULE))
        return 0
    lv = libvirt_api.import_libvirt()
    uri = args.uri or 'qemu:///system'
    try:
        connection = lv.open(uri)
    except lv.libvirtError as error:
        print('nova-postcopy-check: cannot connect to %s: %s'
              % (uri, error.get_error_message()), file=sys.stderr)
        return 2
    try:
        facts = probe.host_facts(connection, local=args.uri is None,
                                 trial=not args.no_trial)
    finally:
        connection.close()
    if args.virt_type:
        facts = dataclasses.replace(
            facts, accelerator=probe.ACCELERATORS[args.virt_type])
    report = capabilities.judge(facts)
    if args.json:
        json.dump({'uri': uri, 'postcopy_ready': report.postcopy_ready,
                   'recovery_ready': report.recovery_ready,
                   'preempt': report.preempt,
                   'checks': [dataclasses.asdict(c) for c in report.checks],
                   'facts': _jsonable(dataclasses.asdict(facts))},
                  sys.stdout, indent=1, sort_keys=True)
        print()
    else:
        print_table(uri, report)
    return 0 if report.postcopy_ready else 1


def print_udev_rule(group=None):
    group = group or probe.qemu_group()
    if group is None:
        print('nova-postcopy-check: QEMU\'s user %r (qemu.conf "user") does '
              'not exist on this host: install libvirt\'s QEMU driver first, '
              'or name the group with --qemu-group'
              % probe.qemu_user(probe.QEMU_CONF), file=sys.stderr)
        return 2
    print(capabilities.udev_rule(group))
    return 0


def print_table(uri, report):
    facts = report.facts
    print('%s (%s): libvirt %s, QEMU %s' % (
        facts.hostname or uri, uri,
        capabilities.version_text(facts.libvirt_version),
        capabilities.version_text(facts.qemu_version)))
    for check in report.checks:
        print('  %-18s %-7s %s' % (check.name, check.status.upper(),
                                   check.why))
        if check.remedy and check.status != capabilities.PASS:
            print('  %-18s %-7s fix: %s' % ('', '', check.remedy))
    print('post-copy: %s; recovery: %s' % (
        'ready' if report.postcopy_ready else 'NOT READY',
        'ready' if report.recovery_ready else 'not available'))


def _jsonable(value):
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


if __name__ == '__main__':
    sys.exit(main())
