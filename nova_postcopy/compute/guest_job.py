# SPDX-License-Identifier: Apache-2.0
"""The job port over Nova's ``Guest``, with Nova's monitor duties.

Nova's ``_live_migration_monitor`` does more than decide: it steps the
max downtime, saves progress on the migration record and the instance,
serves the force-complete API through ``active_migrations`` and unpauses a
guest it paused when the migration fails. This port keeps those duties so
that the engine's :class:`~nova_postcopy.monitor.MigrationMonitor` can
replace Nova's loop. It reads the job once per poll through
``Guest.get_job_info`` (which handles libvirt's quirks) and keeps the full
statistics dict libvirt returned, which Nova's ``JobInfo`` would cut down.
"""

import collections
import queue
import threading

from nova.virt.libvirt import migration as libvirt_migrate
from oslo_log import log as logging

from nova_postcopy import domain_states
from nova_postcopy import jobs
from nova_postcopy import libvirt_api
from nova_postcopy import recovery

LOG = logging.getLogger(__name__)

POSTCOPY_STATUS = 'running (post-copy)'
_JOBINFO_KEYS = {'comp_cache': 'compression_cache',
                 'comp_bytes': 'compression_bytes',
                 'comp_pages': 'compression_pages',
                 'comp_cache_misses': 'compression_cache_misses',
                 'comp_overflow': 'compression_overflow'}


class _RecordingDomain:
    """Passes everything to the domain and keeps the last jobStats()."""

    def __init__(self, domain):
        self._domain = domain
        self.last_stats = None

    def jobStats(self, *args, **kwargs):
        self.last_stats = None
        stats = self._domain.jobStats(*args, **kwargs)
        self.last_stats = stats
        return stats

    def __getattr__(self, name):
        return getattr(self._domain, name)


class NovaGuestJob:
    """One outgoing migration as nova-compute runs it.

    :param driver: the ``LibvirtDriver`` (for ``active_migrations``,
        ``_host``).
    :param future: the migration operation thread's future.
    :param downtime_steps: Nova's ``(seconds, milliseconds)`` steps.
    :param clock: the monitor's clock; ``time_elapsed`` is taken from it
        when libvirt does not say.
    """

    def __init__(self, driver, context, instance, guest, migration, future,
                 downtime_steps, clock, monitor_interval_s, libvirt,
                 poll_interval_s):
        self.driver = driver
        self.context = context
        self.instance = instance
        self.guest = guest
        self.migration = migration
        self.future = future
        self.downtime_steps = downtime_steps
        self.clock = clock
        self.libvirt = libvirt
        self.on_migration_failure = collections.deque()
        self.switch_requested = False
        # Aborted by the monitor or through Nova's abort API.
        self.cancel_requested = False
        self.postcopy_started = False
        # Set by the operation thread, reported (once) by the monitor's.
        self._withdrawn = False
        self._withdrawal_told = False
        self.ending = None
        # Nova's progress lines and DB writes every monitor_interval_s, at
        # whatever rate the policies poll.
        self._monitor_every = max(int(monitor_interval_s / poll_interval_s),
                                  1)
        self._polls = 0
        self._downtime = None
        self._last_info_s = 0.0
        self._stats = None
        self._started = clock.now()
        self._recording = _RecordingDomain(guest._domain)
        guest._domain = self._recording
        # The migration call as the operation thread made it, for a resume:
        # (uri, params, flags), set by the driver.
        self.migrate_call = None
        self._resumed = None

    def close(self):
        self.guest._domain = self._recording._domain

    # -- reading -----------------------------------------------------------

    def withdraw_postcopy(self):
        """From the operation thread: the call goes on as pre-copy."""
        self._withdrawn = True

    def poll_events(self):
        if self._resumed is not None:
            return self._resume_events()
        self._stats = None
        info = self.guest.get_job_info()
        full = self._recording.last_stats
        events = []
        if self._withdrawn and not self._withdrawal_told:
            self._withdrawal_told = True
            events.append(jobs.JobEvent(jobs.POSTCOPY_WITHDRAWN,
                                        self._elapsed()))
        lv = self.libvirt
        if info.type == lv.VIR_DOMAIN_JOB_NONE and self.future.done():
            info.type = libvirt_migrate.find_job_type(self.guest,
                                                      self.instance)
            LOG.debug('Fixed incorrect job type to be %d', info.type,
                      instance=self.instance)
        if not self.postcopy_started and self._in_postcopy():
            self.postcopy_started = True
            events.append(jobs.JobEvent(jobs.POSTCOPY_STARTED,
                                        self._elapsed()))
        if info.type == lv.VIR_DOMAIN_JOB_NONE:
            LOG.debug('Migration not running yet', instance=self.instance)
        elif info.type == lv.VIR_DOMAIN_JOB_UNBOUNDED and (
                (self.postcopy_started or self.switch_requested)
                and self.domain_state() == domain_states.POSTCOPY_FAILED):
            # libvirt keeps a frozen job of type "unbounded" on the source
            # of a failed post-copy; the domain's state tells.
            self.ending = jobs.POSTCOPY_FAILED
        elif info.type == lv.VIR_DOMAIN_JOB_UNBOUNDED:
            self._stats = self._stats_dict(info, full)
            if self._operator_asked_to_complete():
                events.append(jobs.JobEvent(jobs.FORCE_COMPLETE,
                                            self._elapsed()))
            self._nova_duties(info)
        elif info.type == lv.VIR_DOMAIN_JOB_COMPLETED:
            LOG.info('Migration operation has completed',
                     instance=self.instance)
            self.ending = jobs.COMPLETED
        elif info.type == lv.VIR_DOMAIN_JOB_FAILED:
            # A cancel: the job is gone before its type said "cancelled".
            self.ending = domain_states.failed_ending(
                self.domain_state(), self.postcopy_asked(),
                self.cancel_requested)
        elif info.type == lv.VIR_DOMAIN_JOB_CANCELLED:
            LOG.warning('Migration operation was cancelled',
                        instance=self.instance)
            self.ending = jobs.CANCELLED
        else:
            LOG.warning('Unexpected migration job type: %d', info.type,
                        instance=self.instance)
        if self.ending:
            events.append(jobs.JobEvent(self.ending, self._elapsed()))
        return events

    def stats(self):
        return self._stats

    def completed_stats(self):
        return None

    def _elapsed(self):
        return self.clock.now() - self._started

    def _stats_dict(self, info, full):
        stats = {_JOBINFO_KEYS.get(key, key): value
                 for key, value in vars(info).items()}
        if full and full.get('type') == info.type:
            stats.update(full)
        if not stats.get('time_elapsed'):
            stats['time_elapsed'] = int(self._elapsed() * 1000)
        return stats

    def _in_postcopy(self):
        if self.migration.status == POSTCOPY_STATUS and (
                not self.switch_requested):
            # Switched before we watched (or by Nova's own code).
            return True
        return (self.switch_requested
                and self.domain_state() == domain_states.IN_POSTCOPY)

    def postcopy_asked(self):
        return (self.postcopy_started or self.switch_requested
                or self.migration.status == POSTCOPY_STATUS)

    def memory_split(self):
        """After a failure: does the guest's memory live on both hosts?

        If not, Nova's rollback is right.
        """
        return domain_states.memory_split(self.domain_state(),
                                          self.postcopy_asked())

    def domain_state(self):
        """(state, reason) of the source domain; reason None if unknown."""
        domain = self._recording
        try:
            if hasattr(domain._domain, 'state'):
                state = domain.state()
                return (state[0], state[1])
            # Bindings without virDomainGetState: running or not is all
            # that can be told.
            return (domain_states.RUNNING if domain.isActive() else 0, None)
        except self.libvirt.libvirtError:
            return None  # the domain went away

    # -- Nova's duties ------------------------------------------------------

    def _operator_asked_to_complete(self):
        """Drain ``active_migrations`` as Nova's ``run_tasks`` does."""
        tasks = self.driver.active_migrations.get(self.instance.uuid)
        asked = False
        while tasks:
            task = tasks.popleft()
            if task == 'force-complete':
                asked = True
            else:
                LOG.warning("Unknown migration task '%(task)s'",
                            {'task': task}, instance=self.instance)
        return asked

    def _nova_duties(self, info):
        elapsed = self._elapsed()
        self._downtime = libvirt_migrate.update_downtime(
            self.guest, self.instance, self._downtime, self.downtime_steps,
            elapsed)
        if self._polls % self._monitor_every == 0:
            remaining = 100
            if info.memory_total:
                remaining = round(info.memory_remaining * 100
                                  / info.memory_total)
            libvirt_migrate.save_stats(self.instance, self.migration, info,
                                       remaining)
            log = LOG.debug
            if elapsed - self._last_info_s >= 30:
                log = LOG.info
                self._last_info_s = elapsed
            log('Migration running for %(secs)d secs, memory %(remaining)d%% '
                'remaining (bytes processed=%(processed)d, '
                'remaining=%(left)d, total=%(total)d)',
                {'secs': elapsed, 'remaining': remaining,
                 'processed': info.memory_processed,
                 'left': info.memory_remaining, 'total': info.memory_total},
                instance=self.instance)
        self._polls += 1

    # -- controls -----------------------------------------------------------

    def start_postcopy(self):
        try:
            self.guest.migrate_start_postcopy()
        except self.libvirt.libvirtError as error:
            raise jobs.JobError(str(error))
        self.switch_requested = True
        # What Nova's trigger_postcopy_switch records: the lifecycle event
        # of the switch finds the migration by it to activate the
        # destination's port bindings early.
        self.migration.status = POSTCOPY_STATUS
        self.migration.save()

    def set_max_downtime(self, milliseconds):
        try:
            self.guest.migrate_configure_max_downtime(milliseconds)
        except self.libvirt.libvirtError as error:
            LOG.debug('max downtime not set: %s', error,
                      instance=self.instance)

    def abort(self):
        self.cancel_requested = True
        try:
            self.guest.abort_job()
        except self.libvirt.libvirtError as error:
            raise jobs.JobError(str(error))

    def pause(self):
        try:
            self.guest.pause()
        except self.libvirt.libvirtError as error:
            raise jobs.JobError(str(error))
        # As Nova: a guest paused to converge is resumed if it fails.
        self.on_migration_failure.append('unpause')

    # -- the recovery port -------------------------------------------------

    def recovery_state(self):
        """Judged from the source domain, not from the call's error."""
        if self._resumed is not None and self._resumed.is_alive():
            return recovery.MIGRATING
        if self._resumed is None and not self.future.done():
            # The original call has not given up: QEMU may still finish.
            return recovery.MIGRATING
        state = self.domain_state()
        if state is None or state[0] == domain_states.SHUTOFF:
            return recovery.COMPLETED
        if state == domain_states.POSTCOPY_FAILED:
            return recovery.PAUSED
        return recovery.MIGRATING

    def resume(self):
        """The same call with VIR_MIGRATE_POSTCOPY_RESUME, in a thread."""
        if self.migrate_call is None:
            raise jobs.JobError('the migration call is not known')
        uri, params, flags = self.migrate_call
        flags |= getattr(self.libvirt, 'VIR_MIGRATE_POSTCOPY_RESUME', 1 << 19)
        result = {'queue': queue.Queue()}

        def call():
            try:
                with libvirt_api.own_connection(
                        self.driver.migration_connection,
                        self._recording._domain,
                        self.libvirt.libvirtError) as domain:
                    domain.migrateToURI3(uri, params=params, flags=flags)
                result['queue'].put((jobs.COMPLETED, ''))
            except self.libvirt.libvirtError as error:
                result['error'] = error
                result['queue'].put((jobs.POSTCOPY_FAILED, str(error)))

        thread = threading.Thread(target=call, name='postcopy-resume',
                                  daemon=True)
        thread.start()
        thread.join(recovery.RESUME_REFUSAL_S)
        if not thread.is_alive():
            kind, detail = result['queue'].get()
            if kind != jobs.COMPLETED:
                raise recovery.refusal(result['error'],
                                       self.libvirt.VIR_ERR_NO_DOMAIN)
            result['queue'].put((kind, detail))
        thread.results = result['queue']
        self._resumed = thread

    def _resume_events(self):
        try:
            kind, detail = self._resumed.results.get_nowait()
        except queue.Empty:
            return []
        self._resumed = None if kind != jobs.COMPLETED else self._resumed
        return [jobs.JobEvent(kind, self._elapsed(), detail=detail)]

    def describe_hosts(self):
        return 'source %s' % domain_states.describe(self.domain_state())
