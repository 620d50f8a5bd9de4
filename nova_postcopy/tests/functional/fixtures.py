# SPDX-License-Identifier: Apache-2.0
"""A hypervisor migration for Nova's fakelibvirt, played by the simulator.

fakelibvirt's ``migrateToURI3`` always fails and its ``jobStats`` carries
only a type. Here a :class:`~nova_postcopy.sim.model.MigrationModel` of a
chosen workload runs behind the fake domain, ``speed`` times faster than
the wall clock: ``jobStats`` reads it, ``migrateStartPostCopy`` and
``abortJob`` steer it, and when it ends the domain appears on the
destination (completed), stays on the source (cancelled), or stays split
across both, paused on the source (post-copy failed). What the Nova driver
sees is what a real libvirt would show, in figures the lab confirmed.
"""

import threading
import time

import fixtures
from lxml import etree
from nova.tests.fixtures import libvirt as fakelibvirt

from nova_postcopy.sim import model as model_mod
from nova_postcopy.sim import workload as workload_mod

PAUSED = 3
PAUSED_POSTCOPY = 12
PAUSED_POSTCOPY_FAILED = 13
POSTCOPY_RESUME = 1 << 19   # VIR_MIGRATE_POSTCOPY_RESUME; not in fakelibvirt


class Migration:
    """One simulated migration: its model and what it was asked to do."""

    def __init__(self, model, flags, params, started):
        self.model = model
        self.flags = flags
        self.params = params
        self.started = started
        self.switch_requests = 0
        self.abort_requests = 0
        self.resume_requests = 0
        self.resume_flags = []
        self.jobstats_reads = 0
        # Post-copy lost the link: QEMU paused both halves.
        self.postcopy_failed = False

    @property
    def postcopy_flag(self):
        return bool(self.flags & fakelibvirt.VIR_MIGRATE_POSTCOPY)


class SimulatedHypervisorMigration(fixtures.Fixture):
    """Replaces fakelibvirt's migration calls with the simulator.

    :param test: the functional test, which has ``src`` and ``dest``
        computes once they started.
    :param workload: a :class:`Workload` or its ``key=value`` spec.
    :param speed: simulated seconds per wall-clock second.
    """

    def __init__(self, test, workload, speed=10.0):
        super().__init__()
        self.test = test
        self.workload = (workload_mod.Workload.parse(workload)
                         if isinstance(workload, str) else workload)
        self.speed = speed
        self.migrations = []
        # The destination's QEMU dies when post-copy fails.
        self.dest_dies = False
        self._lock = threading.Lock()
        self._by_domain = {}
        # The driver's second connections (the migration call's own).
        self.connections = []

    def _setUp(self):
        self._suspend = fakelibvirt.Domain.suspend
        self.useFixture(fixtures.MonkeyPatch(
            'nova_postcopy.compute.driver.PostcopyLibvirtDriver.'
            'migration_connection', self._second_connection))
        for name, method in (
                ('migrateToURI3', self._migrate),
                ('jobStats', self._job_stats),
                ('migrateStartPostCopy', self._start_postcopy),
                ('abortJob', self._abort),
                ('migrateSetMaxDowntime', self._set_max_downtime),
                ('suspend', self._suspend_guest),
                ('state', self._state)):
            # Plain functions, which Python binds as methods of Domain (a
            # bound method would miss the domain where the attribute is
            # new, e.g. migrateStartPostCopy).
            self.useFixture(fixtures.MonkeyPatch(
                'nova.tests.fixtures.libvirt.Domain.' + name,
                _as_function(method)))

    def _second_connection(self, driver):
        connection = SecondConnection(driver._host.get_connection())
        self.connections.append(connection)
        return connection

    @property
    def last(self):
        return self.migrations[-1] if self.migrations else None

    # -- the fake domain's methods -------------------------------------------

    def _running(self, domain):
        return self._by_domain.get(id(domain))

    def _migrate(self, domain, dconnuri, params, flags):
        if flags & POSTCOPY_RESUME:
            return self._resume(domain, flags)
        postcopy = bool(flags & fakelibvirt.VIR_MIGRATE_POSTCOPY)
        migration = Migration(
            model_mod.MigrationModel(self.workload, postcopy_enabled=postcopy),
            flags, dict(params), time.time())
        with self._lock:
            self.migrations.append(migration)
            self._by_domain[id(domain)] = migration
        domain._job_type = fakelibvirt.VIR_DOMAIN_JOB_UNBOUNDED
        return self._run(domain, migration)

    def _advance(self, migration):
        migration.model.advance_to((time.time() - migration.started)
                                   * self.speed)

    def _run(self, domain, migration):
        model = migration.model
        while True:
            with self._lock:
                self._advance(migration)
                if model.finished or model.state == 'postcopy-paused':
                    break
            time.sleep(0.02)
        if model.state == 'postcopy-paused':
            # The destination runs the guest's younger half; the source
            # keeps the rest, paused; libvirt keeps a frozen job on it.
            if not self.dest_dies:
                self._create_on_dest(migration)
            migration.postcopy_failed = True
            domain._state = PAUSED
            raise fakelibvirt.make_libvirtError(
                fakelibvirt.libvirtError,
                'operation failed: job \'migration out\' failed in '
                'post-copy phase',
                error_code=fakelibvirt.VIR_ERR_OPERATION_FAILED)
        with self._lock:
            del self._by_domain[id(domain)]
        if model.state == 'completed':
            self._create_on_dest(migration)
            domain.complete_job()
            return
        if model.state == 'aborted':
            domain._job_type = fakelibvirt.VIR_DOMAIN_JOB_CANCELLED
            raise fakelibvirt.make_libvirtError(
                fakelibvirt.libvirtError,
                'operation aborted: migration out job: canceled by client',
                error_code=fakelibvirt.VIR_ERR_OPERATION_FAILED)
        raise AssertionError('unexpected model state %s' % model.state)

    def _on_dest(self, migration):
        uuid = etree.fromstring(
            migration.params['destination_xml']).findtext('./uuid')
        try:
            return self.test.dest.driver._host.get_connection(
            ).lookupByUUIDString(uuid)
        except fakelibvirt.libvirtError:
            return None

    def _create_on_dest(self, migration):
        if self._on_dest(migration) is None:
            self.test.dest.driver._host.get_connection().createXML(
                migration.params['destination_xml'],
                'fake-createXML-doesnt-care-about-flags')

    def _resume(self, domain, flags):
        migration = self._running(domain)
        with self._lock:
            if migration is not None:
                migration.resume_requests += 1
                migration.resume_flags.append(flags)
                self._advance(migration)
                if self._on_dest(migration) is None:
                    # As libvirt 12.8 answers (lab).
                    raise fakelibvirt.make_libvirtError(
                        fakelibvirt.libvirtError,
                        "Domain not found: no domain with matching name "
                        "'%s'" % domain.name(),
                        error_code=fakelibvirt.VIR_ERR_NO_DOMAIN)
            if migration is None or not migration.model.request_resume():
                raise fakelibvirt.make_libvirtError(
                    fakelibvirt.libvirtError,
                    'unable to connect to server: No route to host',
                    error_code=fakelibvirt.VIR_ERR_OPERATION_FAILED)
            migration.postcopy_failed = False
        return self._run(domain, migration)

    def _job_stats(self, domain, flags=0):
        migration = self._running(domain)
        if migration is None:
            return {'type': domain._job_type}
        with self._lock:
            migration.jobstats_reads += 1
            stats = migration.model.job_stats()
        return stats or {'type': fakelibvirt.VIR_DOMAIN_JOB_UNBOUNDED}

    def _start_postcopy(self, domain, flags=0):
        migration = self._running(domain)
        with self._lock:
            if migration is not None:
                migration.switch_requests += 1
            if migration is None or not migration.model.request_postcopy():
                raise fakelibvirt.make_libvirtError(
                    fakelibvirt.libvirtError,
                    'Requested operation is not valid: post-copy migration '
                    'is not enabled',
                    error_code=fakelibvirt.VIR_ERR_OPERATION_INVALID)

    def _abort(self, domain, flags=0):
        migration = self._running(domain)
        if migration is None:
            return
        with self._lock:
            migration.abort_requests += 1
            if migration.model.state != 'precopy':
                raise fakelibvirt.make_libvirtError(
                    fakelibvirt.libvirtError,
                    'Requested operation is not valid: cannot abort '
                    'migration in post-copy mode',
                    error_code=fakelibvirt.VIR_ERR_OPERATION_INVALID)
            migration.model.request_abort()

    def _set_max_downtime(self, domain, downtime, flags=0):
        migration = self._running(domain)
        if migration is not None:
            with self._lock:
                migration.model.set_max_downtime(downtime)

    def _suspend_guest(self, domain):
        migration = self._running(domain)
        if migration is not None:
            with self._lock:
                migration.model.pause_guest()
        return self._suspend(domain)

    def _state(self, domain, flags=0):
        migration = self._running(domain)
        if migration is not None and migration.postcopy_failed:
            return [PAUSED, PAUSED_POSTCOPY_FAILED]
        if migration is not None and migration.model.state == 'postcopy':
            return [PAUSED, PAUSED_POSTCOPY]
        return [domain._state, 0]


class SecondConnection:
    """Another client's connection to a host's fake libvirtd.

    A real daemon shows every client the same domains; fakelibvirt's
    ``openAuth`` opens an empty host of its own, and its connections have
    no ``close``.
    """

    def __init__(self, host_connection):
        self._host_connection = host_connection
        self.closed = False

    def lookupByUUIDString(self, uuid):
        return self._host_connection.lookupByUUIDString(uuid)

    def close(self):
        self.closed = True
        return 0


def _as_function(method):
    def function(domain, *args, **kwargs):
        return method(domain, *args, **kwargs)
    return function
