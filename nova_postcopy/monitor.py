# SPDX-License-Identifier: Apache-2.0
"""The one loop that watches a migration and carries out the policies.

The same :class:`MigrationMonitor` runs inside nova-compute, in the
``nova-postcopy-migrate`` CLI and in the benchmark; only the job port and
the clock differ. What the benchmark measures is therefore what production
does.
"""

import dataclasses
import typing

from oslo_log import log as logging

from nova_postcopy import jobs
from nova_postcopy.policies import base
from nova_postcopy import progress as progress_mod

LOG = logging.getLogger(__name__)
Action = base.Action
SWITCH_EVENT_WARN_S = 30.0


@dataclasses.dataclass
class Outcome:
    """How a migration ended, in figures an operator or a benchmark needs.

    ``result`` is ``converged`` (pre-copy finished), ``postcopy`` (finished
    after a switch), ``aborted`` (cancelled in pre-copy; the guest runs on
    the source), ``failed`` (the guest runs on the source),
    ``postcopy-failed`` (the guest's memory is split between the hosts:
    recover, never roll back), or ``unfinished`` (the caller's horizon came
    first).
    """

    result: str
    total_s: float
    # Post-copy really started; a request that came after the switchover
    # had begun is harmless and leaves this False.
    switched: bool = False
    switch_reason: str = ''
    switch_policy: str = ''
    switch_at_s: typing.Optional[float] = None
    end_reason: str = ''
    downtime_ms: typing.Optional[float] = 0.0
    postcopy_s: float = 0.0
    postcopy_requests: int = 0
    bytes_sent: int = 0
    iterations: int = 0
    # The completed passes over RAM (progress.Pass), as the policies saw
    # them: what a report, a plot or a benchmark needs of the run.
    passes: list = dataclasses.field(default_factory=list)
    decisions: list = dataclasses.field(default_factory=list)
    samples: list = dataclasses.field(default_factory=list)
    # After a post-copy failure: when it failed (job seconds) and what
    # recovery did (RecoveryOutcome.as_dict()).
    postcopy_failed_at_s: typing.Optional[float] = None
    recovery: typing.Optional[dict] = None

    def as_dict(self, with_samples=False):
        data = dataclasses.asdict(self)
        if with_samples:
            data['samples'] = [dataclasses.asdict(s) for s in self.samples]
        else:
            data.pop('samples')
        return data


class MigrationMonitor:
    """Polls a job, asks the policy chain, applies what it decides.

    :param chain: a :class:`nova_postcopy.policies.chain.PolicyChain`.
    :param context: the migration's
        :class:`nova_postcopy.policies.base.MigrationContext`.
    :param clock: ``now()`` and ``sleep(seconds)``.
    :param poll_interval: seconds between polls.
    :param horizon_s: stop watching after this long (``unfinished``);
        None watches until the job ends.
    :param on_poll: called with the tracker and the latest decision after
        every poll, for progress displays.
    :param record_samples: keep every sample in the outcome.
    :param name: the migration's name in log lines.
    :param set_downtime: set the context's max downtime when the job
        starts; False where the caller steps it (Nova's downtime steps).
    :param recovery: called with the job after a post-copy failure, returns
        a :class:`nova_postcopy.recovery.PostcopyRecovery`; None leaves the
        failure to the caller.
    """

    def __init__(self, chain, context, clock, poll_interval=0.5,
                 horizon_s=None, on_poll=None, record_samples=False,
                 name='migration', set_downtime=True, recovery=None):
        self.chain = chain
        self.context = context
        self.clock = clock
        self.poll_interval = poll_interval
        self.horizon_s = horizon_s
        self.on_poll = on_poll
        self.record_samples = record_samples
        self.name = name
        self.set_downtime = set_downtime
        self.recovery = recovery

    def run(self, job):
        started = self.clock.now()
        tracker = progress_mod.ProgressTracker(self.context.max_downtime_ms)
        outcome = Outcome(result='unfinished', total_s=0.0)
        if self.set_downtime:
            job.set_max_downtime(self.context.max_downtime_ms)
        state = _State()
        while True:
            now = self.clock.now() - started
            if self._handle_events(job, tracker, outcome, state, now):
                break
            if self.horizon_s is not None and now >= self.horizon_s:
                outcome.end_reason = ('still running after %.0f s'
                                      % self.horizon_s)
                break
            decision = self._observe(job, job.stats(), tracker, outcome,
                                     state)
            if state.phase == 'switching':
                self._warn_slow_switch(state)
            if self.on_poll is not None:
                self.on_poll(tracker, decision)
            self.clock.sleep(self.poll_interval)
        if (state.ending is not None
                and state.ending.kind == jobs.POSTCOPY_FAILED):
            self._recover(job, outcome, state, started)
        self._finish(job, outcome, tracker, state, self.clock.now() - started)
        return outcome

    def _recover(self, job, outcome, state, started):
        failed = state.ending
        outcome.postcopy_failed_at_s = (failed.at_s if failed.at_s is not None
                                        else self.clock.now() - started)
        LOG.warning('%s: post-copy failed at %.1f s: %s', self.name,
                    outcome.postcopy_failed_at_s, failed.detail or 'no detail')
        if state.postcopy_started_s is None:
            # Too short to be seen, but post-copy did start.
            state.postcopy_started_s = outcome.postcopy_failed_at_s
            outcome.switched = True
        if self.recovery is None:
            return
        result = self.recovery(job).run()
        outcome.recovery = result.as_dict()
        if result.succeeded:
            state.ending = jobs.JobEvent(jobs.COMPLETED,
                                         self.clock.now() - started)

    def _observe(self, job, stats, tracker, outcome, state):
        """Feed one statistics snapshot; in pre-copy, decide and act."""
        if not stats:
            return None
        sample = progress_mod.Sample.from_job_stats(stats)
        tracker.update(sample)
        if self.record_samples:
            outcome.samples.append(sample)
        if state.phase == 'paused':
            decision = self.chain.decide_paused(
                tracker, self.context, self.clock.now() - state.paused_at)
            self._log_decision(decision, state, tracker, outcome)
            self._apply(job, decision, state, tracker, outcome)
            return decision
        if state.phase != 'precopy':
            return None
        if state.forced:
            decision = self.chain.force_complete(tracker, self.context)
        else:
            decision = self.chain.decide(tracker, self.context)
        self._log_decision(decision, state, tracker, outcome)
        self._apply(job, decision, state, tracker, outcome)
        return decision

    def _handle_events(self, job, tracker, outcome, state, now):
        for event in job.poll_events():
            if event.kind == jobs.ITERATION:
                self._observe(job, event.stats, tracker, outcome, state)
            elif event.kind == jobs.POSTCOPY_STARTED:
                state.phase = 'postcopy'
                tracker.enter_postcopy()
                outcome.switched = True
                state.postcopy_started_s = (
                    event.at_s if event.at_s is not None else now)
                LOG.info('%s: post-copy started %.1f s after the switch was '
                         'requested', self.name,
                         state.postcopy_started_s - (
                             outcome.switch_at_s or 0.0))
            elif event.kind == jobs.POSTCOPY_WITHDRAWN:
                self.context = dataclasses.replace(self.context,
                                                   postcopy_allowed=False)
            elif event.kind == jobs.FORCE_COMPLETE:
                if state.phase == 'precopy':
                    state.forced = True
                else:
                    LOG.info('%s: asked to complete, already %s', self.name,
                             'in post-copy' if state.phase in (
                                 'switching', 'postcopy') else state.phase)
            elif event.kind in jobs.ENDINGS:
                state.ending = event
                return True
        return False

    def _log_decision(self, decision, state, tracker, outcome):
        """INFO once per kind of decision; plain "continue" only first.

        A kind is the action, the policy and the reason up to its first
        colon, so that changing figures do not repeat a line every poll.
        """
        key = (decision.action, decision.policy,
               decision.reason.split(':', 1)[0])
        at = tracker.elapsed_s
        plain = decision.action is Action.CONTINUE and not decision.policy
        if key != state.last_logged and (not plain
                                         or state.last_logged is None):
            state.last_logged = key
            LOG.info('%s at %.1f s: %s', self.name, at, decision)
            outcome.decisions.append((round(at, 3), str(decision)))
        else:
            LOG.debug('%s at %.1f s: %s', self.name, at, decision)

    def _apply(self, job, decision, state, tracker, outcome):
        action = decision.action
        if action is Action.SWITCH:
            try:
                job.start_postcopy()
            except jobs.JobError as error:
                LOG.warning('%s: the switch to post-copy was refused, will '
                            'ask again: %s', self.name, error)
                state.last_logged = None
                return
            state.phase = 'switching'
            state.switch_requested_s = self.clock.now()
            outcome.switch_reason = decision.reason
            outcome.switch_policy = decision.policy
            outcome.switch_at_s = tracker.elapsed_s
        elif action is Action.SET_DOWNTIME:
            job.set_max_downtime(decision.downtime_ms)
            tracker.max_downtime_ms = decision.downtime_ms
        elif action in (Action.ABORT, Action.PAUSE):
            try:
                job.abort() if action is Action.ABORT else job.pause()
            except jobs.JobError as error:
                LOG.warning('%s: %s was refused, will ask again: %s',
                            self.name, action.value, error)
                state.last_logged = None
                return
            if action is Action.ABORT:
                state.phase = 'aborting'
            else:
                state.phase, state.paused_at = 'paused', self.clock.now()
            outcome.end_reason = decision.reason

    def _warn_slow_switch(self, state):
        waited = self.clock.now() - state.switch_requested_s
        if waited >= SWITCH_EVENT_WARN_S and not state.warned_slow_switch:
            state.warned_slow_switch = True
            LOG.warning('%s: post-copy requested %.0f s ago and not started '
                        'yet; still waiting for the event', self.name, waited)

    def _finish(self, job, outcome, tracker, state, wall_s):
        final = job.completed_stats() or {}
        last = tracker.sample
        ending = state.ending
        outcome.total_s = final.get('time_elapsed', wall_s * 1000) / 1000.0
        outcome.passes = list(tracker.passes)
        outcome.iterations = final.get(
            'memory_iteration', last.memory_iteration if last else 0)
        outcome.bytes_sent = final.get(
            'data_processed', last.data_processed if last else 0)
        outcome.postcopy_requests = final.get(
            'memory_postcopy_requests',
            last.postcopy_requests if last else 0)
        if ending is None:
            outcome.result = 'unfinished'
        elif ending.kind == jobs.COMPLETED:
            outcome.result = ('postcopy' if state.postcopy_started_s
                              is not None else 'converged')
            # JOB_COMPLETED sometimes lacks it (seen on libvirt 11.3, 12.8).
            outcome.downtime_ms = final.get('downtime')
            if state.postcopy_started_s is not None:
                end_s = (ending.at_s if ending.at_s is not None
                         else outcome.total_s)
                outcome.postcopy_s = max(end_s - state.postcopy_started_s,
                                         0.0)
        elif ending.kind == jobs.CANCELLED:
            outcome.result = 'aborted'
        elif ending.kind == jobs.POSTCOPY_FAILED:
            outcome.result = 'postcopy-failed'
            outcome.end_reason = ending.detail or ending.kind
        else:
            outcome.result = 'failed'
            outcome.end_reason = ending.detail or ending.kind
        LOG.info('%s ended: %s after %.1f s%s', self.name, outcome.result,
                 outcome.total_s, (' (switched: %s)' % outcome.switch_reason)
                 if outcome.switched else '')


class _State:
    def __init__(self):
        self.phase = 'precopy'
        self.ending = None
        self.last_logged = None
        self.postcopy_started_s = None
        self.switch_requested_s = None
        self.paused_at = None
        self.warned_slow_switch = False
        self.forced = False
