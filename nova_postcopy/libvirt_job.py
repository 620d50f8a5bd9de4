# SPDX-License-Identifier: Apache-2.0
"""The job port over a libvirt domain.

The migration call (``virDomainMigrateToURI3``) blocks until the end, so it
runs in a thread; the monitor reads statistics and events from here. What
libvirt tells only through events (post-copy started, pass ended, job
completed with its final statistics) is turned into
:class:`nova_postcopy.jobs.JobEvent`.
"""

import queue
import threading
import time

from oslo_log import log as logging

from nova_postcopy import domain_states
from nova_postcopy import jobs
from nova_postcopy import libvirt_api
from nova_postcopy import recovery

LOG = logging.getLogger(__name__)
# The binding, once a job is made (libvirt_api imports it lazily).
libvirt = None

PROBE_SECONDS = 1
DEST_CHECK_S = 1.0  # how often, in post-copy, the destination is asked
DEST_FAILED = (domain_states.RUNNING, domain_states.RUNNING_POSTCOPY_FAILED)


class LibvirtJob:
    """One outgoing migration of ``domain`` over ``connection``.

    :param connection: an open connection to the source host.
    :param domain: the virDomain to migrate.
    :param dest_uri: the destination as the source libvirtd reaches it
        (peer to peer).
    :param params: virDomainMigrateToURI3 parameters.
    :param flags: VIR_MIGRATE_* flags.
    :param probe_dirty_rate: measure the guest's dirty rate for 1 s first
        (QEMU's calc-dirty-rate), for the forecast policy.
    :param dest_connection: a connection to the destination as this
        process reaches it, to report its half after a post-copy failure.
    :param connect: ``() -> connection`` to the source's daemon, for the
        migration call's own connection (:func:`libvirt_api.
        own_connection`); None shares ``connection``.
    """

    def __init__(self, connection, domain, dest_uri, params, flags,
                 probe_dirty_rate=True, dest_connection=None, connect=None):
        global libvirt
        if libvirt is None:
            libvirt = libvirt_api.import_libvirt()
        self.dest_connection = dest_connection
        self.connection = connection
        self.connect = connect
        self.domain = domain
        self.dest_uri = dest_uri
        self.params = params
        self.flags = flags
        self.probe_dirty_rate = probe_dirty_rate
        self.probe = {}
        self.error = None
        self.aborted = False
        self.switch_requested = False
        # The operator was told that Ctrl-C cannot abort a post-copy.
        self.told_in_postcopy = False
        # The guest was paused here so that pre-copy converges; a failed or
        # aborted migration resumes it (as Nova does).
        self.paused = False
        self._events = queue.Queue()
        self._iterations = queue.Queue()
        self._completed = None
        self._postcopy = False
        self._downtime_ms = None
        self._started = None
        self._callbacks = []
        self._thread = None
        self._dest_checked = 0.0

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        if self.probe_dirty_rate:
            self.probe = self._measure_dirty_rate()
        self._register_events()
        self._started = time.monotonic()
        threading.Thread(target=self._read_iterations, daemon=True,
                         name='migration-iterations').start()
        self._thread = threading.Thread(target=self._migrate, daemon=True,
                                        name='migration')
        self._thread.start()

    def attach(self):
        """Watch a migration started elsewhere, without starting one.

        For a failed post-copy left paused, to resume it.
        """
        self._register_events()
        self._started = time.monotonic()
        self._postcopy = True

    def close(self):
        for callback_id in self._callbacks:
            try:
                self.connection.domainEventDeregisterAny(callback_id)
            except libvirt.libvirtError:
                pass
        self._callbacks = []
        self._iterations.put(None)

    def _now(self):
        return time.monotonic() - self._started

    def _migrate(self, flags=None):
        try:
            with libvirt_api.own_connection(
                    self.connect, self.domain, libvirt.libvirtError) as domain:
                domain.migrateToURI3(self.dest_uri, self.params,
                                     self.flags if flags is None else flags)
        except libvirt.libvirtError as error:
            self.error = error
            kind = domain_states.failed_ending(
                self.domain_state(), self._postcopy or self.switch_requested,
                self.aborted)
            if kind != jobs.POSTCOPY_FAILED and self.paused:
                self._unpause()
            self._events.put(jobs.JobEvent(kind, self._now(),
                                           detail=str(error)))
            return
        returned = self._now()
        # The call returns once the destination runs the guest; give the
        # JOB_COMPLETED event, which carries the final figures, a moment.
        deadline = time.monotonic() + 2.0
        while self._completed is None and time.monotonic() < deadline:
            time.sleep(0.05)
        # libvirt's own clock of the job, when it said, else the return.
        ended = (self._completed or {}).get('time_elapsed')
        self._events.put(jobs.JobEvent(
            jobs.COMPLETED, ended / 1000.0 if ended else returned))

    def _measure_dirty_rate(self):
        try:
            self.domain.startDirtyRateCalc(PROBE_SECONDS, 0)
        except (libvirt.libvirtError, AttributeError) as error:
            LOG.info('dirty-rate sampling not available: %s', error)
            return {}
        deadline = time.monotonic() + PROBE_SECONDS + 3
        time.sleep(PROBE_SECONDS)
        while time.monotonic() < deadline:
            stats = self.connection.domainListGetStats(
                [self.domain], libvirt.VIR_DOMAIN_STATS_DIRTYRATE)[0][1]
            if stats.get('dirtyrate.calc_status') == 2:
                return {'dirtyrate.megabytes_per_second':
                        stats.get('dirtyrate.megabytes_per_second', 0)}
            time.sleep(0.1)
        return {}

    # -- events ------------------------------------------------------------

    def _register_events(self):
        register = self.connection.domainEventRegisterAny
        self._callbacks = [
            register(self.domain, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                     self._on_lifecycle, None),
            register(self.domain,
                     libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
                     self._on_iteration, None),
            register(self.domain, libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
                     self._on_job_completed, None),
        ]

    def _on_lifecycle(self, conn, dom, event, detail, opaque):
        if (event == libvirt.VIR_DOMAIN_EVENT_SUSPENDED
                and detail == libvirt.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY):
            self._postcopy = True
            self._events.put(jobs.JobEvent(jobs.POSTCOPY_STARTED,
                                           self._now()))
        elif (event == libvirt.VIR_DOMAIN_EVENT_SUSPENDED
              and detail
              == libvirt.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED):
            LOG.warning('%s: post-copy failed on the source', dom.name())

    def _on_iteration(self, conn, dom, iteration, opaque):
        # Reading statistics from the event loop's own thread would stall
        # it; a worker reads them at once instead.
        self._iterations.put(iteration)

    def _read_iterations(self):
        while True:
            iteration = self._iterations.get()
            if iteration is None:
                return
            stats = self.stats()
            if stats:
                self._events.put(jobs.JobEvent(jobs.ITERATION, self._now(),
                                               stats=stats))

    def _on_job_completed(self, conn, dom, params, opaque):
        self._completed = dict(params)

    # -- the job port ------------------------------------------------------

    def stats(self):
        try:
            stats = self.domain.jobStats()
        except libvirt.libvirtError:
            return None
        if stats.get('type') != libvirt_api.JOB_UNBOUNDED:
            return None
        if self._downtime_ms is not None:
            self._apply_downtime()
        stats.update(self.probe)
        return stats

    def poll_events(self):
        if self._postcopy and self.running():
            self._follow_destination_failure()
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def start_postcopy(self):
        self.switch_requested = True
        try:
            self.domain.migrateStartPostCopy(0)
        except libvirt.libvirtError as error:
            raise jobs.JobError(str(error))

    def set_max_downtime(self, milliseconds):
        # Only a running job accepts it; kept until one does.
        self._downtime_ms = milliseconds
        self._apply_downtime()

    def _apply_downtime(self):
        try:
            self.domain.migrateSetMaxDowntime(self._downtime_ms, 0)
            self._downtime_ms = None
        except libvirt.libvirtError:
            pass

    def abort(self):
        self.aborted = True
        try:
            self.domain.abortJob()
        except libvirt.libvirtError as error:
            raise jobs.JobError(str(error))

    def pause(self):
        try:
            self.domain.suspend()
        except libvirt.libvirtError as error:
            raise jobs.JobError(str(error))
        self.paused = True

    def _unpause(self):
        try:
            self.domain.resume()
            LOG.info('%s: the migration did not complete; the guest, paused '
                     'to converge, runs again on the source',
                     self.domain.name())
        except libvirt.libvirtError as error:
            LOG.error('%s: the migration did not complete and the guest, '
                      'paused to converge, could not be resumed: %s. Run: '
                      'virsh resume %s', self.domain.name(), error,
                      self.domain.name())
        self.paused = False

    def domain_state(self):
        """(state, reason) of the source domain; None when it is gone."""
        return libvirt_api.state_of(self.domain)

    def in_postcopy(self):
        """Post-copy has begun: abort is no longer possible."""
        return self._postcopy or (self.switch_requested and self.domain_state()
                                  in (domain_states.IN_POSTCOPY,
                                      domain_states.POSTCOPY_FAILED))

    def completed_stats(self):
        return self._completed

    def wait(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)

    def running(self):
        """The migration call has not returned yet."""
        return self._thread is not None and self._thread.is_alive()

    # -- the recovery port -------------------------------------------------

    def recovery_state(self):
        """Judged from the source domain, not from the call's error."""
        if self.running():
            # The original call (or a resume) has not given up yet; with a
            # short outage QEMU may still finish by itself.
            return recovery.MIGRATING
        try:
            state = tuple(self.domain.state())
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return recovery.COMPLETED
            return recovery.UNKNOWN
        if state == domain_states.POSTCOPY_FAILED:
            return self._destination_recovery_state()
        if state[0] == domain_states.SHUTOFF:
            return recovery.COMPLETED
        return recovery.MIGRATING

    def _destination_recovery_state(self):
        """Resume only once the destination has seen the failure too.

        A destination still in post-copy (its QEMU has not noticed the cut)
        is not ready to be resumed into: libvirt then waits on that QEMU for
        ever (seen on the lab). Nor can it be paused on demand: libvirt 12.8
        refuses ``VIR_DOMAIN_ABORT_JOB_POSTCOPY`` there while its Finish
        phase holds the job, i.e. until its QEMU notices (measured, see
        ``doc/source/user/recovery.rst``). When it cannot be asked, the
        resume is tried.
        """
        state = self._dest_state()
        if state is None or state == DEST_FAILED:
            return recovery.PAUSED
        if state == (domain_states.RUNNING, domain_states.RUNNING_MIGRATED):
            return recovery.COMPLETED
        return recovery.MIGRATING

    def _follow_destination_failure(self):
        """The destination saw the cut first: pause the source's half too.

        The source's QEMU, sending, may take its TCP timeout to notice;
        until it does, the migration call does not return and recovery
        cannot start.
        """
        now = time.monotonic()
        if now - self._dest_checked < DEST_CHECK_S:
            return
        self._dest_checked = now
        if (self._dest_state() == DEST_FAILED
                and self.domain_state() == domain_states.IN_POSTCOPY):
            self._pause_source_postcopy()

    def _pause_source_postcopy(self):
        """VIR_DOMAIN_ABORT_JOB_POSTCOPY: QEMU's migrate-pause, libvirt 8.5.

        The migration call then returns its post-copy failure, and recovery
        starts.
        """
        name = self.domain.name()
        try:
            self.domain.abortJobFlags(libvirt_api.ABORT_JOB_POSTCOPY)
            LOG.info('%s: post-copy failed on the destination; paused the '
                     "source's post-copy so that it can be resumed at once",
                     name)
        except libvirt.libvirtError as error:
            LOG.info("%s: pausing the source's post-copy was refused (%s); "
                     'waiting for it to notice the failure', name,
                     error.get_error_message())

    def resume(self):
        """Resume with the same URI, parameters and flags."""
        self.error = None
        self._thread = threading.Thread(
            target=self._migrate, name='migration-resume', daemon=True,
            args=(self.flags | libvirt.VIR_MIGRATE_POSTCOPY_RESUME,))
        self._thread.start()
        self._thread.join(recovery.RESUME_REFUSAL_S)
        if not self._thread.is_alive() and self.error is not None:
            # Refused: drop the failure event the attempt queued.
            for event in self.poll_events():
                if event.kind != jobs.POSTCOPY_FAILED:
                    self._events.put(event)
            raise recovery.refusal(self.error, libvirt.VIR_ERR_NO_DOMAIN)

    def describe_hosts(self):
        if self.dest_connection is None:
            dest = 'not known'
        else:
            try:
                dest = libvirt_api.describe(self._lookup_dest())
            except libvirt.libvirtError as error:
                dest = ('no such domain'
                        if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
                        else 'cannot be asked (%s)'
                        % error.get_error_message())
        return 'source: %s; destination: %s' % (
            libvirt_api.describe(self.domain), dest)

    def _dest_state(self):
        """The destination domain's (state, reason); None if not known."""
        if self.dest_connection is None:
            return None
        try:
            return libvirt_api.state_of(self._lookup_dest())
        except libvirt.libvirtError:
            return None

    def _lookup_dest(self):
        return self.dest_connection.lookupByUUIDString(
            self.domain.UUIDString())
