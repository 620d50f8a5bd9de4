# SPDX-License-Identifier: Apache-2.0
"""The driver's own pieces under Nova's LibvirtFixture (fakelibvirt)."""

import collections
import dataclasses
import os
import time
from unittest import mock

import fixtures

from nova.compute import provider_tree
from nova import exception as nova_exception
from nova import objects
from nova import test
from nova.tests import fixtures as nova_fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.unit import fake_instance
from nova.virt import driver as virt_driver
from nova.virt import fake
from nova.virt.libvirt import guest as libvirt_guest

from nova_postcopy.compute import driver as postcopy_driver
from nova_postcopy.compute import failure
from nova_postcopy.compute import nova_options
from nova_postcopy.compute import planned as planned_mod
from nova_postcopy.compute import traits
from nova_postcopy import exception
from nova_postcopy import negotiate
from nova_postcopy.tests.functional import base


class TestLoading(test.NoDBTestCase):
    def setUp(self):
        super().setUp()
        self.useFixture(nova_fixtures.LibvirtFixture())

    def test_nova_loads_the_driver_through_the_installed_shim(self):
        driver = virt_driver.load_compute_driver(
            fake.FakeVirtAPI(), 'postcopy.PostcopyLibvirtDriver')
        self.assertIsInstance(driver, postcopy_driver.PostcopyLibvirtDriver)
        import nova.virt.postcopy as shim
        # Installed next to Nova's own drivers, as nova-compute finds it.
        self.assertEqual(os.path.dirname(virt_driver.__file__),
                         os.path.dirname(os.path.dirname(shim.__file__)))

    def test_no_budget_at_all_stops_the_service_at_start(self):
        self.flags(precopy_timeout_per_gib=0, precopy_timeout_max=0,
                   group='postcopy')
        self.flags(live_migration_completion_timeout=0, group='libvirt')
        driver = postcopy_driver.PostcopyLibvirtDriver(fake.FakeVirtAPI())
        error = self.assertRaises(exception.InvalidConfig,
                                  driver.init_host, 'compute1')
        self.assertIn('precopy_timeout_per_gib', str(error))

    def test_nova_completion_timeout_is_a_budget(self):
        self.flags(precopy_timeout_per_gib=0, precopy_timeout_max=0,
                   group='postcopy')
        self.flags(live_migration_completion_timeout=100, group='libvirt')
        self.assertEqual(200.0, nova_options.precopy_budget_s(2.0))
        self.flags(precopy_timeout_per_gib=30, group='postcopy')
        self.assertEqual(60.0, nova_options.precopy_budget_s(2.0))


class TestTraits(test.NoDBTestCase):
    def setUp(self):
        super().setUp()
        self.useFixture(nova_fixtures.LibvirtFixture())
        self.driver = postcopy_driver.PostcopyLibvirtDriver(
            fake.FakeVirtAPI())

    def _advertised(self, facts):
        tree = provider_tree.ProviderTree()
        tree.new_root('node', 'uuid-node')
        tree.add_traits('node', 'CUSTOM_OPERATOR_SET', traits.RECOVERY)
        with mock.patch.object(self.driver, '_postcopy_facts',
                               return_value=facts), \
                mock.patch('nova.virt.libvirt.driver.LibvirtDriver.'
                           'update_provider_tree'):
            self.driver.update_provider_tree(tree, 'node')
        return tree.data('node').traits

    def test_ready_host_advertises_postcopy_recovery_preempt(self):
        have = self._advertised(base.READY)
        for trait in traits.ALL:
            self.assertIn(trait, have)
        self.assertIn('CUSTOM_OPERATOR_SET', have)

    def test_slow_outage_detection_is_logged_not_withdrawn(self):
        have = self._advertised(dataclasses.replace(base.READY,
                                                    tcp_retries2=15))
        for trait in traits.ALL:
            self.assertIn(trait, have)
        log = self.stdlog.logger.output
        warnings = log[log.index('; warnings: '):]
        self.assertIn('outage-detection: QEMU notices a cut link after '
                      'about 925 s', warnings)
        self.assertNotIn('not ready', log)

    def test_unready_host_withdraws_its_traits_only(self):
        have = self._advertised(base.NO_USERFAULTFD)
        self.assertFalse(set(traits.ALL) & have)
        self.assertIn('CUSTOM_OPERATOR_SET', have)

    def test_a_failing_probe_does_not_break_resource_tracking(self):
        tree = provider_tree.ProviderTree()
        tree.new_root('node', 'uuid-node')
        with mock.patch.object(self.driver, '_postcopy_facts',
                               side_effect=OSError('no /proc')), \
                mock.patch('nova.virt.libvirt.driver.LibvirtDriver.'
                           'update_provider_tree'):
            self.driver.update_provider_tree(tree, 'node')
        self.assertFalse(set(traits.ALL) & tree.data('node').traits)


class TestPlannedDomain(test.NoDBTestCase):
    """Flags and parameters come from the plan, not the host."""

    def setUp(self):
        super().setUp()
        self.useFixture(nova_fixtures.LibvirtFixture())
        # The domain nova-compute's connection holds, and the same domain
        # on the migration call's own connection, where the call goes.
        self.shared = mock.Mock()
        self.domain = mock.Mock()
        self.connection = mock.Mock()
        self.connection.lookupByUUIDString.return_value = self.domain
        self.connect = mock.Mock(return_value=self.connection)
        self.instance = fake_instance.fake_instance_obj(None)
        self.base_flags = (fakelibvirt.VIR_MIGRATE_LIVE
                           | fakelibvirt.VIR_MIGRATE_POSTCOPY)

    def _migrate(self, plan, mode='allowed'):
        planned = planned_mod.Migration(plan=plan, mode=mode,
                                        flags_postcopy=plan.postcopy)
        domain = planned_mod.PlannedDomain(self.shared, planned,
                                           self.instance, self.connect)
        domain.migrateToURI3('qemu+tcp://dest/system', {'bandwidth': 0},
                             self.base_flags)
        return planned

    def test_the_call_runs_on_a_connection_of_its_own(self):
        self._migrate(negotiate.Plan(True, True, False, 200, ('ok',)))
        self.connection.lookupByUUIDString.assert_called_once_with(
            self.shared.UUIDString.return_value)
        self.assertEqual(1, self.domain.migrateToURI3.call_count)
        self.shared.migrateToURI3.assert_not_called()
        self.connection.close.assert_called_once_with()

    def test_without_a_second_connection_the_call_shares_novas(self):
        self.connect.side_effect = fakelibvirt.make_libvirtError(
            fakelibvirt.libvirtError, 'too many clients',
            error_code=fakelibvirt.VIR_ERR_INTERNAL_ERROR)
        self._migrate(negotiate.Plan(True, True, False, 200, ('ok',)))
        self.assertEqual(1, self.shared.migrateToURI3.call_count)
        self.assertIn('shares its libvirt connection',
                      self.stdlog.logger.output)
        self.assertIn('too many clients', self.stdlog.logger.output)

    def _call(self, index=-1):
        args, kwargs = self.domain.migrateToURI3.call_args_list[index]
        return kwargs['flags'], kwargs['params']

    def test_postcopy_with_bandwidth(self):
        self._migrate(negotiate.Plan(True, True, False, 200, ('ok',)))
        flags, params = self._call()
        self.assertTrue(flags & fakelibvirt.VIR_MIGRATE_POSTCOPY)
        self.assertEqual(200, params['bandwidth.postcopy'])

    def test_precopy_plan_clears_the_host_wide_flag(self):
        self.flags(live_migration_permit_auto_converge=True, group='libvirt')
        self._migrate(negotiate.Plan(False, False, False, 0, ('no',)))
        flags, params = self._call()
        self.assertFalse(flags & fakelibvirt.VIR_MIGRATE_POSTCOPY)
        self.assertTrue(flags & fakelibvirt.VIR_MIGRATE_AUTO_CONVERGE)
        self.assertNotIn('bandwidth.postcopy', params)

    def test_refusal_at_prepare_is_retried_once_as_precopy(self):
        self.domain.migrateToURI3.side_effect = [
            fakelibvirt.make_libvirtError(
                fakelibvirt.libvirtError, 'internal error: unable to execute '
                'QEMU command \'migrate-set-capabilities\': Postcopy is not '
                'supported', error_code=fakelibvirt.VIR_ERR_INTERNAL_ERROR),
            None]
        planned = self._migrate(negotiate.Plan(True, False, False, 0, ('',)))
        self.assertEqual(2, self.domain.migrateToURI3.call_count)
        flags, _ = self._call()
        self.assertFalse(flags & fakelibvirt.VIR_MIGRATE_POSTCOPY)
        self.assertFalse(planned.flags_postcopy)

    def test_required_instance_is_not_retried_without_postcopy(self):
        self.domain.migrateToURI3.side_effect = fakelibvirt.make_libvirtError(
            fakelibvirt.libvirtError, 'Postcopy is not supported',
            error_code=fakelibvirt.VIR_ERR_INTERNAL_ERROR)
        self.assertRaises(fakelibvirt.libvirtError, self._migrate,
                          negotiate.Plan(True, False, False, 0, ('',)),
                          'required')
        self.assertEqual(1, self.domain.migrateToURI3.call_count)


class TestMonitor(test.NoDBTestCase):
    """The monitor on Nova's Guest, as Nova's own monitor tests drive it."""

    def setUp(self):
        super().setUp()
        self.useFixture(nova_fixtures.LibvirtFixture())
        self.driver = postcopy_driver.PostcopyLibvirtDriver(
            fake.FakeVirtAPI())
        self.instance = objects.Instance(
            uuid='c2f2d7d6-2c0a-4a2e-9d2f-0d5e2d4d5e11', id=1,
            flavor=objects.Flavor(memory_mb=2048, extra_specs={}),
            system_metadata={}, vm_state='active', host='src',
            resources=None)
        self.driver.active_migrations[self.instance.uuid] = (
            collections.deque())
        with mock.patch.object(fakelibvirt.Connection, '_mark_running'):
            self.domain = fakelibvirt.Domain(self.driver._get_connection(),
                                             '<domain/>', True)
        self.guest = libvirt_guest.Guest(self.domain)
        self.migration = objects.Migration(id=1, status='running')
        patcher = mock.patch.object(objects.Migration, 'save')
        patcher.start()
        self.addCleanup(patcher.stop)
        patcher = mock.patch.object(objects.Instance, 'save')
        patcher.start()
        self.addCleanup(patcher.stop)
        patcher = mock.patch('time.sleep')
        patcher.start()
        self.addCleanup(patcher.stop)

    def _run(self, records, state=(1, 0)):
        future = mock.Mock()
        future.done.return_value = False
        self.domain.state = mock.Mock(return_value=list(state))
        post, recover = mock.Mock(), mock.Mock()
        migrate_data = objects.LibvirtLiveMigrateData(
            migration=self.migration, block_migration=False)
        with mock.patch.object(libvirt_guest.Guest, 'get_job_info',
                               side_effect=records), \
                mock.patch.object(libvirt_guest.Guest,
                                  'migrate_start_postcopy') as switch, \
                mock.patch.object(self.driver, '_is_post_copy_enabled',
                                  return_value=True), \
                mock.patch('nova.compute.utils.'
                           'add_instance_fault_from_exc') as fault:
            try:
                self.driver._live_migration_monitor(
                    None, self.instance, self.guest, 'dest', post, recover,
                    False, migrate_data, future, [])
                error = None
            except failure.PostcopyFailed as raised:
                error = raised
        return post, recover, switch, fault, error

    def _busy(self, elapsed_s, processed_gib, iteration):
        gib = 1024 ** 3
        return libvirt_guest.JobInfo(
            type=fakelibvirt.VIR_DOMAIN_JOB_UNBOUNDED,
            time_elapsed=int(elapsed_s * 1000), data_total=2 * gib,
            memory_total=2 * gib, data_processed=int(processed_gib * gib),
            memory_processed=int(processed_gib * gib),
            memory_normal_bytes=int(processed_gib * gib),
            data_remaining=2 * gib, memory_remaining=2 * gib,
            memory_iteration=iteration, memory_bps=100 * 1024 ** 2)

    def test_failed_postcopy_is_not_rolled_back(self):
        self.migration.status = 'running (post-copy)'
        records = [self._busy(1, 0.1, 1),
                   libvirt_guest.JobInfo(
                       type=fakelibvirt.VIR_DOMAIN_JOB_FAILED)]
        post, recover, _, fault, error = self._run(
            records, state=(3, 13))  # paused, post-copy failed
        self.assertIsNotNone(error)
        recover.assert_not_called()
        post.assert_not_called()
        fault.assert_called_once()
        self.assertIn('--postcopy-resume', str(error))

    def test_failure_with_the_source_running_is_rolled_back(self):
        records = [self._busy(1, 0.1, 1),
                   libvirt_guest.JobInfo(
                       type=fakelibvirt.VIR_DOMAIN_JOB_FAILED)]
        post, recover, _, _, error = self._run(records, state=(1, 0))
        self.assertIsNone(error)
        recover.assert_called_once()

    def test_busy_guest_switches_after_its_first_pass(self):
        # 2 GiB at 100 MiB/s: the pass ends at ~20 s with 2 GiB dirty again.
        records = [self._busy(t, t * 0.1, 1 if t < 21 else 2)
                   for t in range(1, 23)]
        records.append(libvirt_guest.JobInfo(
            type=fakelibvirt.VIR_DOMAIN_JOB_COMPLETED))
        post, recover, switch, _, _ = self._run(records)
        switch.assert_called_once_with()
        post.assert_called_once()
        self.assertEqual('running (post-copy)', self.migration.status)

    def test_operator_abort_is_refused_once_postcopy_runs(self):
        planned = planned_mod.Migration(
            plan=negotiate.Plan(True, True, False, 0, ('',)), mode='allowed',
            flags_postcopy=True, job=mock.Mock(postcopy_started=True))
        self.driver._postcopy_migrations[self.instance.uuid] = planned
        with mock.patch('nova.virt.libvirt.driver.LibvirtDriver.'
                        'live_migration_abort') as nova_abort:
            self.driver.live_migration_abort(self.instance)
        nova_abort.assert_not_called()

    def test_mode_from_a_bad_image_property_fails_the_precheck(self):
        self.instance.system_metadata = {'image_postcopy_mode': 'always'}
        error = self.assertRaises(nova_exception.MigrationPreCheckError,
                                  self.driver._postcopy_mode, self.instance)
        self.assertIn('image property postcopy_mode', str(error))


class TestIncomingWatch(test.NoDBTestCase):
    """The destination's watch: started, fed the real state, stopped."""

    def setUp(self):
        super().setUp()
        self.useFixture(nova_fixtures.LibvirtFixture())
        self.driver = postcopy_driver.PostcopyLibvirtDriver(
            fake.FakeVirtAPI())
        self.covered = []
        self.useFixture(fixtures.MockPatch(
            'nova_postcopy.privileged.keep_incoming_alive',
            side_effect=self._keep_alive))
        self.states = {}

        def lookup(uuid):
            if uuid not in self.states:
                raise fakelibvirt.make_libvirtError(
                    fakelibvirt.libvirtError, 'no domain',
                    error_code=fakelibvirt.VIR_ERR_NO_DOMAIN)
            return mock.Mock(state=lambda: list(self.states[uuid]))
        connection = mock.Mock(lookupByUUIDString=lookup)
        self.useFixture(fixtures.MockPatchObject(
            self.driver._host, 'get_connection', return_value=connection))

    def _keep_alive(self, uuid, idle_s, interval_s, count):
        self.covered.append((uuid, idle_s))
        return ['10.0.0.1:4000%d' % len(self.covered)]

    def _wait(self, predicate, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            time.sleep(0.05)
        return predicate()

    def test_post_copy_covered_then_stopped_at_post_migration(self):
        uuid = 'c1a2b3c4-0000-4000-8000-000000000001'
        self.states[uuid] = (1, 10)  # running, post-copy
        self.driver._incoming.start(uuid)
        self.assertTrue(self._wait(lambda: self.covered))
        self.assertEqual((uuid, 5), self.covered[0])
        watch = self.driver._incoming.watches[uuid]
        self.driver._incoming.stop(uuid)
        self.assertNotIn(uuid, self.driver._incoming.watches)
        self.assertTrue(watch._stop.is_set())

    def test_pre_copy_left_alone_and_the_end_ends_the_watch(self):
        uuid = 'c1a2b3c4-0000-4000-8000-000000000002'
        self.states[uuid] = (3, 2)  # paused, incoming pre-copy
        self.driver._incoming.start(uuid)
        time.sleep(1.5)
        self.assertEqual([], self.covered)
        self.states[uuid] = (1, 2)  # running, migrated
        self.assertTrue(self._wait(
            lambda: uuid not in self.driver._incoming.watches, 5))
        self.assertEqual([], self.covered)

    def test_switched_off(self):
        self.flags(incoming_keepalive=0, group='postcopy')
        self.driver._incoming.start('c1a2b3c4-0000-4000-8000-000000000003')
        self.assertEqual({}, self.driver._incoming.watches)

    def test_after_a_restart_incoming_post_copies_watched_again(self):
        running_postcopy = mock.Mock(
            uuid='c1a2b3c4-0000-4000-8000-000000000004')
        running_postcopy._domain.state.return_value = [1, 10]
        outgoing_postcopy = mock.Mock(
            uuid='c1a2b3c4-0000-4000-8000-000000000005')
        outgoing_postcopy._domain.state.return_value = [3, 12]
        plain = mock.Mock(uuid='c1a2b3c4-0000-4000-8000-000000000006')
        plain._domain.state.return_value = [1, 1]
        self.states[running_postcopy.uuid] = (1, 10)
        with mock.patch.object(self.driver._host, 'list_guests',
                               return_value=[running_postcopy,
                                             outgoing_postcopy, plain]):
            self.driver._incoming.adopt_running()
        self.assertEqual([running_postcopy.uuid],
                         list(self.driver._incoming.watches))
        self.assertTrue(self._wait(lambda: self.covered))
        self.driver._incoming.stop(running_postcopy.uuid)
