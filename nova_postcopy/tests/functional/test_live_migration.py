# SPDX-License-Identifier: Apache-2.0
"""Live migration through Nova's REST API, with our driver on both hosts."""

import dataclasses
import time

import fixtures as fixtures_lib

from nova import context as nova_context
from nova import exception as nova_exception
from nova import objects
from nova.tests.fixtures import libvirt as fakelibvirt

from nova_postcopy.compute import traits
from nova_postcopy.tests.functional import base
from nova_postcopy.tests.functional import fixtures


class TestNonConverging(base.PostcopyTestBase):
    WORKLOAD = base.BUSY

    def test_switches_to_postcopy_and_completes(self):
        self.assertIn(traits.POSTCOPY, self.traits('dest'))
        self.assertIn(traits.RECOVERY, self.traits('dest'))
        server = self.boot()
        server = self.migrate(server)
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('completed', self.migration_record(server)['status'])
        migration = self.hypervisor.last
        self.assertTrue(migration.postcopy_flag)
        self.assertEqual(1, migration.switch_requests)
        # Right after the first pass, not after Nova's 1600 s timeout.
        self.assertLess(migration.model.postcopy_started_at, 60)
        self.assertIn('switch to post-copy (forecast)',
                      self.stdlog.logger.output)
        # The migration call ran on a connection of its own, closed since.
        self.assertEqual([True], [c.closed
                                  for c in self.hypervisor.connections])
        self.assertNotIn('shares its libvirt connection',
                         self.stdlog.logger.output)


class TestConverging(base.PostcopyTestBase):
    WORKLOAD = base.QUIET

    def test_completes_without_switch(self):
        server = self.migrate(self.boot())
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        migration = self.hypervisor.last
        self.assertTrue(migration.postcopy_flag)
        self.assertEqual(0, migration.switch_requests)
        self.assertIsNone(migration.model.postcopy_started_at)


class TestPollInterval(base.PostcopyTestBase):
    # A converging guest on a slow link: about 8 s of wall time.
    WORKLOAD = 'ram_gib=2,link_gbps=1,wss_gib=0.05,dirty_gbps=0.1'
    SPEED = 2.0

    def test_statistics_read_at_the_configured_interval(self):
        self.flags(poll_interval=2.0, group='postcopy')
        server = self.boot()
        started = time.monotonic()
        self.migrate(server)
        wall_s = time.monotonic() - started
        reads = self.hypervisor.last.jobstats_reads
        self.assertGreater(wall_s, 5)
        # Every 2 s (not Nova's 0.5 s), with one read to spare.
        self.assertLessEqual(reads, wall_s / 2.0 + 1, (reads, wall_s))
        self.assertGreaterEqual(reads, 2)


class TestTcgOnQemu11(base.PostcopyTestBase):
    """virt_type = qemu on QEMU 11.1: TCG guests die at the switch (#11)."""

    WORKLOAD = base.QUIET
    LIBVIRT_OPTIONS = {'virt_type': 'qemu'}

    def setUp(self):
        super().setUp()
        # fakelibvirt answers type='kvm' whatever the domain was defined
        # with; libvirt answers what Nova wrote: type='qemu' here.
        xml_desc = fakelibvirt.Domain.XMLDesc
        self.useFixture(fixtures_lib.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.XMLDesc',
            lambda domain, flags: xml_desc(domain, flags).replace(
                "<domain type='kvm'>", "<domain type='qemu'>", 1)))

    def test_host_withdraws_its_traits_and_migrates_by_precopy(self):
        for host in ('src', 'dest'):
            self.assertFalse(set(traits.ALL) & self.traits(host), host)
        server = self.migrate(self.boot())
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        self.assertFalse(self.hypervisor.last.postcopy_flag)
        log = self.stdlog.logger.output
        self.assertIn('pre-copy only: tcg-postcopy: source src: QEMU 11.1.0 '
                      'loses TCG guests switched to post-copy', log)
        self.assertIn('not ready: tcg-postcopy: QEMU 11.1.0 loses TCG guests',
                      log)

    def test_required_instance_is_refused_before_anything_moves(self):
        self.assertRefusedBeforeAnythingMoved(
            self.boot(extra_specs={'postcopy:mode': 'required'}))
        self.assertIn('tcg-postcopy: QEMU 11.1.0 loses TCG guests',
                      self.stdlog.logger.output)


class TestIncapableDestination(base.PostcopyTestBase):
    WORKLOAD = base.QUIET
    HOST_FACTS = {'src': base.READY, 'dest': base.NO_USERFAULTFD}

    def test_migrates_with_precopy(self):
        self.assertNotIn(traits.POSTCOPY, self.traits('dest'))
        self.assertIn(traits.POSTCOPY, self.traits('src'))
        server = self.migrate(self.boot())
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        migration = self.hypervisor.last
        self.assertFalse(migration.postcopy_flag)
        self.assertIn('pre-copy only', self.stdlog.logger.output)
        self.assertIn('does not advertise %s' % traits.POSTCOPY,
                      self.stdlog.logger.output)

    def test_required_instance_is_refused_before_start(self):
        self.assertRefusedBeforeAnythingMoved(
            self.boot(extra_specs={'postcopy:mode': 'required'}))
        self.assertIn('requires post-copy', self.stdlog.logger.output)
        self.assertIn('Userfaultfd not available', self.stdlog.logger.output)

    def test_flavor_requiring_the_trait_is_never_scheduled_there(self):
        server = self.boot(extra_specs={
            'trait:%s' % traits.POSTCOPY: 'required'})
        self.assertEqual('src', server['OS-EXT-SRV-ATTR:host'])
        # The scheduler finds no other host with the trait.
        self.assertRefusedBeforeAnythingMoved(server)


class TestForceComplete(base.PostcopyTestBase):
    WORKLOAD = base.BUSY

    def setUp(self):
        super().setUp()
        # Only the budget would end pre-copy: the operator acts first.
        self.flags(switch_policies=['timeout'], group='postcopy')

    def _force_complete_when_running(self, server):
        self._wait_for_migration_status(server, ['running'])
        record = self.migration_record(server)
        self.api.force_complete_migration(server['id'], record['id'])

    def test_switches_to_postcopy(self):
        server = self.boot()
        self.start_migration(server)
        self._force_complete_when_running(server)
        self._wait_for_migration_status(server, ['completed'])
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(1, self.hypervisor.last.switch_requests)
        self.assertIn('(force-complete): the operator asked',
                      self.stdlog.logger.output)

    def test_a_request_while_the_migration_starts_is_kept(self):
        # Nova says "running" before its driver's monitor listens: a
        # force-complete in between used to fail on the compute host (the
        # API had answered 202) and the migration went on in pre-copy.
        # The request comes here in the middle of our planning.
        driver = self.computes['src'].driver
        plan = driver._plan_postcopy
        refused = []

        def plan_with_a_request(context, instance, *args):
            try:
                driver.live_migration_force_complete(instance)
            except Exception as error:
                refused.append(error)
            return plan(context, instance, *args)

        self.useFixture(fixtures_lib.MonkeyPatch(
            'nova_postcopy.compute.driver.PostcopyLibvirtDriver.'
            '_plan_postcopy', lambda self_, *args: plan_with_a_request(
                *args)))
        server = self.boot()
        self.start_migration(server)
        self._wait_for_migration_status(server, ['completed'])
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual([], refused)
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(1, self.hypervisor.last.switch_requests)
        self.assertIn('force-complete requested while the live migration '
                      'starts', self.stdlog.logger.output)
        self.assertIn('(force-complete): the operator asked',
                      self.stdlog.logger.output)

    def test_a_request_without_a_migration_is_refused_as_nova_does(self):
        server = self.boot()
        instance = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), server['id'])
        self.assertRaises(nova_exception.NoActiveMigrationForInstance,
                          self.computes['src'].driver.
                          live_migration_force_complete, instance)

    def test_pauses_when_postcopy_is_forbidden(self):
        server = self.boot(extra_specs={'postcopy:mode': 'forbidden'})
        self.start_migration(server)
        self._force_complete_when_running(server)
        self._wait_for_migration_status(server, ['completed'])
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        migration = self.hypervisor.last
        self.assertFalse(migration.postcopy_flag)
        self.assertEqual(0, migration.switch_requests)
        self.assertIsNotNone(migration.model.paused_at)


class TestAbort(base.PostcopyTestBase):
    WORKLOAD = base.BUSY

    def setUp(self):
        super().setUp()
        self.flags(switch_policies=['timeout'], group='postcopy')

    def test_abort_during_precopy_keeps_the_guest_on_the_source(self):
        server = self.boot()
        self.start_migration(server)
        self._wait_for_migration_status(server, ['running'])
        record = self.migration_record(server)
        self.api.delete_migration(server['id'], record['id'])
        self._wait_for_migration_status(server, ['cancelled'])
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('src', server['OS-EXT-SRV-ATTR:host'])
        migration = self.hypervisor.last
        self.assertEqual(1, migration.abort_requests)
        self.assertEqual('aborted', migration.model.state)


class TestPostcopyRecovered(base.PostcopyTestBase):
    # The link dies right after the switch (~19 s) for 20 s.
    WORKLOAD = base.BUSY + ',outage_at_s=22,outage_s=20'

    def setUp(self):
        super().setUp()
        self.flags(recovery_retry_max=1, group='postcopy')

    def test_resumed_and_completed_on_dest(self):
        server = self.migrate(self.boot())
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('completed', self.migration_record(server)['status'])
        migration = self.hypervisor.last
        self.assertEqual('completed', migration.model.state)
        self.assertIsNotNone(migration.model.resumed_at)
        # Refused while the link was down, then accepted.
        self.assertGreater(migration.resume_requests, 1)
        # The migration call and each resume on a connection of its own.
        self.assertEqual([True] * (1 + migration.resume_requests),
                         [c.closed for c in self.hypervisor.connections])
        log = self.stdlog.logger.output
        self.assertIn('recovering', log)
        self.assertIn('post-copy recovered after', log)


class TestNativeTLS(TestPostcopyRecovered):
    """Nova's live_migration_with_native_tls survives our flags."""
    LIBVIRT_OPTIONS = {'live_migration_with_native_tls': True}

    def test_postcopy_and_its_resume_go_over_tls(self):
        server = self.migrate(self.boot())
        self.assertEqual('dest', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('completed', self.migration_record(server)['status'])
        migration = self.hypervisor.last
        tls = fakelibvirt.VIR_MIGRATE_TLS
        self.assertTrue(migration.flags & tls)
        self.assertTrue(migration.postcopy_flag)
        self.assertIsNotNone(migration.model.postcopy_started_at)
        self.assertTrue(migration.resume_flags)
        for flags in migration.resume_flags:
            self.assertEqual(migration.flags | fixtures.POSTCOPY_RESUME,
                             flags)


class TestPostcopyNeverRecovered(base.PostcopyTestBase):
    # The link dies for good right after the switch.
    WORKLOAD = base.BUSY + ',outage_at_s=22,outage_s=100000'

    def setUp(self):
        super().setUp()
        self.flags(recovery_deadline=4, recovery_retry_max=1,
                   group='postcopy')

    def test_both_halves_are_left_and_the_instance_says_why(self):
        server = self.boot()
        server = self.migrate(server, 'error', 'ERROR')
        migration = self.hypervisor.last
        self.assertEqual('postcopy-paused', migration.model.state)
        self.assertGreater(migration.resume_requests, 1)
        # Nova's rollback would have destroyed the destination's domain.
        dest_conn = self.dest.driver._host.get_connection()
        src_conn = self.src.driver._host.get_connection()
        self.assertTrue(dest_conn.lookupByUUIDString(server['id']))
        self.assertTrue(src_conn.lookupByUUIDString(server['id']))
        self.assertEqual('src', server['OS-EXT-SRV-ATTR:host'])
        fault = server['fault']
        self.assertIn('memory is split between src (paused) and dest',
                      fault['message'])
        self.assertIn('--postcopy-resume', fault['message'])
        # Nova keeps 255 characters of the message; the rest, with both
        # hosts' states, is in the details and the log.
        self.assertIn('Not recovered within', fault['details'])
        self.assertIn('source paused (post-copy failed)', fault['details'])


class TestDestinationDiesInPostcopy(base.PostcopyTestBase):
    # The link dies for good right after the switch, and the destination's
    # QEMU with it.
    WORKLOAD = base.BUSY + ',outage_at_s=22,outage_s=100000'

    def setUp(self):
        super().setUp()
        self.flags(recovery_deadline=600, recovery_retry_max=1,
                   group='postcopy')
        self.hypervisor.dest_dies = True

    def test_recovery_stops_at_once_and_the_instance_says_why(self):
        server = self.migrate(self.boot(), 'error', 'ERROR')
        migration = self.hypervisor.last
        # Two answers that the domain is gone, not ten minutes of them.
        self.assertEqual(2, migration.resume_requests)
        src_conn = self.src.driver._host.get_connection()
        self.assertTrue(src_conn.lookupByUUIDString(server['id']))
        self.assertEqual('src', server['OS-EXT-SRV-ATTR:host'])
        fault = server['fault']
        self.assertIn('the guest stopped there', fault['message'])
        self.assertIn('source paused (post-copy failed)', fault['details'])
        log = self.stdlog.logger.output
        self.assertIn('post-copy cannot be recovered: the destination has '
                      'no domain to resume into (Domain not found', log)
        self.assertNotIn('Not recovered within', log)


class TestPostcopyFailureWithoutRecovery(base.PostcopyTestBase):
    WORKLOAD = base.BUSY + ',outage_at_s=22,outage_s=100000'
    # Debian 13's libvirt crashes on a resume: the plan has no recovery.
    HOST_FACTS = {'src': base.READY,
                  'dest': dataclasses.replace(
                      base.READY, libvirt_version=(11, 3, 0))}

    def test_no_resume_is_tried_and_both_halves_are_kept(self):
        self.assertNotIn(traits.RECOVERY, self.traits('dest'))
        server = self.migrate(self.boot(), 'error', 'ERROR')
        self.assertEqual(0, self.hypervisor.last.resume_requests)
        self.assertIn('no recovery', self.stdlog.logger.output)
        self.assertIn('Recovery was not available', server['fault']['details'])
        dest_conn = self.dest.driver._host.get_connection()
        self.assertTrue(dest_conn.lookupByUUIDString(server['id']))
