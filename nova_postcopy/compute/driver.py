# SPDX-License-Identifier: Apache-2.0
"""``PostcopyLibvirtDriver``: Nova 34's libvirt driver with nova-postcopy.

What changes against ``LibvirtDriver``, and nothing else:

* Post-copy is decided per migration by :func:`negotiate.negotiate` over
  this host's probe, the destination's advertised traits and the instance
  (devices, memory backing, ``postcopy:mode``), not host-wide; the flags and
  the post-copy bandwidth come from that plan. ``[libvirt]
  live_migration_permit_post_copy`` stays the operator's host-wide
  permission.
* The engine's :class:`~nova_postcopy.monitor.MigrationMonitor` replaces
  Nova's completion-timeout loop; :class:`guest_job.NovaGuestJob` keeps
  Nova's duties (downtime steps, stats, force-complete, unpause).
* A failed post-copy is never rolled back: Nova's rollback would destroy
  the destination domain, the only one running the guest.
* Readiness is advertised as placement traits (:mod:`traits`).
* On the destination, an incoming post-copy's connections get TCP
  keepalive (:mod:`incoming`), so that after a cut both halves pause and
  the source can resume.
"""

import dataclasses
import sys
import threading
import time

from nova.compute import utils as compute_utils
from nova.compute import vm_states
from nova import exception as nova_exception
from nova import objects
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import migration as libvirt_migrate
from oslo_log import log as logging

from nova_postcopy import capabilities
from nova_postcopy.compute import failure
from nova_postcopy.compute import guest_job
from nova_postcopy.compute import incoming
from nova_postcopy.compute import nova_options
from nova_postcopy.compute import planned as planned_mod
from nova_postcopy.compute import readiness
from nova_postcopy.compute import startup
from nova_postcopy.compute import traits
from nova_postcopy import conf as np_conf
from nova_postcopy import exception
from nova_postcopy import instance_mode
from nova_postcopy import monitor
from nova_postcopy import negotiate
from nova_postcopy.policies import base
from nova_postcopy import privileged
from nova_postcopy import probe
from nova_postcopy import recovery

LOG = logging.getLogger(__name__)
CONF = libvirt_driver.CONF

IMAGE_MODE_KEY = 'image_' + instance_mode.IMAGE_KEY


def _libvirt():
    # Nova's module global: the real binding, or fakelibvirt in tests.
    return libvirt_driver.libvirt


class NovaClock:
    """Wall time as Nova's monitor reads it (``time.time``/``sleep``)."""

    def now(self):
        return time.time()

    def sleep(self, seconds):
        time.sleep(seconds)


class PostcopyLibvirtDriver(libvirt_driver.LibvirtDriver):
    """Load with ``compute_driver = postcopy.PostcopyLibvirtDriver``."""

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only)
        self._postcopy_migrations = {}
        # Force-complete requests that arrived while a migration was
        # starting, before Nova's monitor listens (see
        # live_migration_force_complete).
        self._starting_migrations = set()
        self._early_force_complete = set()
        self._force_complete_lock = threading.Lock()
        # On a destination: the keepalive of incoming post-copies.
        self._incoming = incoming.IncomingWatches(
            self._host, _libvirt,
            lambda *args: privileged.keep_incoming_alive(*args), NovaClock(),
            lambda: np_conf.CONF.postcopy.incoming_keepalive)
        self._postcopy_readiness = readiness.Readiness(
            lambda: self._postcopy_facts())

    def init_host(self, host):
        # A bad [postcopy] value stops the service here, naming the option,
        # not in the middle of somebody's migration.
        np_conf.load(other_budget=(
            '[libvirt] live_migration_completion_timeout'
            if CONF.libvirt.live_migration_completion_timeout else None))
        super().init_host(host)
        self._incoming.adopt_running()

    def process_instances_at_startup(self, context, instances):
        # A post-copy that outlived this service is finished, not reset.
        return startup.adopt(self, context, super(
            ).process_instances_at_startup(context, instances))

    # -- this host's readiness ----------------------------------------------

    def _postcopy_facts(self):
        """This host's facts: files, libvirt, and an incoming QEMU's word."""
        return readiness.host_facts(self._host)

    def _postcopy_host_report(self):
        return self._postcopy_readiness.report()

    def update_provider_tree(self, provider_tree, nodename,
                             allocations=None):
        super().update_provider_tree(provider_tree, nodename,
                                     allocations=allocations)
        self._postcopy_readiness.advertise(provider_tree, nodename)

    # -- negotiation ---------------------------------------------------------

    def _postcopy_mode(self, instance):
        """(mode, where) of the instance; bad values fail the precheck."""
        try:
            return instance_mode.resolve(
                instance.flavor.extra_specs,
                {instance_mode.IMAGE_KEY:
                 instance.system_metadata.get(IMAGE_MODE_KEY)}
                if instance.system_metadata.get(IMAGE_MODE_KEY) is not None
                else None)
        except exception.InvalidPostcopyMode as error:
            raise nova_exception.MigrationPreCheckError(reason=str(error))

    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info,
                                           dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        data = super().check_can_live_migrate_destination(
            context, instance, src_compute_info, dst_compute_info,
            block_migration, disk_over_commit)
        mode, where = self._postcopy_mode(instance)
        if mode == 'required':
            report = self._postcopy_host_report()
            if not report.postcopy_ready:
                missing = ['%s: %s (fix: %s)' % (c.name, c.why, c.remedy)
                           for c in report.checks
                           if c.name in capabilities.POSTCOPY_CHECKS
                           + capabilities.SENDING_CHECKS
                           and c.status == capabilities.FAIL]
                error = exception.PostcopyRequired(
                    instance=instance.uuid, missing='destination %s: %s' % (
                        report.facts.hostname, '; '.join(missing)))
                LOG.info('post-copy required by %s and refused: %s', where,
                         error, instance=instance)
                raise nova_exception.MigrationPreCheckError(
                    reason=str(error))
        return data

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data,
                                      block_device_info=None):
        data = super().check_can_live_migrate_source(
            context, instance, dest_check_data, block_device_info)
        mode, where = self._postcopy_mode(instance)
        if mode == 'required':
            # The destination checked itself; the source and the instance
            # are checked here, against a destination not judged again.
            not_judged = capabilities.judge(capabilities.HostFacts(
                hostname='(checked by itself)'))
            try:
                negotiate.negotiate(
                    self._postcopy_host_report(), not_judged,
                    self._instance_facts(instance, mode,
                                         data.block_migration))
            except exception.PostcopyRequired as error:
                LOG.info('post-copy required by %s and refused: %s', where,
                         error, instance=instance)
                raise nova_exception.MigrationPreCheckError(
                    reason=str(error))
        return data

    def _instance_facts(self, instance, mode, block_migration):
        guest = self._host.get_guest(instance)
        flags = self._get_migration_flags(block_migration)
        facts = probe.instance_facts(
            guest.get_xml_desc(), name=instance.uuid, mode=mode,
            paused=instance.vm_state == vm_states.PAUSED,
            parallel_connections=(
                CONF.libvirt.live_migration_parallel_connections or 1),
            tunnelled=bool(flags & _libvirt().VIR_MIGRATE_TUNNELLED),
            block_migration=bool(block_migration))
        if not facts.vpmem and self._get_vpmems(instance):
            facts = dataclasses.replace(facts, vpmem=True)
        return facts

    def _destination_report(self, context, dest):
        """The destination as placement shows it (its traits)."""
        qemu_version, found = None, set()
        try:
            node = objects.ComputeNode.get_first_node_by_host_for_old_compat(
                context, dest)
            if node.hypervisor_version:
                qemu_version = probe.version_triple(node.hypervisor_version)
            found = self.virtapi.reportclient.get_provider_traits(
                context, node.uuid).traits
        except Exception as error:  # noqa: H201 - unknown means pre-copy
            LOG.warning('could not read the post-copy traits of %s: %s; '
                        'planning without post-copy', dest, error)
        return traits.report_from_traits(dest, found, qemu_version)

    def _plan_postcopy(self, context, instance, dest, migrate_data):
        mode, where = self._postcopy_mode(instance)
        block_migration = migrate_data.block_migration
        flags = self._get_migration_flags(block_migration)
        try:
            facts = self._instance_facts(instance, mode, block_migration)
        except Exception as error:  # noqa: H201 - never break a migration
            facts = None
            unknown = 'could not inspect the instance (%r)' % error
        if facts is None and mode != 'forbidden':
            plan = negotiate.Plan(False, False, False, 0, (unknown,))
            if mode == 'required':
                raise exception.PostcopyRequired(instance=instance.uuid,
                                                 missing=unknown)
        elif (mode != 'forbidden'
                and not self._is_post_copy_enabled(flags)):
            plan = negotiate.Plan(False, False, False, 0, (
                '[libvirt] live_migration_permit_post_copy is False on '
                'this host',))
            if mode == 'required':
                raise exception.PostcopyRequired(
                    instance=instance.uuid, missing=plan.reasons[0])
        else:
            plan = negotiate.negotiate(
                self._postcopy_host_report(),
                self._destination_report(context, dest),
                facts or negotiate.InstanceFacts(mode=mode),
                bandwidth_mibs=np_conf.CONF.postcopy.postcopy_bandwidth_mibs)
        LOG.info('live migration to %s: %s (mode %s from %s)', dest,
                 plan.summary(), mode, where, instance=instance)
        return planned_mod.Migration(plan=plan, mode=mode,
                                     flags_postcopy=plan.postcopy)

    # -- the migration -------------------------------------------------------

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration=False,
                       migrate_data=None):
        # Nova's own tests pass a dict for the instance.
        self._starting_migrations.add(instance['uuid'])
        try:
            return super().live_migration(
                context, instance, dest, post_method, recover_method,
                block_migration, migrate_data)
        finally:
            with self._force_complete_lock:
                self._starting_migrations.discard(instance['uuid'])
                self._early_force_complete.discard(instance['uuid'])

    def live_migration_force_complete(self, instance):
        """Keep a force-complete that arrives before the monitor listens.

        Nova sets the migration ``running`` before it calls the driver,
        and its driver queues force-complete only once its monitor
        started; in between (our plan, Nova's set-up: 0.2 s on the lab
        cloud) the request fails on the compute host while the API said
        202, and the migration goes on as if nobody asked. Here it waits
        for the monitor instead.
        """
        with self._force_complete_lock:
            try:
                return super().live_migration_force_complete(instance)
            except nova_exception.NoActiveMigrationForInstance:
                if instance['uuid'] not in self._starting_migrations:
                    raise
                self._early_force_complete.add(instance['uuid'])
        LOG.info('force-complete requested while the live migration '
                 'starts: applied once pre-copy runs', instance=instance)

    def _deliver_early_force_complete(self, instance):
        with self._force_complete_lock:
            self._starting_migrations.discard(instance['uuid'])
            if instance['uuid'] in self._early_force_complete:
                self._early_force_complete.discard(instance['uuid'])
                self.active_migrations[instance['uuid']].append(
                    'force-complete')

    def _live_migration(self, context, instance, dest, post_method,
                        recover_method, block_migration, migrate_data):
        try:
            planned = self._plan_postcopy(context, instance, dest,
                                          migrate_data)
        except (exception.PostcopyRequired,
                nova_exception.MigrationPreCheckError) as error:
            # Nothing moved: Nova's own rollback is exactly right.
            LOG.error('live migration refused before it started: %s', error,
                      instance=instance)
            compute_utils.add_instance_fault_from_exc(
                context, instance, error, sys.exc_info())
            recover_method(context, instance, dest, migrate_data)
            return
        self._postcopy_migrations[instance.uuid] = planned
        try:
            super()._live_migration(context, instance, dest, post_method,
                                    recover_method, block_migration,
                                    migrate_data)
        finally:
            self._postcopy_migrations.pop(instance.uuid, None)

    def migration_connection(self):
        """A new connection to this host's libvirtd, as Nova opens its own.

        For the calls that wait the whole migration (the migration call, a
        post-copy resume): see :func:`nova_postcopy.libvirt_api.
        own_connection`.
        """
        return self._host._connect(self._host._uri, False)

    def _live_migration_operation(self, context, instance, dest,
                                  block_migration, migrate_data, guest,
                                  device_names):
        planned = self._postcopy_migrations.get(instance.uuid)
        if planned is not None:
            planned_guest = type(guest)(planned_mod.PlannedDomain(
                guest._domain, planned, instance, self.migration_connection))
            guest = planned_guest
        try:
            super()._live_migration_operation(
                context, instance, dest, block_migration, migrate_data,
                guest, device_names)
        except _libvirt().libvirtError as error:
            job = getattr(planned, 'job', None)
            if job is not None and job.cancel_requested:
                # libvirt reports a cancelled job as the call's error; the
                # monitor rolls back and records "cancelled".
                LOG.info('migration cancelled as requested: %s', error,
                         instance=instance)
                return
            if job is not None and job.memory_split():
                # Not the end: the monitor hands the failed post-copy to
                # recovery, and reports it if that fails too.
                LOG.warning('post-copy interrupted: %s', error,
                            instance=instance)
                return
            raise

    def _live_migration_monitor(self, context, instance, guest, dest,
                                post_method, recover_method, block_migration,
                                migrate_data, future, disk_paths):
        conf = np_conf.CONF.postcopy
        migration = migrate_data.migration
        planned = self._postcopy_migrations.get(instance.uuid)
        data_gib = self._live_migration_data_gb(instance, disk_paths)
        if planned is not None:
            postcopy_allowed = planned.flags_postcopy
        else:
            # Called without a plan (as Nova's own tests do): Nova's rule.
            postcopy_allowed = self._is_post_copy_enabled(
                self._get_migration_flags(migrate_data.block_migration))
        # vPMEM does not support post-copy.
        postcopy_allowed = postcopy_allowed and not bool(
            self._get_vpmems(instance))
        context_ = base.MigrationContext(
            budget_s=nova_options.precopy_budget_s(data_gib),
            max_downtime_ms=CONF.libvirt.live_migration_downtime,
            postcopy_allowed=postcopy_allowed)
        clock = NovaClock()
        job = guest_job.NovaGuestJob(
            self, context, instance, guest, migration, future,
            list(libvirt_migrate.downtime_steps(data_gib)), clock,
            CONF.libvirt.live_migration_monitor_interval, _libvirt(),
            conf.poll_interval)
        rules = nova_options.policy_chain(conf)
        watcher = monitor.MigrationMonitor(
            rules, context_, clock, poll_interval=conf.poll_interval,
            name='instance %s' % instance.uuid, set_downtime=False,
            recovery=self._recovery(instance, dest, planned, clock, conf))
        if planned is not None:
            planned.job = job
        self._deliver_early_force_complete(instance)
        try:
            outcome = watcher.run(job)
        finally:
            job.close()
        try:
            self._after_monitor(context, instance, guest, dest, post_method,
                                recover_method, block_migration,
                                migrate_data, job, outcome)
        finally:
            self._clear_empty_migration(instance)

    def _recovery(self, instance, dest, planned, clock, conf):
        """What resumes this migration's post-copy after a network failure.

        None where nothing can: a destination libvirt that crashes on
        resume, versions too old, or recovery switched off.
        """
        if planned is None or recovery.unavailable(conf, planned.plan):
            return None

        def build(job):
            job.migrate_call = planned.migrate_call
            LOG.warning('post-copy to %s failed: recovering (resuming with '
                        'backoff for up to %d s); the guest runs on %s and '
                        'neither half will be destroyed', dest,
                        conf.recovery_deadline, dest, instance=instance)
            return recovery.from_conf(job, conf, clock,
                                      'instance %s' % instance.uuid,
                                      self._resume_command(instance, dest))
        return build

    def _resume_command(self, instance, dest):
        return ('on %s: virsh migrate --live --p2p --postcopy '
                '--postcopy-resume %s %s' % (
                    self._host.get_hostname(), instance.name,
                    self._live_migration_uri(dest)))

    def _after_monitor(self, context, instance, guest, dest, post_method,
                       recover_method, block_migration, migrate_data, job,
                       outcome):
        if outcome.result in ('converged', 'postcopy'):
            post_method(context, instance, dest, block_migration,
                        migrate_data)
        elif outcome.result == 'postcopy-failed':
            self._postcopy_failed(context, instance, dest, migrate_data, job,
                                  outcome)
        else:
            if outcome.result == 'aborted':
                status = {'migration_status': 'cancelled'}
            else:
                LOG.error('Migration operation has aborted',
                          instance=instance)
                status = {}
            libvirt_migrate.run_recover_tasks(
                self._host, guest, instance, job.on_migration_failure)
            recover_method(context, instance, dest, migrate_data, **status)

    def _postcopy_failed(self, context, instance, dest, migrate_data, job,
                         outcome):
        planned = self._postcopy_migrations.get(instance.uuid)
        failure.report(context, instance, self._host.get_hostname(), dest,
                       self._live_migration_uri(dest), job, outcome,
                       planned.plan if planned else None)

    # -- the destination's part ----------------------------------------------

    def pre_live_migration(self, context, instance, block_device_info,
                           network_info, disk_info, migrate_data):
        result = super().pre_live_migration(
            context, instance, block_device_info, network_info, disk_info,
            migrate_data)
        self._incoming.start(instance.uuid)
        return result

    def post_live_migration_at_destination(self, context, instance,
                                           network_info,
                                           block_migration=False,
                                           block_device_info=None):
        self._incoming.stop(instance.uuid)
        return super().post_live_migration_at_destination(
            context, instance, network_info, block_migration,
            block_device_info)

    def rollback_live_migration_at_destination(self, context, instance,
                                               network_info,
                                               block_device_info,
                                               destroy_disks=True,
                                               migrate_data=None):
        self._incoming.stop(instance.uuid)
        return super().rollback_live_migration_at_destination(
            context, instance, network_info, block_device_info,
            destroy_disks=destroy_disks, migrate_data=migrate_data)

    def live_migration_abort(self, instance):
        planned = self._postcopy_migrations.get(instance['uuid'])
        job = getattr(planned, 'job', None)
        if job is not None and (job.postcopy_started
                                or job.ending == 'postcopy-failed'):
            # Aborting now would lose the guest: it runs on the destination.
            LOG.warning('not aborting the migration: it is in post-copy and '
                        'the guest runs on the destination',
                        instance=instance)
            return
        if job is not None:
            job.cancel_requested = True
        super().live_migration_abort(instance)
