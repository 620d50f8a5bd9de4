# SPDX-License-Identifier: Apache-2.0
"""tools/demo --cloud: the demo's three migrations as OpenStack users run them.

(a) a busy guest whose flavor forbids post-copy: pre-copy cannot converge
and the budget aborts it, the guest stays on hostA; (b) the same guest with
post-copy allowed: the policies switch and it completes on hostB; (c) a
quiet guest: it converges without a switch. Each through the ``openstack``
CLI (create, ``server migrate --live-migration --host hostB --wait``,
``server show``, ``server migration list``), with nova-compute's decision
lines and the guest's health from ``tools/lab/lab check``.

``--json`` prints one JSON list as the last line; the servers stay (for a
script to look at) unless ``--cleanup``.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LAB_CMD = os.path.join(HERE, 'lab')
CLOUD_CMD = os.path.join(HERE, 'cloud')
LAB = os.environ.get('NOVA_POSTCOPY_LAB', '/var/tmp/nova-postcopy-lab')
OPENSTACK = os.path.join(LAB, 'cloud', 'venv', 'bin', 'openstack')
LOGS = os.path.join(LAB, 'cloud', 'log')
RUNS = (('a', 'demo-busy-precopy', 'lab-busy', 'lab.512.forbidden'),
        ('b', 'demo-busy', 'lab-busy', 'lab.512'),
        ('c', 'demo-quiet', 'lab-quiet', 'lab.512'))
ENDED = re.compile(r'ended: (\w+)')
SWITCH = re.compile(r'switch to post-copy \(([\w-]+)\): (.*)')
ABORT = re.compile(r': abort \(([\w-]+)\): (.*)')
# Everything of an oslo.log line before its message: time, pid, level,
# logger, request context, instance.
MESSAGE = re.compile(r'^.*? INFO \S+ \[[^\]]*\] (\[instance: \S+\] )?'
                     r'(instance \S+ )?')


def environment():
    env = dict(os.environ)
    text = subprocess.run([CLOUD_CMD, 'openrc', 'admin'], check=True,
                          text=True, stdout=subprocess.PIPE).stdout
    for line in text.splitlines():
        key, value = line[len('export '):].split('=', 1)
        env[key] = value
    return env


def openstack(env, *args, show=True, check=True):
    if show:
        print('$ openstack %s' % ' '.join(args), flush=True)
    result = subprocess.run([OPENSTACK] + list(args), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if show and result.stdout.strip():
        print(result.stdout.rstrip(), flush=True)
    if check and result.returncode:
        raise SystemExit('openstack %s failed (exit %d)' % (
            ' '.join(args[:3]), result.returncode))
    return result.stdout


def field(env, server, name):
    return openstack(env, 'server', 'show', server, '-f', 'value', '-c',
                     name, show=False).strip()


def decisions(server_id):
    with open(os.path.join(LOGS, 'nova-compute-hostA.log'),
              errors='replace') as handle:
        return [line.rstrip() for line in handle
                if server_id in line and 'nova_postcopy' in line
                and ' INFO ' in line]


def migrate(env, label, name, image, flavor):
    print('\n== (%s) %s: image %s, flavor %s' % (label, name, image, flavor),
          flush=True)
    openstack(env, 'server', 'create', '--image', image, '--flavor', flavor,
              '--nic', 'none', '--availability-zone', 'nova:hostA', '--wait',
              '-f', 'value', '-c', 'id', name)
    server = field(env, name, 'id')
    instance = field(env, name, 'OS-EXT-SRV-ATTR:instance_name')
    time.sleep(5)   # the dirtier fills its working set
    before = field(env, name, 'OS-EXT-SRV-ATTR:host')
    started = time.monotonic()
    openstack(env, 'server', 'migrate', '--live-migration', '--host',
              'hostB', '--wait', name, check=False)
    took = time.monotonic() - started
    openstack(env, 'server', 'show', name, '-c', 'status', '-c',
              'OS-EXT-SRV-ATTR:host', '-c', 'OS-EXT-SRV-ATTR:instance_name')
    openstack(env, 'server', 'migration', 'list', '--server', name, '-c',
              'Source Compute', '-c', 'Dest Compute', '-c', 'Status', '-c',
              'Type')
    lines = decisions(server)
    print('nova-compute (hostA) decided:')
    for line in lines:
        if any(word in line for word in ('post-copy', 'ended', 'abort',
                                         'switch')):
            print('  %s %s' % (line[11:23], MESSAGE.sub('', line)[:240]))
    health = json.loads(subprocess.run(
        [LAB_CMD, 'check', instance], check=True, text=True,
        stdout=subprocess.PIPE).stdout)
    outcome = ([m.group(1) for m in map(ENDED.search, lines) if m]
               or ['unknown'])[-1]
    switch = [m for m in map(SWITCH.search, lines) if m]
    abort = [m for m in map(ABORT.search, lines) if m]
    reason = (switch[-1].group(2) if switch else
              abort[-1].group(2) if abort else None)
    return dict(label=label, server=server, name=name, instance_name=instance,
                outcome=outcome, switch_reason=reason, host_before=before,
                host_after=field(env, name, 'OS-EXT-SRV-ATTR:host'),
                status=field(env, name, 'status'), wall_s=round(took, 1),
                health=health)


def healthy(run):
    health = run['health']
    return health['healthy'] and health['host'] == run['host_after'][-1]


def main(argv=None):
    parser = argparse.ArgumentParser(prog='tools/demo --cloud')
    parser.add_argument('--json', action='store_true')
    parser.add_argument('--cleanup', action='store_true',
                        help='delete the servers at the end')
    args = parser.parse_args(argv)
    started = time.monotonic()
    subprocess.run([LAB_CMD, 'up'], check=True)
    subprocess.run([CLOUD_CMD, 'up'], check=True)
    print('cloud up in %.0f s' % (time.monotonic() - started), flush=True)
    env = environment()
    for _, name, _, _ in RUNS:
        if openstack(env, 'server', 'list', '--name', '^%s$' % name, '-f',
                     'value', '-c', 'ID', show=False).strip():
            openstack(env, 'server', 'delete', '--wait', name, show=False)
    runs = [migrate(env, *run) for run in RUNS]
    print('\n%-4s %-18s %-10s %-7s %-7s %-8s %-8s %s' % (
        'run', 'server', 'outcome', 'before', 'after', 'status', 'guest',
        'why'))
    for run in runs:
        print('%-4s %-18s %-10s %-7s %-7s %-8s %-8s %s' % (
            run['label'], run['name'], run['outcome'], run['host_before'],
            run['host_after'], run['status'],
            'healthy' if healthy(run) else 'NOT OK',
            (run['switch_reason'] or '-')[:100]))
    ok = (runs[0]['outcome'] == 'aborted' and runs[0]['host_after'] == 'hostA'
          and runs[1]['outcome'] == 'postcopy'
          and runs[1]['host_after'] == 'hostB'
          and runs[2]['outcome'] == 'converged'
          and runs[2]['host_after'] == 'hostB'
          and all(healthy(run) and run['status'] == 'ACTIVE'
                  for run in runs))
    print('Demo took %.0f s.' % (time.monotonic() - started))
    if args.cleanup:
        for run in runs:
            openstack(env, 'server', 'delete', '--wait', run['server'],
                      show=False)
    if args.json:
        print(json.dumps([{key: run[key] for key in (
            'server', 'instance_name', 'outcome', 'switch_reason',
            'host_before', 'host_after', 'status')} for run in runs]))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
