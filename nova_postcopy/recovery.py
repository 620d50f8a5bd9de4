# SPDX-License-Identifier: Apache-2.0
"""Resuming a post-copy migration that a network failure interrupted.

Once post-copy has started, the destination runs the guest and the source
still holds the pages it has not fetched: neither half may be destroyed,
aborted or reset. When the link fails, QEMU pauses post-copy on both sides
(libvirt: source PAUSED/POSTCOPY_FAILED, destination
RUNNING/POSTCOPY_FAILED) and waits; libvirt >= 8.5 can resume it with
``VIR_MIGRATE_POSTCOPY_RESUME`` once the hosts reach each other again.

:class:`PostcopyRecovery` does that, with backoff, until a deadline. The
migration call's error alone is not final (after a short outage QEMU may
finish by itself), so it acts on the source domain's state, never on the
error. It performs no I/O of its own: a :class:`RecoveryPort` does.
"""

import dataclasses
import typing

from oslo_log import log as logging

from nova_postcopy import jobs

LOG = logging.getLogger(__name__)

# What the port says of the migration after a post-copy failure.
PAUSED = 'paused'          # both halves wait: a resume may be tried
MIGRATING = 'migrating'    # QEMU still moves pages (or resumes by itself)
COMPLETED = 'completed'    # the destination has the whole guest
UNKNOWN = 'unknown'        # the source cannot be asked
# A resume refused at once (link down, QEMU not paused yet) fails within
# this; one that runs longer was accepted. Ports wait this long in resume().
RESUME_REFUSAL_S = 3.0
# Refusals in a row saying the destination's domain is gone before recovery
# stops: one answer could be read while a libvirtd restarts.
GONE_REFUSALS = 2
LOST_NEXT_STEP = ('nothing to resume: restart the guest from its disks; the '
                  'paused source half holds no running state and can be '
                  'destroyed once inspected')


class RecoveryPort(typing.Protocol):
    def recovery_state(self) -> str:
        """One of PAUSED, MIGRATING, COMPLETED, UNKNOWN."""

    def resume(self) -> None:
        """Start the resumed migration.

        :raises jobs.JobError: refused (link still down, QEMU not paused
            yet, ...).
        """

    def poll_events(self) -> typing.List[jobs.JobEvent]:
        """COMPLETED or POSTCOPY_FAILED of a resumed migration."""

    def describe_hosts(self) -> str:
        """Each host's domain state, for the operator."""


@dataclasses.dataclass
class Attempt:
    at_s: float
    result: str
    detail: str = ''


@dataclasses.dataclass
class RecoveryOutcome:
    """What recovery came to.

    ``recovered`` (a resume finished the migration), ``completed`` (QEMU
    finished by itself), ``gave-up`` (deadline; both halves left) or
    ``lost`` (the destination's domain is gone: nothing to resume into).
    """

    result: str
    took_s: float
    attempts: list = dataclasses.field(default_factory=list)
    hosts: str = ''
    next_step: str = ''

    @property
    def succeeded(self):
        return self.result in ('recovered', 'completed')

    def as_dict(self):
        return dataclasses.asdict(self)


def refusal(error, no_domain_code):
    """The :class:`jobs.JobError` a port raises for a refused resume.

    libvirt answers a resume into a destination whose domain is gone
    (its QEMU died) with ``VIR_ERR_NO_DOMAIN``: that one is final.
    """
    if error.get_error_code() == no_domain_code:
        return jobs.DestinationGone(str(error))
    return jobs.JobError(str(error))


def backoff(first_s, max_s):
    """1, 2, 4, ... seconds, capped.

    Retries come fast after a short cut and stay cheap during a long one.
    """
    delay = first_s
    while True:
        yield delay
        delay = min(delay * 2, max_s)


class PostcopyRecovery:
    """Resume until the migration completes or ``deadline_s`` passes.

    :param clock: ``now()``, ``sleep(seconds)``.
    :param next_step: what the operator can do after the deadline (a
        command), put in the outcome and the log.
    """

    def __init__(self, port, clock, deadline_s, first_retry_s=1.0,
                 max_retry_s=10.0, poll_s=0.2, name='migration',
                 next_step=''):
        self.port = port
        self.clock = clock
        self.deadline_s = deadline_s
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self.poll_s = poll_s
        self.name = name
        self.next_step = next_step

    def run(self):
        started = self.clock.now()
        outcome = RecoveryOutcome(result='gave-up', took_s=0.0)
        delays = backoff(self.first_retry_s, self.max_retry_s)
        gone = 0
        LOG.info('%s: post-copy failed; recovering (resume with backoff, '
                 'deadline %.0f s); neither half will be destroyed',
                 self.name, self.deadline_s)
        while self._elapsed(started) < self.deadline_s:
            state = self.port.recovery_state()
            if state == COMPLETED:
                outcome.result = 'completed'
                LOG.info('%s: the migration completed by itself',
                         self.name)
                break
            if state != PAUSED:
                self.clock.sleep(self.poll_s)
                continue
            at = self._elapsed(started)
            try:
                self.port.resume()
            except jobs.JobError as error:
                outcome.attempts.append(Attempt(at, 'refused', str(error)))
                gone = gone + 1 if isinstance(
                    error, jobs.DestinationGone) else 0
                if gone >= GONE_REFUSALS:
                    outcome.result = 'lost'
                    break
                delay = next(delays)
                LOG.info('%s: resume attempt %d refused (%s); next in '
                         '%.0f s', self.name, len(outcome.attempts), error,
                         delay)
                self.clock.sleep(delay)
                continue
            LOG.info('%s: resume attempt %d accepted', self.name,
                     len(outcome.attempts) + 1)
            ending = self._wait_for_end(started)
            if ending is not None and ending.kind == jobs.COMPLETED:
                outcome.attempts.append(Attempt(at, 'completed'))
                outcome.result = 'recovered'
                break
            detail = ending.detail if ending is not None else 'deadline'
            outcome.attempts.append(Attempt(at, 'failed again', detail))
            LOG.info('%s: resumed migration failed again (%s)', self.name,
                     detail)
            self.clock.sleep(next(delays))
        outcome.took_s = self._elapsed(started)
        if outcome.succeeded:
            LOG.info('%s: post-copy recovered after %.1f s and %d resume '
                     'attempt(s)', self.name, outcome.took_s,
                     len(outcome.attempts))
            return outcome
        outcome.hosts = self.port.describe_hosts()
        if outcome.result == 'lost':
            outcome.next_step = LOST_NEXT_STEP
            LOG.error('%s: post-copy cannot be recovered: the destination '
                      'has no domain to resume into (%s); the guest stopped '
                      'there. %s. Next: %s', self.name,
                      outcome.attempts[-1].detail, outcome.hosts,
                      outcome.next_step)
        else:
            outcome.next_step = self.next_step
            LOG.error('%s: post-copy not recovered within %.0f s (%d '
                      'attempts); both halves left in place: %s. Next: %s',
                      self.name, self.deadline_s, len(outcome.attempts),
                      outcome.hosts, self.next_step)
        return outcome

    def _wait_for_end(self, started):
        while self._elapsed(started) < self.deadline_s:
            for event in self.port.poll_events():
                if event.kind in (jobs.COMPLETED, jobs.POSTCOPY_FAILED,
                                  jobs.FAILED):
                    return event
            self.clock.sleep(self.poll_s)
        return None

    def _elapsed(self, started):
        return self.clock.now() - started


def unavailable(conf, plan):
    """Why this migration's post-copy will not be recovered; None if it is.

    :param conf: the loaded ``[postcopy]`` options.
    :param plan: the migration's :class:`negotiate.Plan`.
    """
    if not conf.recovery_deadline:
        return '[postcopy] recovery_deadline = 0'
    if not plan.recovery:
        return 'the plan has no recovery: %s' % ('; '.join(
            r for r in plan.reasons if 'recovery' in r) or 'not negotiated')
    return None


def from_conf(port, conf, clock, name, next_step, deadline_s=None):
    """The recovery ``[postcopy]`` configures, for the CLI and the driver.

    :param deadline_s: instead of ``recovery_deadline`` (a resume by hand
        when recovery is switched off still needs one).
    """
    return PostcopyRecovery(
        port, clock, deadline_s or conf.recovery_deadline,
        max_retry_s=conf.recovery_retry_max, name=name, next_step=next_step)
