# SPDX-License-Identifier: Apache-2.0
"""The CLI's job port on Nova's fakelibvirt: how a failed call is read.

fakelibvirt stands in for the binding (its constants and error type); the
domain is scripted, since what matters is what the port makes of the
state libvirt leaves behind.
"""

import fixtures
from nova.tests.fixtures import libvirt as fakelibvirt

from nova_postcopy import jobs
from nova_postcopy import libvirt_job
from nova_postcopy.tests.unit import base


class ScriptedDomain(object):
    """migrateToURI3 fails; the state is what libvirt left."""

    def __init__(self, state):
        self._state = list(state)
        self.resumed = 0

    def migrateToURI3(self, uri, params, flags):
        raise fakelibvirt.make_libvirtError(
            fakelibvirt.libvirtError, 'operation failed: migration failed',
            error_code=fakelibvirt.VIR_ERR_OPERATION_FAILED)

    def migrateStartPostCopy(self, flags):
        pass

    def suspend(self):
        self._state = [3, 1]

    def resume(self):
        self.resumed += 1
        self._state = [1, 5]

    def state(self):
        return self._state

    def name(self):
        return 'g1'


class FakeBindingTestCase(base.TestCase):
    """fakelibvirt as the binding both adapters import lazily."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_postcopy.libvirt_job.libvirt', fakelibvirt))
        self.useFixture(fixtures.MonkeyPatch(
            'nova_postcopy.libvirt_api.libvirt', fakelibvirt))


class TestLibvirtJobEndings(FakeBindingTestCase):

    def job(self, domain):
        job = libvirt_job.LibvirtJob(None, domain, 'qemu+tcp://b/system',
                                     {}, 0, probe_dirty_rate=False)
        job._started = 0.0
        return job

    def ending(self, job):
        job._migrate()
        return [e.kind for e in job.poll_events()]

    def test_switch_asked_and_event_late_is_a_postcopy_failure(self):
        domain = ScriptedDomain([3, 13])
        job = self.job(domain)
        job.start_postcopy()
        # The post-copy event has not arrived: the state tells.
        self.assertEqual([jobs.POSTCOPY_FAILED], self.ending(job))

    def test_a_guest_paused_to_converge_runs_again_after_a_failure(self):
        domain = ScriptedDomain([1, 1])
        job = self.job(domain)
        job.pause()
        self.assertEqual([jobs.FAILED], self.ending(job))
        self.assertEqual(1, domain.resumed)
        self.assertEqual([1, 5], domain.state())
        self.assertIn('paused to converge, runs again on the source',
                      self.log.output)

    def test_an_aborted_paused_guest_runs_again(self):
        domain = ScriptedDomain([1, 1])
        job = self.job(domain)
        job.pause()
        job.aborted = True
        self.assertEqual([jobs.CANCELLED], self.ending(job))
        self.assertEqual(1, domain.resumed)

    def test_a_split_guest_is_never_resumed_on_the_source(self):
        domain = ScriptedDomain([1, 1])
        job = self.job(domain)
        job.pause()
        job.start_postcopy()
        domain._state = [3, 13]
        self.assertEqual([jobs.POSTCOPY_FAILED], self.ending(job))
        self.assertEqual(0, domain.resumed)


class OwnConnection(object):
    """A second connection to the source: it holds the same domain."""

    def __init__(self, domain):
        self.domain = domain
        self.looked_up = []
        self.closed = False

    def lookupByUUIDString(self, uuid):
        self.looked_up.append(uuid)
        return self.domain

    def close(self):
        self.closed = True


class TestMigrationCallsOwnConnection(FakeBindingTestCase):
    """The call that waits all migration long keeps off the monitor's line.

    libvirt's client held a call made while another thread waited on the
    same connection until the next message arrived (see
    ``libvirt_api.own_connection``).
    """

    def run_call(self, connect):
        shared, own = ScriptedDomain([1, 1]), ScriptedDomain([1, 1])
        calls = []
        for domain, label in ((shared, 'shared'), (own, 'own')):
            domain.UUIDString = lambda: 'uuid-1'
            domain.migrateToURI3 = (
                lambda uri, params, flags, label=label: calls.append(label))
        job = libvirt_job.LibvirtJob(None, shared, 'qemu+tcp://b/system',
                                     {}, 0, probe_dirty_rate=False,
                                     connect=connect and (lambda: connect(
                                         own)))
        job._started = 0.0
        job._completed = {'time_elapsed': 1000}
        job._migrate()
        return calls

    def test_the_migration_call_goes_to_its_own_connection(self):
        opened = []

        def connect(own):
            opened.append(OwnConnection(own))
            return opened[-1]

        self.assertEqual(['own'], self.run_call(connect))
        self.assertEqual(['uuid-1'], opened[0].looked_up)
        self.assertTrue(opened[0].closed)

    def test_no_second_connection_shares_the_first_and_says_so(self):
        def connect(own):
            raise fakelibvirt.make_libvirtError(
                fakelibvirt.libvirtError, 'too many clients',
                error_code=fakelibvirt.VIR_ERR_INTERNAL_ERROR)

        self.assertEqual(['shared'], self.run_call(connect))
        self.assertIn('shares its libvirt connection', self.log.output)
        self.assertIn('too many clients', self.log.output)

    def test_a_connection_without_the_domain_is_closed_and_shared_used(self):
        opened = []

        def connect(own):
            connection = OwnConnection(own)

            def lookup(uuid):
                raise fakelibvirt.make_libvirtError(
                    fakelibvirt.libvirtError, 'Domain not found',
                    error_code=fakelibvirt.VIR_ERR_NO_DOMAIN)

            connection.lookupByUUIDString = lookup
            opened.append(connection)
            return connection

        self.assertEqual(['shared'], self.run_call(connect))
        self.assertTrue(opened[0].closed)
        self.assertIn('Domain not found', self.log.output)

    def test_without_connect_the_call_shares_the_connection(self):
        self.assertEqual(['shared'], self.run_call(None))
        self.assertNotIn('shares its libvirt connection', self.log.output)
