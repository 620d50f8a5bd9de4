# SPDX-License-Identifier: Apache-2.0
"""The job port: what the monitor needs from a running migration.

:class:`Job` is the protocol; ``LibvirtJob`` (libvirt), ``SimulatedJob``
(the model) and the Nova driver's job implement it. Events are the few
facts the monitor must not infer from statistics: post-copy really started
(it can lag the request by seconds), the job ended, and how, and the
operator asked to complete it now.
"""

import dataclasses
import typing

ITERATION = 'iteration'
POSTCOPY_STARTED = 'postcopy-started'
COMPLETED = 'completed'
CANCELLED = 'cancelled'
FAILED = 'failed'
POSTCOPY_FAILED = 'postcopy-failed'
# The operator asked to finish now (Nova's force-complete API).
FORCE_COMPLETE = 'force-complete'
# The destination refused post-copy at Prepare and the call goes on as
# pre-copy: no switch may be asked for any more.
POSTCOPY_WITHDRAWN = 'postcopy-withdrawn'
ENDINGS = (COMPLETED, CANCELLED, FAILED, POSTCOPY_FAILED)


class JobError(Exception):
    """A control of the job was refused (libvirtError, or the model's)."""


class DestinationGone(JobError):
    """A resume was refused because the destination has no such domain.

    After the switch the destination's domain is the guest's only running
    state; when it is gone (QEMU died or was destroyed there) there is
    nothing to resume into.
    """


@dataclasses.dataclass(frozen=True)
class JobEvent:
    """Something the job reported.

    ``stats`` carries the job statistics read when a pass ended (libvirt's
    MIGRATION_ITERATION event): passes shorter than a poll are only seen
    this way.
    """

    kind: str
    at_s: float = 0.0
    detail: str = ''
    stats: typing.Optional[dict] = None


class Job(typing.Protocol):
    """What the monitor asks of a migration, once per poll, in this order.

    ``poll_events()`` first, then ``stats()``. A port may read the
    statistics in ``poll_events()`` and hand the same snapshot out of
    ``stats()`` (Nova's job does: one libvirt call per poll), and may do
    its host's per-poll bookkeeping there (Nova's downtime steps, its
    migration record); nothing else may depend on ``stats()`` being fresh
    without a ``poll_events()`` before it. The controls may be called
    between polls and from the monitor's thread only.
    """

    def stats(self) -> typing.Optional[dict]:
        """``virDomainGetJobStats``-style dict of this poll.

        None when the job does not answer (not started, ended).
        """

    def poll_events(self) -> typing.List[JobEvent]:
        """Events since the last call; an ending (``ENDINGS``) is last."""

    def start_postcopy(self) -> None:
        """Ask for the switch; raises :class:`JobError` if refused."""

    def set_max_downtime(self, milliseconds: int) -> None:
        """Set the switchover downtime target."""

    def abort(self) -> None:
        """Cancel a pre-copy migration; the guest stays on the source."""

    def pause(self) -> None:
        """Pause the guest so that pre-copy converges."""

    def completed_stats(self) -> typing.Optional[dict]:
        """Statistics of the completed job, if the hypervisor kept them."""
