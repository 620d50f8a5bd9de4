# SPDX-License-Identifier: Apache-2.0
"""How Nova's ``[libvirt]`` migration options and ``[postcopy]`` combine.

An operator who tuned Nova keeps what Nova promised: a tighter
``live_migration_completion_timeout`` still ends pre-copy, and
``live_migration_timeout_action = force_complete`` still means "at the
timeout, post-copy if permitted, else pause the guest"
(``doc/source/user/nova.rst``).
"""

from nova.virt.libvirt import driver as libvirt_driver

from nova_postcopy import budget
from nova_postcopy import conf as np_conf
from nova_postcopy.policies import base
from nova_postcopy.policies import chain
from nova_postcopy.policies import timeout

CONF = libvirt_driver.CONF


def precopy_budget_s(data_gib):
    """The smaller of Nova's completion timeout and ours.

    Either may be 0, "not limited by this one".
    """
    conf = np_conf.CONF.postcopy
    limits = [budget.precopy_budget_s(data_gib,
                                      conf.precopy_timeout_per_gib,
                                      conf.precopy_timeout_max),
              CONF.libvirt.live_migration_completion_timeout * data_gib]
    limits = [limit for limit in limits if limit]
    return float(min(limits)) if limits else float('inf')


def policy_chain(conf):
    """The configured chain, with Nova's ``force_complete`` timeout action."""
    rules = chain.PolicyChain.from_conf(conf)
    if CONF.libvirt.live_migration_timeout_action == 'force_complete':
        rules.budget_action = base.Action.PAUSE
        if 'timeout' not in rules.names:
            rules.policies.append(timeout.TimeoutPolicy(conf))
    return rules
