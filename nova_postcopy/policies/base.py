# SPDX-License-Identifier: Apache-2.0
"""The contract between the monitor and a switch policy.

A policy is asked on every poll of a pre-copy migration with the
:class:`~nova_postcopy.progress.ProgressTracker` and the migration's
:class:`MigrationContext`, and answers with a :class:`Decision` that carries
a reason an operator can read in the log. Policies do no I/O: the same
object decides for libvirt, for Nova and for the simulator.
"""

import abc
import dataclasses
import enum


class Action(enum.Enum):
    CONTINUE = 'continue'
    SWITCH = 'switch to post-copy'
    SET_DOWNTIME = 'set max downtime'
    PAUSE = 'pause the guest'
    ABORT = 'abort'


@dataclasses.dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    policy: str = ''
    downtime_ms: int = 0

    @classmethod
    def keep_going(cls, reason='', policy=''):
        return cls(Action.CONTINUE, reason, policy)

    @property
    def acts(self):
        return self.action is not Action.CONTINUE

    def __str__(self):
        by = ' (%s)' % self.policy if self.policy else ''
        why = ': %s' % self.reason if self.reason else ''
        return '%s%s%s' % (self.action.value, by, why)


@dataclasses.dataclass(frozen=True)
class MigrationContext:
    """What a policy knows about the migration besides its statistics.

    :param budget_s: seconds pre-copy may run (see :mod:`budget`).
    :param max_downtime_ms: the switchover downtime target.
    :param postcopy_allowed: the negotiated plan permits post-copy.
    """

    budget_s: float
    max_downtime_ms: int = 500
    postcopy_allowed: bool = True

    @property
    def max_downtime_s(self):
        return self.max_downtime_ms / 1000.0


class SwitchPolicy(metaclass=abc.ABCMeta):
    """Base class of the plugins in ``nova_postcopy.switch_policies``.

    One instance serves one migration, so a policy may keep state between
    polls. ``conf`` is the ``[postcopy]`` option group, or any object with
    the same attributes.
    """

    name = None

    def __init__(self, conf):
        self.conf = conf

    @abc.abstractmethod
    def decide(self, progress, context):
        """Decide on the latest sample.

        :param progress: a :class:`nova_postcopy.progress.ProgressTracker`.
        :param context: a :class:`MigrationContext`.
        :returns: a :class:`Decision`.
        """

    def switch(self, reason, *args):
        return Decision(Action.SWITCH, reason % args, self.name)

    def keep_going(self, reason='', *args):
        return Decision.keep_going(reason % args if args else reason,
                                   self.name)
