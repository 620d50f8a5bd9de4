# SPDX-License-Identifier: Apache-2.0
"""The job port over the migration model, on a virtual clock."""

from nova_postcopy import jobs
from nova_postcopy import recovery


class SimulatedJob:
    """Speaks like :class:`nova_postcopy.jobs.Job`; the model does the rest.

    The model is advanced lazily to the clock's time on every call, so the
    monitor drives the simulation just by sleeping on the virtual clock.
    """

    def __init__(self, model, clock):
        self.model = model
        self.clock = clock
        self._started = clock.now()
        self._events_seen = 0

    def _catch_up(self):
        self.model.advance_to(self.clock.now() - self._started)

    def stats(self):
        self._catch_up()
        return self.model.job_stats()

    def poll_events(self):
        self._catch_up()
        fresh = self.model.events[self._events_seen:]
        self._events_seen = len(self.model.events)
        return [jobs.JobEvent(kind, at, stats=stats)
                for at, kind, stats in fresh]

    def start_postcopy(self):
        self._catch_up()
        if not self.model.request_postcopy():
            raise jobs.JobError('post-copy is not enabled for this migration'
                                ' or it is no longer in pre-copy')

    def set_max_downtime(self, milliseconds):
        self.model.set_max_downtime(milliseconds)

    def abort(self):
        self._catch_up()
        self.model.request_abort()

    def pause(self):
        self._catch_up()
        self.model.pause_guest()

    def completed_stats(self):
        return self.model.completed_stats()

    # -- the recovery port ---------------------------------------------------

    def recovery_state(self):
        self._catch_up()
        if self.model.state == 'completed':
            return recovery.COMPLETED
        if self.model.state == 'postcopy-paused':
            return recovery.PAUSED
        return recovery.MIGRATING

    def resume(self):
        self._catch_up()
        if not self.model.request_resume():
            raise jobs.JobError('unable to connect to the destination: the '
                                'link is still down')

    def describe_hosts(self):
        self._catch_up()
        return ('source paused (post-copy failed), destination running '
                '(post-copy failed)' if self.model.state == 'postcopy-paused'
                else 'model state %s' % self.model.state)
