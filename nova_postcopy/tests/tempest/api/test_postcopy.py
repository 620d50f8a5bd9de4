# SPDX-License-Identifier: Apache-2.0
"""A live migration that must finish in post-copy, proven through Nova's API.

tempest's own live-migration tests force completion only when they happen
to catch a migration still running, and finish either way: nothing in them
shows that a switch to post-copy happened, let alone that the guest
survived it. This test makes the switch happen and proves it: it waits for
the migration to run, asks Nova to force-complete it (with nova-postcopy's
driver that is a switch to post-copy where the plan allows it), and must
see the migration record say ``running (post-copy)`` before it completes on
the other host, with the guest alive there.

Catching a migration in pre-copy, then in post-copy, takes a migration
slower than the poll: the hosts cap both phases (``[libvirt]
live_migration_bandwidth`` and ``[postcopy] postcopy_bandwidth_mibs``; the
Zuul job and the lab cloud set them).
"""

import json
import re
import time

from oslo_log import log as logging
from tempest.api.compute import base
from tempest.common import waiters
from tempest import config
from tempest.lib import decorators

CONF = config.CONF
LOG = logging.getLogger(__name__)

POSTCOPY = 'running (post-copy)'
FINAL = ('completed', 'error', 'failed', 'cancelled')
POLL_S = 0.2
BOOT_S = 120


class PostcopyLiveMigrationTest(base.BaseV2ComputeAdminTest):
    """Force-complete switches a running live migration to post-copy."""

    # networks='none': the test needs no network, and a job without
    # neutron's agents can still run it.
    min_microversion = '2.37'

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.compute_feature_enabled.live_migration:
            raise cls.skipException('live migration is not available')
        if CONF.compute.min_compute_nodes < 2:
            raise cls.skipException('fewer than 2 compute nodes')

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.migrations_client = cls.os_admin.migrations_client

    @decorators.attr(type='multinode')
    @decorators.idempotent_id('6f0d2c1e-4a7b-4e2f-9d1c-3b8a5e7f2c40')
    def test_force_complete_finishes_in_postcopy(self):
        options = CONF.nova_postcopy
        server = self.create_test_server(
            wait_until='ACTIVE', networks='none',
            image_id=options.image_ref or CONF.compute.image_ref,
            flavor=options.flavor_ref or CONF.compute.flavor_ref)
        server_id = server['id']
        # Named in the log so that a check of nova-compute's log after the
        # run can find this server's decisions.
        LOG.info('nova-postcopy: migrating server %s', server_id)
        source = self.get_host_for_server(server_id)
        dest = self.get_host_other_than(server_id)
        beat = self._heartbeat(server_id)
        deadline = time.monotonic() + options.migration_timeout

        self.admin_servers_client.live_migrate_server(
            server_id, host=dest, block_migration='auto')
        running = self._wait_running(server_id, deadline)
        self._force_complete(server_id, running['id'])
        statuses = self._follow(server_id, running['id'], deadline)

        LOG.info('nova-postcopy: migration %s of server %s went through %s',
                 running['id'], server_id, statuses)
        self.assertIn(POSTCOPY, statuses,
                      'the migration never ran in post-copy after '
                      'force-complete: %s' % statuses)
        self.assertEqual('completed', statuses[-1], statuses)
        waiters.wait_for_server_status(self.admin_servers_client, server_id,
                                       'ACTIVE')
        self.assertEqual(dest, self.get_host_for_server(server_id),
                         'the server did not leave %s' % source)
        self._assert_alive(server_id, beat, deadline)

    def _wait_running(self, server_id, deadline):
        """The migration record once QEMU moves memory, in pre-copy."""
        while time.monotonic() < deadline:
            for migration in self.admin_servers_client.\
                    list_in_progress_live_migration(server_id)['migrations']:
                if migration['status'] == 'running':
                    return migration
            server = self.admin_servers_client.show_server(
                server_id)['server']
            if server['status'] != 'MIGRATING' and not server.get(
                    'OS-EXT-STS:task_state'):
                self.fail('the migration ended (server %s) before it could '
                          'be forced: cap [libvirt] live_migration_bandwidth '
                          'on the computes so that pre-copy lasts longer '
                          'than a few polls' % server['status'])
            time.sleep(POLL_S)
        self.fail('the migration did not start running in time')

    def _force_complete(self, server_id, migration_id):
        """POST force_complete with the body Nova's schema takes.

        tempest 47's ``force_complete_live_migration`` sends the string
        ``'null'``, which Nova 34 refuses (400, "'null' is not of type
        'null'"); tempest's own test swallows that BadRequest as "already
        completed", so it never forces anything against Nova 34.
        """
        resp, _ = self.admin_servers_client.post(
            'servers/%s/migrations/%s/action' % (server_id, migration_id),
            json.dumps({'force_complete': None}))
        self.assertEqual(202, resp.status)

    def _follow(self, server_id, migration_id, deadline):
        """Every status the migration record shows until a final one."""
        seen = []
        while time.monotonic() < deadline:
            for migration in self.migrations_client.list_migrations(
                    instance_uuid=server_id)['migrations']:
                if migration['id'] != migration_id:
                    continue
                if not seen or seen[-1] != migration['status']:
                    seen.append(migration['status'])
            if seen and seen[-1] in FINAL:
                return seen
            time.sleep(POLL_S)
        self.fail('migration %s did not end in time; statuses seen: %s'
                  % (migration_id, seen))

    def _console(self, server_id):
        return self.admin_servers_client.get_console_output(
            server_id)['output']

    def _heartbeat(self, server_id):
        """The guest's last heartbeat on its console, or None.

        Waits for the first one: a guest still booting has not started
        the work the migration is meant to carry.
        """
        pattern = CONF.nova_postcopy.heartbeat_regex
        if not pattern:
            return None
        deadline = time.monotonic() + BOOT_S
        while True:
            values = [int(v) for v in re.findall(pattern,
                                                 self._console(server_id))]
            if values:
                return values[-1]
            if time.monotonic() > deadline:
                self.fail('no heartbeat %r on the console %d s after the '
                          'server became active' % (pattern, BOOT_S))
            time.sleep(1)

    def _assert_alive(self, server_id, beat, deadline):
        """No panic, no failed memory check; the heartbeat moved on."""
        failure = re.compile(CONF.nova_postcopy.console_failure_regex)
        while True:
            output = self._console(server_id)
            found = failure.search(output)
            self.assertIsNone(found, 'the console after the migration '
                              'shows %r' % (found and found.group(0)))
            if beat is None:
                return
            values = [int(v) for v in re.findall(
                CONF.nova_postcopy.heartbeat_regex, output)]
            if values and values[-1] > beat:
                return
            if time.monotonic() > deadline:
                self.fail('the heartbeat stayed at %s after the migration'
                          % beat)
            time.sleep(1)
