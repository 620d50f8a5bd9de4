# SPDX-License-Identifier: Apache-2.0
"""Switch when the pre-copy budget is used up: Nova's completion timeout."""

from nova_postcopy.policies import base


class TimeoutPolicy(base.SwitchPolicy):
    """Nova-compatible: ``live_migration_timeout_action = force_complete``.

    The budget (seconds per GiB of RAM and disks, capped) is computed once
    per migration into the context, so this policy and the chain's own
    budget end always agree on the moment.
    """

    name = 'timeout'

    def decide(self, progress, context):
        if progress.elapsed_s >= context.budget_s:
            return self.switch('pre-copy ran %.0f s and used up its budget '
                               'of %.0f s', progress.elapsed_s,
                               context.budget_s)
        return self.keep_going()
