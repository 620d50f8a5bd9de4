# SPDX-License-Identifier: Apache-2.0
"""nova-postcopy's tempest test against the lab cloud.

The Zuul job runs ``nova_postcopy/tests/tempest`` on a devstack; here the
same test runs, unchanged, on the lab's real OpenStack: tempest from PyPI
in a virtualenv of its own (tempest pins its own libraries, which need not
agree with Nova's), nova-postcopy installed there only as the plugin, and a
tempest.conf written for the lab: admin credentials, the two computes, no
neutron network needed (the test boots with ``networks='none'``), and the
lab guest's heartbeat and memory check read on its console.
"""

import os
import subprocess

import cloud_conf as conf
import cloud_process as proc

TEMPEST = 'tempest==47.0.0'
VENV = proc.path('tempest-venv')
WORKSPACE = proc.path('tempest')
# A guest that stays in pre-copy for a while (128 MiB rewritten at 24
# MiB/s over a 32 MiB/s cap): the test forces its switch, no policy does.
IMAGE = 'lab-steady'
FLAVOR = 'lab.512'
HEARTBEAT = r'DIRTIER seq=(\d+)'
TEST_REGEX = r'^nova_postcopy\.tests\.tempest\.'


def install():
    python = os.path.join(VENV, 'bin', 'python')
    if not os.path.exists(python):
        proc.say('creating tempest\'s virtualenv in %s' % VENV)
        proc.run(['python3', '-m', 'venv', VENV], 'tempest')
    stamp = os.path.join(VENV, '.installed')
    if not os.path.exists(stamp) or open(stamp).read() != TEMPEST:
        proc.say('installing %s (once)' % TEMPEST)
        proc.run([os.path.join(VENV, 'bin', 'pip'), 'install', '-q',
                  TEMPEST], 'tempest')
        proc.write(stamp, TEMPEST)
    # The plugin, from this tree: its entry point is all tempest needs.
    proc.run([os.path.join(VENV, 'bin', 'pip'), 'install', '-q',
              '--no-deps', '--force-reinstall', proc.TOP], 'tempest',
             env={'PBR_VERSION': os.environ.get('PBR_VERSION', '0.1.0')})


def resource_id(kind, name):
    """An image's or flavor's id, asked of the cloud with its own client."""
    env = dict(line[len('export '):].split('=', 1)
               for line in conf.openrc('admin').splitlines())
    result = subprocess.run(
        [proc.venv_bin('openstack'), kind, 'show', name, '-f', 'value',
         '-c', 'id'], capture_output=True, text=True,
        env=proc._env(env))
    if result.returncode:
        raise proc.CloudError('cannot find %s %s: %s' % (
            kind, name, result.stderr.strip()))
    return result.stdout.strip()


def tempest_conf(image_id, flavor_id):
    return """[DEFAULT]
log_file = tempest.log
debug = True

[auth]
admin_username = admin
admin_password = %(password)s
admin_project_name = admin
admin_domain_name = Default
use_dynamic_credentials = True
create_isolated_networks = False

[identity]
uri_v3 = %(keystone)s
auth_version = v3
region = %(region)s

[identity-feature-enabled]
api_v2 = False

[compute]
image_ref = %(image)s
flavor_ref = %(flavor)s
min_compute_nodes = 2
max_microversion = latest

[compute-feature-enabled]
live_migration = True
block_migration_for_live_migration = False

[service_available]
nova = True
glance = True
neutron = False
cinder = False
swift = False

[validation]
run_validation = False

[nova_postcopy]
heartbeat_regex = %(heartbeat)s
""" % dict(password=conf.ADMIN_PASSWORD, keystone=conf.KEYSTONE,
           region=conf.REGION, image=image_id, flavor=flavor_id,
           heartbeat=HEARTBEAT)


def run():
    """Run the test; its exit status. Output and tempest.log stay here."""
    install()
    tempest = os.path.join(VENV, 'bin', 'tempest')
    if not os.path.exists(os.path.join(WORKSPACE, '.stestr.conf')):
        proc.run([tempest, 'init', '--workspace-path',
                  proc.path('tempest-workspaces.yaml'), WORKSPACE],
                 'tempest')
    proc.write(os.path.join(WORKSPACE, 'etc', 'tempest.conf'),
               tempest_conf(resource_id('image', IMAGE),
                            resource_id('flavor', FLAVOR)))
    log = os.path.join(WORKSPACE, 'tempest.log')
    if os.path.exists(log):
        os.unlink(log)
    proc.say('running %s in %s (log: %s)' % (TEST_REGEX, WORKSPACE, log))
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(('OS_', 'PYTHON'))}
    return subprocess.run([tempest, 'run', '--regex', TEST_REGEX],
                          cwd=WORKSPACE, env=env).returncode
