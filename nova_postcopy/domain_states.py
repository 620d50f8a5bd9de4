# SPDX-License-Identifier: Apache-2.0
"""What the source domain's state says about a migration: one reading.

libvirt's domain state and reason numbers are part of its stable ABI
(``virDomainState``, ``virDomainPausedReason``, ``virDomainRunningReason``,
``virDomainShutoffReason``), so they are written here, once, without
importing libvirt: the CLI's job, Nova's job and the start-up adoption all
read a domain through these few functions.

Why the state and not the events: the post-copy event can arrive after the
migration call has already failed (a late event made the CLI report
``failed`` and skip recovery), and Nova's job sees no events at all. The
state is there when the call returns.
"""

from nova_postcopy import jobs

RUNNING = 1
PAUSED = 3
SHUTDOWN = 4
SHUTOFF = 5

RUNNING_MIGRATED = 2
PAUSED_MIGRATION = 2
RUNNING_POSTCOPY = 10
RUNNING_POSTCOPY_FAILED = 11
PAUSED_POSTCOPY = 12
PAUSED_POSTCOPY_FAILED = 13
SHUTOFF_MIGRATED = 4

IN_POSTCOPY = (PAUSED, PAUSED_POSTCOPY)
SWITCHING = (PAUSED, PAUSED_MIGRATION)
POSTCOPY_FAILED = (PAUSED, PAUSED_POSTCOPY_FAILED)
MIGRATED_AWAY = (SHUTOFF, SHUTOFF_MIGRATED)

_NAMES = {RUNNING: 'running', PAUSED: 'paused', SHUTDOWN: 'shutting down',
          SHUTOFF: 'shut off'}
_REASONS = {IN_POSTCOPY: 'post-copy', POSTCOPY_FAILED: 'post-copy failed',
            (RUNNING, RUNNING_POSTCOPY): 'post-copy',
            (RUNNING, RUNNING_POSTCOPY_FAILED): 'post-copy failed',
            (RUNNING, RUNNING_MIGRATED): 'migrated',
            MIGRATED_AWAY: 'migrated'}


def runs_here(state):
    """Whether this domain runs the guest: then it holds every page."""
    return state is not None and state[0] == RUNNING


def memory_split(state, postcopy_asked):
    """After a failure: does the guest's memory live on both hosts?

    Only when a switch was asked (or seen) and the source does not run the
    guest.
    """
    return postcopy_asked and not runs_here(state)


def failed_ending(state, postcopy_asked, cancel_requested):
    """How a migration that returned an error ended, from the source.

    :param state: the source domain's (state, reason) after the error;
        None when it is gone.
    :param postcopy_asked: the switch was requested or post-copy was seen.
    :param cancel_requested: the job was aborted on purpose.
    :returns: ``jobs.POSTCOPY_FAILED`` when the guest's memory is split (a
        source that runs the guest holds every page: then it is not),
        else ``jobs.CANCELLED`` or ``jobs.FAILED``.
    """
    if memory_split(state, postcopy_asked):
        return jobs.POSTCOPY_FAILED
    if cancel_requested:
        return jobs.CANCELLED
    return jobs.FAILED


def outgoing_job_over(state):
    """Whether a source's outgoing post-copy job has ended, either way.

    Paused in post-copy, or paused by the migration while QEMU switches
    to it, is still running; "shutting down" comes between a completed
    job and QEMU's exit (measured on the lab cloud).
    """
    return not (state in (IN_POSTCOPY, SWITCHING)
                or (state is not None and state[0] == SHUTDOWN))


def describe(state):
    """'paused (post-copy failed)', for an operator; 'gone' for None."""
    if state is None:
        return 'gone'
    name = _NAMES.get(state[0], 'state %d' % state[0])
    reason = _REASONS.get(tuple(state))
    return '%s (%s)' % (name, reason) if reason else name
