# SPDX-License-Identifier: Apache-2.0
from nova_postcopy import clock
from nova_postcopy import jobs
from nova_postcopy import monitor
from nova_postcopy.policies import base as policy_base
from nova_postcopy.policies import chain
from nova_postcopy.sim import job as sim_job
from nova_postcopy.sim import model
from nova_postcopy.sim import workload
from nova_postcopy.tests.unit import base

GIB = base.GIB
Action = policy_base.Action


class Counting(policy_base.SwitchPolicy):
    """Switches from ``at_s`` on and counts how often it was asked."""

    name = 'counting'

    def __init__(self, at_s):
        super().__init__(None)
        self.at_s = at_s
        self.asked = 0

    def decide(self, progress, context):
        self.asked += 1
        if progress.elapsed_s >= self.at_s:
            return self.switch('time has come')
        return self.keep_going()


class ScriptedJob:
    """A job whose post-copy starts ``lag_polls`` polls after the request.

    It refuses the first ``refusals`` requests.
    """

    def __init__(self, clock_, lag_polls=3, refusals=0):
        self.clock = clock_
        self.lag_polls = lag_polls
        self.refusals = refusals
        self.requests = 0
        self.requested_at_poll = None
        self.polls = 0
        self.pending = []

    def stats(self):
        t = self.clock.now()
        return base.stats(t, max(16 - t, 1) * GIB, t * GIB)

    def poll_events(self):
        self.polls += 1
        if (self.requested_at_poll is not None
                and self.polls == self.requested_at_poll + self.lag_polls):
            self.pending.append(jobs.JobEvent(jobs.POSTCOPY_STARTED,
                                              self.clock.now()))
        if (self.requested_at_poll is not None
                and self.polls == self.requested_at_poll + self.lag_polls
                + 4):
            self.pending.append(jobs.JobEvent(jobs.COMPLETED,
                                              self.clock.now()))
        events, self.pending = self.pending, []
        return events

    def start_postcopy(self):
        self.requests += 1
        if self.requests <= self.refusals:
            raise jobs.JobError('not yet')
        self.requested_at_poll = self.polls

    def set_max_downtime(self, milliseconds):
        self.downtime = milliseconds

    def abort(self):
        raise AssertionError('must not abort')

    def pause(self):
        raise AssertionError('must not pause')

    def completed_stats(self):
        return None


class PushingJob(ScriptedJob):
    """Once post-copy starts, its push walks all that was left."""

    postcopy = False

    def stats(self):
        if not self.postcopy:
            return super().stats()
        t = self.clock.now()
        return base.stats(t, 0, (16 + t) * GIB, iteration=2)

    def poll_events(self):
        events = super().poll_events()
        self.postcopy |= any(e.kind == jobs.POSTCOPY_STARTED for e in events)
        return events


def monitor_for(policy, virtual, **kwargs):
    return monitor.MigrationMonitor(
        chain.PolicyChain([policy]), policy_base.MigrationContext(600),
        virtual, poll_interval=1.0, **kwargs)


class TestMonitor(base.TestCase):

    def test_waits_for_the_postcopy_started_event(self):
        virtual = clock.VirtualClock()
        policy = Counting(at_s=5)
        scripted = ScriptedJob(virtual, lag_polls=3)
        outcome = monitor_for(policy, virtual).run(scripted)
        self.assertEqual('postcopy', outcome.result)
        self.assertTrue(outcome.switched)
        self.assertEqual(5, outcome.switch_at_s)
        self.assertEqual(1, scripted.requests)
        # Asked on every poll until the switch, never while waiting.
        self.assertEqual(6, policy.asked)
        self.assertEqual(4, outcome.postcopy_s)
        self.assertEqual('time has come', outcome.switch_reason)

    def test_postcopy_push_is_not_counted_as_a_pass(self):
        virtual = clock.VirtualClock()
        scripted = PushingJob(virtual)
        outcome = monitor_for(Counting(at_s=5), virtual).run(scripted)
        self.assertTrue(scripted.postcopy)
        self.assertEqual('postcopy', outcome.result)
        # Switched 5 s into a 16 s first pass: no pass over RAM completed.
        self.assertEqual([], outcome.passes)

    def test_refused_switch_is_asked_again(self):
        virtual = clock.VirtualClock()
        scripted = ScriptedJob(virtual, refusals=2)
        outcome = monitor_for(Counting(at_s=2), virtual).run(scripted)
        self.assertEqual(3, scripted.requests)
        self.assertEqual(4, outcome.switch_at_s)
        self.assertIn('refused, will ask again', self.log.output)

    def test_every_decision_logged_once(self):
        virtual = clock.VirtualClock()
        monitor_for(Counting(at_s=5), virtual, name='vm1').run(
            ScriptedJob(virtual))
        text = self.log.output
        self.assertEqual(1, text.count('vm1 at 0.0 s: continue'))
        self.assertEqual(1, text.count('switch to post-copy (counting): '
                                       'time has come'))
        self.assertEqual(1, text.count('vm1 ended: postcopy'))

    def test_horizon_leaves_the_outcome_unfinished(self):
        virtual = clock.VirtualClock()
        outcome = monitor_for(Counting(at_s=10 ** 6), virtual,
                              horizon_s=30).run(ScriptedJob(virtual))
        self.assertEqual('unfinished', outcome.result)
        self.assertIn('still running after 30 s', outcome.end_reason)


class WithdrawingJob(ScriptedJob):
    """The destination refuses post-copy at Prepare; pre-copy goes on."""

    def poll_events(self):
        events = super().poll_events()
        if self.polls == 1:
            events.append(jobs.JobEvent(jobs.POSTCOPY_WITHDRAWN, 0.0))
        if self.polls == 20:
            events.append(jobs.JobEvent(jobs.COMPLETED, self.clock.now()))
        return events


class TestPostcopyWithdrawn(base.TestCase):

    def test_no_switch_is_asked_after_the_withdrawal(self):
        virtual = clock.VirtualClock()
        scripted = WithdrawingJob(virtual)
        outcome = monitor_for(Counting(at_s=5), virtual).run(scripted)
        self.assertEqual(0, scripted.requests)
        self.assertEqual('converged', outcome.result)
        self.assertIn('post-copy not allowed for this migration; counting '
                      'would have switched', self.log.output)


class TestMonitorOnTheModel(base.TestCase):

    def run_model(self, spec, budget_action, budget_s=60,
                  progress_timeout_s=None):
        guest = workload.Workload.parse(spec)
        sim = model.MigrationModel(guest)
        virtual = clock.VirtualClock()
        rules = chain.PolicyChain([], budget_action=budget_action,
                                  progress_timeout_s=progress_timeout_s)
        watcher = monitor.MigrationMonitor(
            rules, policy_base.MigrationContext(budget_s), virtual,
            horizon_s=2000)
        return watcher.run(sim_job.SimulatedJob(sim, virtual))

    def test_abort_at_budget_leaves_the_guest_on_the_source(self):
        outcome = self.run_model(
            'ram_gib=4,link_gbps=10,wss_gib=2,dirty_gbps=30', Action.ABORT)
        self.assertEqual('aborted', outcome.result)
        self.assertFalse(outcome.switched)
        self.assertIn('budget of 60 s', outcome.end_reason)

    def test_pause_at_budget_converges_with_the_guest_stopped(self):
        outcome = self.run_model(
            'ram_gib=4,link_gbps=10,wss_gib=2,dirty_gbps=30', Action.PAUSE)
        self.assertEqual('converged', outcome.result)
        # Paused at 60 s, a pass of the working set later it completes.
        self.assertGreater(outcome.downtime_ms, 1000)
        self.assertLess(outcome.total_s, 70)

    def test_paused_guest_given_up_when_the_link_stalls(self):
        # Paused at 60 s, the link dies at 61 s for ever.
        outcome = self.run_model(
            'ram_gib=4,link_gbps=10,wss_gib=2,dirty_gbps=30,'
            'outage_at_s=61,outage_s=100000', Action.PAUSE,
            progress_timeout_s=30)
        self.assertEqual('aborted', outcome.result)
        self.assertIn('guest paused to converge, and no data moved',
                      outcome.end_reason)
        self.assertLess(outcome.total_s, 61 + 30 + 5)

    def test_paused_guest_given_up_after_a_second_budget_without_guard(self):
        outcome = self.run_model(
            'ram_gib=4,link_gbps=10,wss_gib=2,dirty_gbps=30,'
            'outage_at_s=61,outage_s=100000', Action.PAUSE)
        self.assertEqual('aborted', outcome.result)
        self.assertIn('as long as the pre-copy budget', outcome.end_reason)
        self.assertLess(outcome.total_s, 60 + 60 + 5)


class AbortOnce(policy_base.SwitchPolicy):
    name = 'abort'

    def decide(self, progress, context):
        return policy_base.Decision(Action.ABORT, 'enough', self.name)


class RefusingJob(ScriptedJob):
    """Refuses the first abort, as libvirt does while a job sets up."""

    def __init__(self, clock_):
        super().__init__(clock_)
        self.aborts = 0

    def abort(self):
        self.aborts += 1
        if self.aborts == 1:
            raise jobs.JobError('no job is active on the domain')
        self.pending.append(jobs.JobEvent(jobs.CANCELLED, self.clock.now()))


class TestRefusedAbort(base.TestCase):

    def test_refused_abort_is_asked_again(self):
        virtual = clock.VirtualClock()
        refusing = RefusingJob(virtual)
        outcome = monitor_for(AbortOnce(None), virtual).run(refusing)
        self.assertEqual('aborted', outcome.result)
        self.assertEqual(2, refusing.aborts)
        self.assertIn('abort was refused, will ask again', self.log.output)
