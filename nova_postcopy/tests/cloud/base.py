# SPDX-License-Identifier: Apache-2.0
"""Tests through a real OpenStack on the lab (``tools/lab/cloud``).

Everything goes through the public API (openstacksdk, as a user's script
would), and every test checks the guest where Nova says it is: running,
its counter advancing, no memory errors, no panic, no reset. The cloud must
be up (``tools/run-tests`` brings it up); a cloud that is not is a failure,
not a skip.
"""

import json
import os
import re
import subprocess
import time

import openstack
import testtools

from nova_postcopy.tests.lab import test_recovery as lab_recovery

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
LAB_CMD = os.path.join(TOP, 'tools', 'lab', 'lab')
CLOUD_CMD = os.path.join(TOP, 'tools', 'lab', 'cloud')
LAB = os.environ.get('NOVA_POSTCOPY_LAB', '/var/tmp/nova-postcopy-lab')
LOGS = os.path.join(LAB, 'cloud', 'log')
HOSTS = {'hostA': 'A', 'hostB': 'B'}
BOOT_S = 120
MIGRATION_S = 300


def lab(*args):
    return subprocess.run([LAB_CMD] + list(args), check=True, text=True,
                          stdout=subprocess.PIPE).stdout.strip()


def connect(user='admin'):
    env = {}
    text = subprocess.run([CLOUD_CMD, 'openrc', user], check=True,
                          text=True, stdout=subprocess.PIPE).stdout
    for line in text.splitlines():
        key, value = line[len('export '):].split('=', 1)
        env[key] = value
    return openstack.connect(
        auth_url=env['OS_AUTH_URL'], username=env['OS_USERNAME'],
        password=env['OS_PASSWORD'], project_name=env['OS_PROJECT_NAME'],
        user_domain_name='Default', project_domain_name='Default',
        region_name=env['OS_REGION_NAME'], compute_api_version='2.95')


def wait_for(predicate, timeout, interval=1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


class CloudTestCase(testtools.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cloud = connect()

    # -- servers -------------------------------------------------------------

    def boot(self, image='lab-busy', flavor='lab.512', host='hostA'):
        return self.boot_many([image], flavor, host)[0]

    def boot_many(self, images, flavor='lab.512', host='hostA'):
        """One server per image, booted together; each running its guest."""
        compute = self.cloud.compute
        name = 'np-%s' % self.id().rsplit('.', 1)[-1][:40]
        servers = []
        for image in images:
            server = compute.create_server(
                name=name, image_id=self.cloud.image.find_image(image).id,
                flavor_id=compute.find_flavor(flavor).id, networks='none',
                availability_zone='nova:%s' % host)
            self.addCleanup(self.delete, server)
            servers.append(server)
        servers = [compute.wait_for_server(server, status='ACTIVE',
                                           wait=BOOT_S)
                   for server in servers]
        for server in servers:
            self.assertEqual(host, server.compute_host)
            # The dirtier runs and has filled its working set.
            self.assertTrue(wait_for(
                lambda: self.health(server)['seq'] is not None, 60),
                self.health(server))
        return servers

    def delete(self, server):
        try:
            self.cloud.compute.delete_server(server)
            self.cloud.compute.wait_for_delete(server, wait=120)
        except openstack.exceptions.NotFoundException:
            pass

    def live_migrate(self, server, host='hostB', during=None):
        """Migrate, run ``during(migration)`` once it runs, wait the end."""
        compute = self.cloud.compute
        started = time.monotonic()
        compute.live_migrate_server(server, host=host, block_migration=False)
        migration = wait_for(lambda: self.migration(server), 30, 0.5)
        self.assertIsNotNone(migration, 'no migration record')
        if during:
            during(migration)
        final = wait_for(
            lambda: (lambda s: s if s.status != 'MIGRATING' and
                     s.task_state is None else None)(compute.get_server(
                         server)), MIGRATION_S, 1.0)
        self.assertIsNotNone(final, 'still migrating after %d s'
                             % MIGRATION_S)
        return final, self.ended_migration(server), \
            time.monotonic() - started

    def ended_migration(self, server):
        """The migration record once its status is final, or None.

        Nova writes the record's status after the server's task state,
        and the source's resource update runs between the two (2 s on the
        lab cloud): a record read as soon as the server settled can still
        say ``running (post-copy)``.
        """
        return wait_for(lambda: (lambda m: m if m.status in (
            'completed', 'error', 'cancelled', 'failed') else None)(
                self.migration(server, any_state=True)), 30, 0.5)

    def migration(self, server, any_state=False):
        found = list(self.cloud.compute.migrations(
            instance_uuid=server.id, migration_type='live-migration'))
        if not found:
            return None
        latest = max(found, key=lambda m: m.id)
        if any_state or latest.status in ('running', 'preparing',
                                          'queued', 'accepted'):
            return latest
        return None

    def wait_running(self, server, timeout=60):
        """The migration record once QEMU moves memory (not preparing)."""
        return wait_for(lambda: (lambda m: m if m and m.status == 'running'
                                 else None)(self.migration(server)),
                        timeout, 0.5)

    def force_postcopy(self, server, after_s=2):
        """Ask to complete ``after_s`` into pre-copy; wait for post-copy.

        Force-complete puts the switch at a moment the test knows. The
        source domain's state says when QEMU has switched.
        """
        name = self.cloud.compute.get_server(server).instance_name
        running = self.wait_running(server)
        self.assertIsNotNone(running)
        time.sleep(after_s)
        self.cloud.compute.force_complete_server_migration(running.id,
                                                           server)
        self.assertTrue(wait_for(
            lambda: lab_recovery.domain_state(name) ==
            lab_recovery.POSTCOPY, 60, 0.1), 'post-copy never started')
        return name

    # -- what Nova and the guest say -----------------------------------------

    def health(self, server):
        name = self.cloud.compute.get_server(server).instance_name
        return json.loads(lab('check', name))

    def assertHealthyOn(self, host, server):
        server = self.cloud.compute.get_server(server)
        self.assertEqual(host, server.compute_host)
        self.assertEqual('ACTIVE', server.status)
        health = self.health(server)
        self.assertEqual(HOSTS[host], health['host'], health)
        self.assertTrue(health['counter_advanced'], health)
        self.assertEqual(0, health['memory_errors'], health)
        self.assertFalse(health['panic'], health)
        self.assertFalse(health['reset'], health)

    def decisions(self, server, host='hostA'):
        """nova-postcopy's INFO lines about this instance, in order."""
        pattern = re.compile(r'INFO nova_postcopy\S* .*%s' % server.id)
        with open(os.path.join(LOGS, 'nova-compute-%s.log' % host),
                  errors='replace') as handle:
            return [line.rstrip() for line in handle
                    if pattern.search(line)]

    def allocation_hosts(self, server):
        """The compute nodes placement holds this server's resources on."""
        placement = self.cloud.placement
        response = placement.get('/allocations/%s' % server.id,
                                 microversion='1.28')
        providers = response.json()['allocations']
        names = {}
        for uuid in providers:
            names[uuid] = placement.get(
                '/resource_providers/%s' % uuid).json()['name']
        return sorted(names.values())

    def restart_compute(self, host):
        """Restart a nova-compute and wait until Nova sees it up again."""
        subprocess.run([CLOUD_CMD, 'restart', 'nova-compute-%s' % host],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        self.assertTrue(wait_for(lambda: [
            s for s in self.cloud.compute.services(binary='nova-compute')
            if s.host == host and s.state == 'up'], 120, 2))

    def host_traits(self, host):
        placement = self.cloud.placement
        providers = placement.get('/resource_providers?name=%s' % host,
                                  microversion='1.6').json()
        uuid = providers['resource_providers'][0]['uuid']
        return set(placement.get('/resource_providers/%s/traits' % uuid,
                                 microversion='1.6').json()['traits'])

    def compute_log_lines(self, server):
        """Every line of both computes' logs about this instance."""
        lines = []
        for host in HOSTS:
            with open(os.path.join(LOGS, 'nova-compute-%s.log' % host),
                      errors='replace') as handle:
                lines += [line.rstrip() for line in handle
                          if server.id in line]
        return lines
