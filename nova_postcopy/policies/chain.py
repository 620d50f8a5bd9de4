# SPDX-License-Identifier: Apache-2.0
"""The ordered policies of a migration behind the network-stall guard.

The chain holds the rules that no single policy may break:

* No data moving is a network or destination problem, not a busy guest.
  Switching then would split the guest between hosts that cannot talk, so a
  proposed switch is held until data has moved again for a grace period;
  pre-copy that moves nothing for ``progress_timeout`` is aborted, which
  leaves the guest running on the source.
* Post-copy is used only where the negotiated plan allows it; elsewhere the
  policies' proposals to switch are noted and pre-copy goes on.
* The budget always ends pre-copy: by a policy's switch, else by the
  configured budget action (abort or pause).
"""

from nova_postcopy import plugins
from nova_postcopy.policies import base

Action = base.Action
Decision = base.Decision
BUDGET_ACTIONS = {'abort': Action.ABORT, 'pause': Action.PAUSE}


class PolicyChain:
    """Asks policies in order; the first that acts wins.

    :param policies: policy instances, in order.
    :param budget_action: :class:`Action` ``ABORT`` or ``PAUSE``.
    :param progress_timeout_s: abort after this long without data moving;
        None disables it.
    :param stall_grace_s: healthy seconds needed after a stall before a
        switch.
    :param guard: False only for anchors that model other systems.
    """

    def __init__(self, policies, budget_action=Action.ABORT,
                 progress_timeout_s=None, stall_grace_s=0.0, guard=True):
        self.policies = list(policies)
        self.budget_action = budget_action
        self.progress_timeout_s = progress_timeout_s
        self.stall_grace_s = stall_grace_s
        self.guard = guard

    @classmethod
    def from_conf(cls, conf):
        """The chain that ``[postcopy]`` configures, with fresh policies."""
        policies = [plugins.policy_class(name)(conf)
                    for name in conf.switch_policies]
        return cls(policies,
                   budget_action=BUDGET_ACTIONS[conf.precopy_budget_action],
                   progress_timeout_s=conf.progress_timeout,
                   stall_grace_s=conf.network_stall_grace)

    @property
    def names(self):
        return [policy.name for policy in self.policies]

    def _stuck(self, progress):
        # No data moved for progress_timeout: the link or the destination
        # is stuck, whatever the guest does.
        return (self.progress_timeout_s is not None
                and progress.stalled_for_s >= self.progress_timeout_s)

    def decide(self, progress, context):
        if self._stuck(progress):
            return Decision(
                Action.ABORT,
                'no data moved for %.0f s: the network or the destination '
                'is stuck; aborting pre-copy, the guest keeps running on the '
                'source' % progress.stalled_for_s, 'network-stall guard')
        proposal = self._ask_policies(progress, context)
        if proposal.action is Action.SWITCH:
            if self.guard and self._link_unsettled(progress):
                return Decision.keep_going(
                    'switch proposed by %s held: %s' % (
                        proposal.policy, self._link_state(progress)),
                    'network-stall guard')
            if context.postcopy_allowed:
                return proposal
            proposal = Decision.keep_going(
                'post-copy not allowed for this migration; %s would have '
                'switched: %s' % (proposal.policy, proposal.reason),
                proposal.policy)
        elif proposal.acts:
            return proposal
        if progress.elapsed_s >= context.budget_s:
            return Decision(
                self.budget_action,
                'pre-copy used up its budget of %.0f s without a switch to '
                'post-copy (%s)' % (context.budget_s, self._why_no_switch(
                    context)), 'budget')
        return proposal

    def decide_paused(self, progress, context, paused_for_s):
        """A guest paused at the budget: when to give up on it.

        Paused, the guest dirties nothing and pre-copy ends within one pass
        of what remains, unless the link or the destination is stuck: then
        it would wait paused for ever (no policy is asked after the pause).
        It is aborted, and resumed on the source, after
        ``progress_timeout`` without data moving, or, with that guard off,
        after as long again as the pre-copy budget.
        """
        if self._stuck(progress):
            return Decision(
                Action.ABORT,
                'guest paused to converge, and no data moved for %.0f s: '
                'the network or the destination is stuck; aborting, the '
                'guest runs again on the source' % progress.stalled_for_s,
                'network-stall guard')
        if paused_for_s >= context.budget_s:
            return Decision(
                Action.ABORT,
                'guest paused to converge for %.0f s, as long as the '
                'pre-copy budget, and pre-copy did not end; aborting, the '
                'guest runs again on the source' % paused_for_s, 'budget')
        return Decision.keep_going('guest paused to converge', 'budget')

    def _ask_policies(self, progress, context):
        for policy in self.policies:
            decision = policy.decide(progress, context)
            if decision.acts:
                return decision
        return Decision.keep_going()

    def force_complete(self, progress, context):
        """The operator asked to finish now (Nova's force-complete).

        Post-copy where the plan allows it and the link moves data; else
        pause the guest so that pre-copy converges, as Nova does.
        """
        policy = 'force-complete'
        if not context.postcopy_allowed:
            return Decision(Action.PAUSE, 'the operator asked to complete '
                            'the migration and post-copy is not allowed for '
                            'it: pausing the guest so that pre-copy '
                            'converges', policy)
        if self.guard and self._link_unsettled(progress):
            return Decision.keep_going(
                'the operator asked to complete the migration; held: %s'
                % self._link_state(progress), 'network-stall guard')
        return Decision(Action.SWITCH, 'the operator asked to complete the '
                        'migration', policy)

    def _link_unsettled(self, progress):
        # Without data figures (a hypervisor that reports only the job's
        # type) movement cannot be judged, and nothing is held for it.
        return progress.has_figures and (
            progress.network_stalled
            or progress.healthy_for_s < self.stall_grace_s)

    def _link_state(self, progress):
        if progress.network_stalled:
            return 'no data moved for %.1f s (network stall)' % (
                progress.stalled_for_s)
        return ('data moves again for only %.1f s of the %.0f s grace after '
                'a network stall' % (progress.healthy_for_s,
                                     self.stall_grace_s))

    def _why_no_switch(self, context):
        if not context.postcopy_allowed:
            return 'post-copy not allowed for this migration'
        return 'no policy among [%s] switched' % ', '.join(self.names)
