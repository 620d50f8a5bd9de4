# SPDX-License-Identifier: Apache-2.0
"""Nova 34 in-process (API, conductor, scheduler, placement, two computes)
with our driver loaded the way nova-compute loads it.

The computes load ``compute_driver = postcopy.PostcopyLibvirtDriver``
through Nova's own ``load_compute_driver``, i.e. through the installed
``nova/virt/postcopy`` shim. What each host's probe finds is set per host
(``HOST_FACTS``): the probe itself is proven on the lab's real hosts.
"""

import dataclasses
import os
import sys
import time

import fixtures
from nova.tests.functional.api import client
from nova.tests.functional import integrated_helpers
from nova.tests.functional.libvirt import base as libvirt_base

from nova_postcopy import capabilities
from nova_postcopy.compute import driver as postcopy_driver
from nova_postcopy.tests.functional import fixtures as sim_fixtures

READY = capabilities.HostFacts(
    kernel=(6, 12), dev_userfaultfd=capabilities.DeviceNode(0o20660, 0, 64055),
    unprivileged_userfaultfd=0, qemu_uid=64055, qemu_gids=(64055,),
    libvirt_version=(12, 8, 0), qemu_version=(11, 1, 0),
    migration_capabilities=frozenset({'postcopy-ram', 'postcopy-preempt'}),
    hugepage_sizes_kib=frozenset({2048}), postcopy_trial=(True, ''))
# A Debian 13 host whose QEMU user may not open /dev/userfaultfd.
NO_USERFAULTFD = capabilities.HostFacts(
    kernel=(6, 12), dev_userfaultfd=capabilities.DeviceNode(0o20600, 0, 0),
    unprivileged_userfaultfd=0, qemu_uid=64055, qemu_gids=(64055,),
    libvirt_version=(11, 3, 0), qemu_version=(10, 0, 0),
    migration_capabilities=frozenset({'postcopy-ram'}),
    hugepage_sizes_kib=frozenset({2048}),
    postcopy_trial=(False, 'Postcopy is not supported: Userfaultfd not '
                           'available: Inappropriate ioctl for device'))

# Non-converging: 2 GiB over 1 Gb/s while writing 4 Gb/s into 1 GiB.
BUSY = 'ram_gib=2,link_gbps=1,wss_gib=1,dirty_gbps=4'
# Converging: a quiet guest on a fast link.
QUIET = 'ram_gib=2,link_gbps=10,wss_gib=0.05,dirty_gbps=0.1'


class PostcopyTestBase(libvirt_base.ServersTestBase,
                       integrated_helpers.InstanceHelperMixin):
    ADMIN_API = True
    microversion = 'latest'
    WORKLOAD = BUSY
    SPEED = 10.0
    HOST_FACTS = {'src': READY, 'dest': READY}
    # More [libvirt] options; read when the computes start.
    LIBVIRT_OPTIONS = {}

    def setUp(self):
        # The wheel installs api-paste.ini under the prefix, not next to
        # the package where Nova's test configuration looks.
        self.flags(api_paste_config=os.path.join(
            sys.prefix, 'etc', 'nova', 'api-paste.ini'), group='wsgi')
        super().setUp()
        self.flags(live_migration_permit_post_copy=True, group='libvirt',
                   **self.LIBVIRT_OPTIONS)
        facts = self.HOST_FACTS
        self.useFixture(fixtures.MonkeyPatch(
            'nova_postcopy.compute.driver.PostcopyLibvirtDriver.'
            '_postcopy_facts',
            lambda driver: dataclasses.replace(
                facts[driver._host.get_hostname()],
                hostname=driver._host.get_hostname())))
        self.hypervisor = self.useFixture(
            sim_fixtures.SimulatedHypervisorMigration(
                self, self.WORKLOAD, speed=self.SPEED))
        self.start_compute(hostname='src')
        self.start_compute(hostname='dest')
        self.src = self.computes['src']
        self.dest = self.computes['dest']

    def _setup_compute_service(self):
        self.flags(compute_driver='postcopy.PostcopyLibvirtDriver')

    def boot(self, extra_specs=None):
        flavor_id = self._create_flavor(memory_mb=2048,
                                        extra_spec=extra_specs)
        server = self._create_server(host='src', flavor_id=flavor_id,
                                     networks='none')
        self.assertIsInstance(self.src.driver,
                              postcopy_driver.PostcopyLibvirtDriver)
        return server

    def start_migration(self, server):
        """``openstack server migrate --live-migration``, scheduler's pick."""
        self.api.post_server_action(
            server['id'], {'os-migrateLive': {'host': None,
                                              'block_migration': 'auto'}})

    def assertRefusedBeforeAnythingMoved(self, server):
        # In-process, the conductor's answer (no host passed the checks)
        # reaches the API call; a real API has already answered 202.
        self.assertRaises(client.OpenStackApiException,
                          self.start_migration, server)
        self.wait_for_migration(server, 'error')
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('src', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([], self.hypervisor.migrations)

    def migrate(self, server, migration_status='completed',
                server_status='ACTIVE'):
        self.start_migration(server)
        self.wait_for_migration(server, migration_status)
        return self._wait_for_state_change(server, server_status)

    def wait_for_migration(self, server, status, timeout_s=60):
        # Nova's helper gives up after 5 s; a recovery takes longer.
        deadline = time.monotonic() + timeout_s
        seen = None
        while time.monotonic() < deadline:
            for migration in self.api.get_migrations():
                if migration['instance_uuid'] == server['id']:
                    seen = migration['status']
            if seen == status:
                return
            time.sleep(0.2)
        self.fail('migration of %s is %r after %d s, not %r'
                  % (server['id'], seen, timeout_s, status))

    def migration_record(self, server):
        migrations = self.api.get_migrations()
        mine = [m for m in migrations if m['instance_uuid'] == server['id']]
        self.assertEqual(1, len(mine))
        return mine[0]

    def traits(self, hostname):
        return set(self.placement.get(
            '/resource_providers/%s/traits' % self.compute_rp_uuids[hostname],
            version='1.6').body['traits'])
