# SPDX-License-Identifier: Apache-2.0
"""tools/lab/cloud: a real OpenStack on the lab (up, down, status, tempest,
openrc).

``up`` is idempotent: what is set up stays set up (stamps under
``cloud/done``), what runs keeps running, what is missing is started.
Runs with the machine's python3; the services run from the cloud's own
virtualenv.
"""

import argparse
import os
import sys
import time

import cloud_conf as conf
import cloud_process as proc
import cloud_services as services
import cloud_tempest

SERVICES = ('mariadb', 'rabbitmq', 'keystone', 'placement', 'glance',
            'neutron', 'nova-api', 'nova-conductor', 'nova-scheduler',
            'nova-compute-hostA', 'nova-compute-hostB')
PORTS = dict(conf.PORTS)


def lab_socket(host):
    return os.path.join(proc.LAB, 'hosts', host, 'run', 'libvirt-sock')


def cmd_up(args):
    started = time.monotonic()
    missing = [h for h in services.COMPUTES
               if not os.path.exists(lab_socket(h))]
    if missing:
        raise proc.CloudError(
            'the lab is not up (no libvirtd socket for host %s); run '
            '`tools/lab/lab up` first' % ', '.join(missing))
    if args.postcopy_conf is not None:
        proc.write(proc.etc('nova', 'postcopy.conf'), args.postcopy_conf)
    services.install()
    services.mariadb()
    services.rabbitmq()
    services.keystone()
    services.bootstrap('identity')
    services.placement()
    services.glance()
    services.neutron()
    services.nova()
    services.computes()
    try:
        services.bootstrap('resources')
    except proc.CloudError:
        for name in SERVICES[-2:]:
            if not proc.pid_of(name):
                raise proc.CloudError('%s exited; see %s:\n%s' % (
                    name, proc.log_of(name), proc.tail(proc.log_of(name))))
        raise
    proc.write(proc.path('clouds.yaml'), conf.clouds_yaml(), 0o600)
    for user in ('admin', 'member'):
        proc.write(proc.path('openrc-%s' % user), conf.openrc(user), 0o600)
    proc.say('up in %.0f s: `eval "$(tools/lab/cloud openrc admin)"; '
             'openstack server list` (logs in %s)'
             % (time.monotonic() - started, proc.path('log')))
    return 0


def cmd_down(args):
    for name in reversed(SERVICES):
        proc.stop(name)
    proc.say('down (the virtualenv, databases and images stay in %s)'
             % proc.STATE)
    return 0


def cmd_status(args):
    failed = 0
    for name in SERVICES:
        pid = proc.pid_of(name)
        port = PORTS.get(name)
        if pid and (port is None or proc.port_open(port)):
            state = 'up, pid %d' % pid
        elif pid:
            state, failed = 'started but not serving on port %d' % port, 1
        elif os.path.exists(proc.path('run', '%s.pid' % name)):
            state, failed = 'dead', 1
        else:
            state = 'down'
        print('%-20s %-40s %s' % (name, state, proc.log_of(name)))
    return failed


def cmd_restart(args):
    """Stop and start a nova-compute, on this tree's driver."""
    proc.stop(args.service)
    services.install()
    services.computes()
    return 0


def cmd_tempest(args):
    return cloud_tempest.run()


def cmd_openrc(args):
    sys.stdout.write(conf.openrc(args.user))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog='tools/lab/cloud')
    sub = parser.add_subparsers(dest='command', required=True)
    up = sub.add_parser('up', help='set up (once) and start every service')
    up.add_argument('--postcopy-conf', metavar='TEXT',
                    help='lines for the computes\' [postcopy] section')
    sub.add_parser('down', help='stop every service; keep the caches')
    sub.add_parser('status', help='each service and its state')
    restart = sub.add_parser(
        'restart', help='restart one nova-compute on this tree\'s driver')
    restart.add_argument('service', choices=SERVICES[-2:])
    sub.add_parser('tempest', help="run nova-postcopy's tempest test "
                   'against the cloud (as the Zuul job does on devstack)')
    openrc = sub.add_parser('openrc', help='export lines for a user')
    openrc.add_argument('user', nargs='?', default='admin',
                        choices=('admin', 'member'))
    args = parser.parse_args(argv)
    try:
        return globals()['cmd_%s' % args.command](args)
    except proc.CloudError as error:
        print('cloud: error: %s' % error, file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
