# SPDX-License-Identifier: Apache-2.0
"""Post-copy migrations that outlived nova-compute, found at its start.

The lab cloud's test (``tests/cloud/test_compute_restart.py``) kills a real
nova-compute in post-copy; these pin which instances the driver takes from
Nova's start-up handling and what it does with each ending.
"""

from unittest import mock

import fixtures
from nova.compute import task_states
from nova import context as nova_context
from nova import exception as nova_exception
from nova import objects
from nova import test
from nova.tests import fixtures as nova_fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.unit import fake_instance

from nova_postcopy.compute import startup
from nova_postcopy import domain_states

POSTCOPY = domain_states.IN_POSTCOPY
POSTCOPY_FAILED = domain_states.POSTCOPY_FAILED
RUNNING = (1, 1)


class FakeConnection(object):
    """Domains by name, each a list of the states it reports in turn.

    None in the list: the domain is gone (undefined) at that lookup.
    """

    def __init__(self, states):
        self.states = states

    def lookupByName(self, name):
        if not self.states.get(name):
            raise fakelibvirt.libvirtError('Domain not found')
        seen = self.states[name]
        state = seen.pop(0) if len(seen) > 1 else seen[0]
        if state is None:
            raise fakelibvirt.libvirtError('Domain not found')
        domain = mock.Mock()
        domain.state.return_value = list(state)
        return domain


class TestAdopt(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.context = nova_context.get_admin_context()
        self.useFixture(nova_fixtures.LibvirtFixture())
        self.driver = mock.Mock()
        self.driver._resume_command.return_value = 'virsh migrate ...'
        self.migrations = {}
        self.precopy = {}
        self.useFixture(fixtures.MockPatchObject(
            objects.Migration, 'get_by_instance_and_status',
            side_effect=self._migration))
        self.spawned = []
        self.useFixture(fixtures.MockPatch(
            'nova.thread_pool_factory.spawn',
            side_effect=lambda *args: self.spawned.append(args)))
        self.useFixture(fixtures.MockPatchObject(startup, 'POLL_S', 0))
        self.useFixture(fixtures.MockPatchObject(
            objects.BlockDeviceMappingList, 'get_by_instance_uuid',
            return_value=objects.BlockDeviceMappingList()))

    def _migration(self, context, uuid, status):
        if uuid in self.migrations and status == 'running (post-copy)':
            return self.migrations[uuid]
        if uuid in self.precopy and status == 'running':
            return self.precopy[uuid]
        raise nova_exception.MigrationNotFoundByStatus(
            instance_id=uuid, status=status)

    def instance(self, name, migrating=True, postcopy=True):
        self.count = getattr(self, 'count', 0) + 1
        instance = fake_instance.fake_instance_obj(
            self.context, id=self.count, display_name=name,
            task_state=task_states.MIGRATING if migrating else None)
        if postcopy:
            self.migrations[instance.uuid] = objects.Migration(
                dest_compute='hostB', status='running (post-copy)')
        return instance

    def adopt(self, states, instances):
        """``states`` by display name; domains are named by Nova."""
        named = {i.display_name: i.name for i in instances}
        self.driver._host.get_connection.return_value = FakeConnection(
            {named[label]: seen for label, seen in states.items()})
        return startup.adopt(self.driver, self.context, instances)

    def test_only_migrations_in_postcopy_are_taken_from_nova(self):
        paused = self.instance('paused')
        gone = self.instance('gone')
        precopy = self.instance('precopy', postcopy=False)
        idle = self.instance('idle', migrating=False, postcopy=False)
        # A post-copy record but the guest running here: not post-copy.
        back = self.instance('back')
        kept = self.adopt({'paused': [POSTCOPY], 'precopy': [RUNNING],
                           'idle': [RUNNING], 'back': [RUNNING]},
                          [paused, gone, precopy, idle, back])
        self.assertEqual(['precopy', 'idle', 'back'],
                         [i.display_name for i in kept])
        self.assertEqual(['paused', 'gone'],
                         [args[2].display_name for args in self.spawned])

    def test_a_source_that_does_not_run_the_guest_is_never_nova_reset(self):
        # Met at start: being shut down after the job completed (the lab
        # cloud's CI met it), paused while QEMU switches, post-copy failed.
        # Nova's reset would leave each instance ACTIVE here, guest there.
        states = {'stopping': [(4, 0), None],
                  'switching': [domain_states.SWITCHING, POSTCOPY,
                                domain_states.MIGRATED_AWAY],
                  'cut': [POSTCOPY_FAILED]}
        instances = [self.instance(name) for name in states]
        self.assertEqual([], list(self.adopt(states, instances)))
        with mock.patch.object(startup.LOG, 'error') as error:
            for args in self.spawned:
                startup.finish(*args[1:])
        post = self.driver.virtapi._compute._post_live_migration
        self.assertEqual(['stopping', 'switching'],
                         [c[0][1].display_name for c in post.call_args_list])
        self.assertIn('virsh migrate ...', error.call_args[0])

    def test_a_completed_job_gets_novas_post_migration(self):
        instance = self.instance('done')
        self.adopt({'done': [POSTCOPY, POSTCOPY, domain_states.MIGRATED_AWAY]},
                   [instance])
        startup.finish(*self.spawned[0][1:])
        post = self.driver.virtapi._compute._post_live_migration
        post.assert_called_once_with(
            mock.ANY, instance, 'hostB', block_migration=False,
            migrate_data=mock.ANY, source_bdms=mock.ANY)
        migrate_data = post.call_args[1]['migrate_data']
        # Nova's clean-up must keep every file on shared storage.
        self.assertTrue(migrate_data.is_shared_instance_path)
        self.assertTrue(migrate_data.is_shared_block_storage)
        self.assertIs(self.migrations[instance.uuid], migrate_data.migration)

    def test_the_source_shutting_down_is_not_an_ending(self):
        instance = self.instance('stopping')
        self.adopt({'stopping': [POSTCOPY, (4, 0), (4, 0), None]},
                   [instance])
        startup.finish(*self.spawned[0][1:])
        self.driver.virtapi._compute._post_live_migration.assert_called_once()

    def test_a_failed_postcopy_is_left_with_the_resume_command(self):
        instance = self.instance('cut')
        self.adopt({'cut': [POSTCOPY, POSTCOPY_FAILED]}, [instance])
        with mock.patch.object(startup.LOG, 'error') as error:
            startup.finish(*self.spawned[0][1:])
        self.driver.virtapi._compute._post_live_migration.assert_not_called()
        self.assertIn('virsh migrate ...', error.call_args[0])

    def test_a_precopy_reset_by_nova_gets_its_allocations_back(self):
        instance = self.instance('precopy', postcopy=False)
        migration = objects.Migration(dest_compute='hostB', status='running')
        self.precopy[instance.uuid] = migration
        kept = self.adopt({'precopy': [RUNNING]}, [instance])
        # Nova's start-up still resets it; the resources come back here.
        self.assertEqual([instance], list(kept))
        revert = self.driver.virtapi._compute._revert_allocation
        revert.assert_called_once_with(self.context, instance, migration)
        self.assertEqual([], self.spawned)
