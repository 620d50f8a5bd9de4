# SPDX-License-Identifier: Apache-2.0
"""Recovery of a post-copy cut by a network failure, on the simulator."""

import testtools

from nova_postcopy import clock
from nova_postcopy import jobs
from nova_postcopy import monitor
from nova_postcopy.policies import base
from nova_postcopy.policies import chain
from nova_postcopy.policies import passes
from nova_postcopy import recovery
from nova_postcopy.sim import job as sim_job
from nova_postcopy.sim import model
from nova_postcopy.sim import workload

BUSY = 'ram_gib=16,link_gbps=10,wss_gib=4,dirty_gbps=20'


def cut_in_postcopy(outage_s):
    """A busy guest switched after its first pass (~15 s).

    The link dies at 16 s, in post-copy, for ``outage_s``.
    """
    guest = workload.Workload.parse(
        '%s,outage_at_s=16,outage_s=%g' % (BUSY, outage_s))
    virtual = clock.VirtualClock()
    job = sim_job.SimulatedJob(model.MigrationModel(guest), virtual)
    watcher = monitor.MigrationMonitor(
        chain.PolicyChain([passes.FirstPassPolicy(None)]),
        base.MigrationContext(budget_s=600), virtual)
    return job, virtual, watcher.run(job)


class TestBackoff(testtools.TestCase):
    def test_doubles_up_to_the_cap(self):
        delays = recovery.backoff(1.0, 10.0)
        self.assertEqual([1, 2, 4, 8, 10, 10],
                         [next(delays) for _ in range(6)])


class TestRecovery(testtools.TestCase):
    def test_outage_in_postcopy_pauses_both_halves(self):
        job, _, outcome = cut_in_postcopy(8)
        self.assertEqual('postcopy-failed', outcome.result)
        self.assertEqual(recovery.PAUSED, job.recovery_state())

    def test_resumes_once_the_link_is_back(self):
        job, virtual, _ = cut_in_postcopy(8)
        failed_at = virtual.now()
        result = recovery.PostcopyRecovery(job, virtual, deadline_s=60).run()
        self.assertEqual('recovered', result.result)
        self.assertEqual('completed', job.model.state)
        # Refused while the link is down, accepted within a retry of its
        # return (16 s + 8 s).
        self.assertEqual('refused', result.attempts[0].result)
        self.assertEqual('completed', result.attempts[-1].result)
        self.assertLess(job.model.resumed_at, 24 + 8 + 0.5)
        self.assertGreaterEqual(job.model.resumed_at, 24)
        self.assertGreater(virtual.now(), failed_at)

    def test_gives_up_at_the_deadline_and_leaves_both_halves(self):
        job, virtual, _ = cut_in_postcopy(10000)
        result = recovery.PostcopyRecovery(
            job, virtual, deadline_s=30, next_step='resume by hand').run()
        self.assertEqual('gave-up', result.result)
        self.assertFalse(result.succeeded)
        self.assertEqual('postcopy-paused', job.model.state)
        self.assertIn('source paused', result.hosts)
        self.assertEqual('resume by hand', result.next_step)
        self.assertGreaterEqual(result.took_s, 30)
        # The backoff keeps attempts few during a long cut.
        self.assertLess(len(result.attempts), 10)

    def test_a_migration_that_finished_by_itself_needs_no_resume(self):
        class Finished(object):
            def recovery_state(self):
                return recovery.COMPLETED

            def resume(self):
                raise AssertionError('must not resume')

        result = recovery.PostcopyRecovery(
            Finished(), clock.VirtualClock(), deadline_s=10).run()
        self.assertEqual('completed', result.result)
        self.assertEqual([], result.attempts)

    def test_waits_while_qemu_still_migrates(self):
        class StillMigrating(object):
            states = [recovery.MIGRATING] * 5 + [recovery.COMPLETED]

            def recovery_state(self):
                return self.states.pop(0)

            def resume(self):
                raise AssertionError('must not resume a running migration')

        result = recovery.PostcopyRecovery(
            StillMigrating(), clock.VirtualClock(), deadline_s=10).run()
        self.assertEqual('completed', result.result)

    def test_resume_that_fails_again_is_retried(self):
        class Flaky(object):
            def __init__(self):
                self.resumes = 0

            def recovery_state(self):
                return recovery.PAUSED

            def resume(self):
                self.resumes += 1

            def poll_events(self):
                kind = (jobs.POSTCOPY_FAILED if self.resumes < 3
                        else jobs.COMPLETED)
                return [jobs.JobEvent(kind)]

        port = Flaky()
        result = recovery.PostcopyRecovery(
            port, clock.VirtualClock(), deadline_s=60).run()
        self.assertEqual('recovered', result.result)
        self.assertEqual(3, port.resumes)
        self.assertEqual(['failed again', 'failed again', 'completed'],
                         [a.result for a in result.attempts])


class Refusing(object):
    """Paused for ever; each resume raises the next of ``errors``."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.resumes = 0

    def recovery_state(self):
        return recovery.PAUSED

    def resume(self):
        self.resumes += 1
        raise self.errors.pop(0) if self.errors else jobs.JobError('down')

    def describe_hosts(self):
        return 'source paused (post-copy failed)'


class TestDestinationGone(testtools.TestCase):
    def test_stops_when_the_destination_has_no_domain(self):
        gone = jobs.DestinationGone('Domain not found')
        port = Refusing(jobs.JobError('no route to host'), gone, gone)
        virtual = clock.VirtualClock()
        result = recovery.PostcopyRecovery(
            port, virtual, deadline_s=600, next_step='resume by hand').run()
        self.assertEqual('lost', result.result)
        self.assertFalse(result.succeeded)
        self.assertEqual(3, port.resumes)
        self.assertLess(result.took_s, 10)
        self.assertEqual(recovery.LOST_NEXT_STEP, result.next_step)
        self.assertEqual('Domain not found', result.attempts[-1].detail)

    def test_one_such_answer_is_not_enough(self):
        gone = jobs.DestinationGone('Domain not found')
        port = Refusing(gone, jobs.JobError('no route to host'), gone)
        result = recovery.PostcopyRecovery(
            port, clock.VirtualClock(), deadline_s=30).run()
        self.assertEqual('gave-up', result.result)
        self.assertGreater(port.resumes, 3)

    def test_libvirts_no_domain_is_the_destination_gone(self):
        class Error(Exception):
            def __init__(self, code):
                super().__init__('error %d' % code)
                self.code = code

            def get_error_code(self):
                return self.code

        self.assertIsInstance(recovery.refusal(Error(42), 42),
                              jobs.DestinationGone)
        other = recovery.refusal(Error(38), 42)
        self.assertIsInstance(other, jobs.JobError)
        self.assertNotIsInstance(other, jobs.DestinationGone)
        self.assertEqual('error 38', str(other))


class TestMonitorRecovers(testtools.TestCase):
    def test_the_monitor_hands_a_failed_postcopy_to_recovery(self):
        guest = workload.Workload.parse(BUSY + ',outage_at_s=16,outage_s=8')
        virtual = clock.VirtualClock()
        job = sim_job.SimulatedJob(model.MigrationModel(guest), virtual)
        watcher = monitor.MigrationMonitor(
            chain.PolicyChain([passes.FirstPassPolicy(None)]),
            base.MigrationContext(budget_s=600), virtual,
            recovery=lambda job: recovery.PostcopyRecovery(
                job, virtual, deadline_s=60))
        outcome = watcher.run(job)
        self.assertEqual('postcopy', outcome.result)
        self.assertEqual('recovered', outcome.recovery['result'])
        self.assertAlmostEqual(16, outcome.postcopy_failed_at_s, delta=1)
        self.assertGreater(outcome.total_s, 24)
