# SPDX-License-Identifier: Apache-2.0
"""Loading and checking of nova-postcopy's configuration."""

from oslo_config import cfg

from nova_postcopy.conf import postcopy
from nova_postcopy import exception

CONF = cfg.CONF
postcopy.register_opts(CONF)


def load(conf=CONF, other_budget=None):
    """Return the ``[postcopy]`` group after checking every value.

    :param other_budget: the name of another option that bounds pre-copy
        when ours do not (in nova-compute, Nova's completion timeout), or
        None.

    oslo.config converts values lazily, on first use; reading every option
    here moves a bad value's error to service start, before any migration.

    :raises nova_postcopy.exception.InvalidConfig: naming option, value and
        what is allowed.
    """
    group = conf[postcopy.GROUP_NAME]
    for opt in postcopy.ALL_OPTS:
        try:
            getattr(group, opt.dest)
        except (ValueError, cfg.Error) as error:
            raise exception.InvalidConfig(
                option=opt.name, reason=_reason(error)) from error
    if (group.precopy_timeout_per_gib == 0 and group.precopy_timeout_max == 0
            and other_budget is None):
        raise exception.InvalidConfig(
            option='precopy_timeout_per_gib',
            reason='precopy_timeout_per_gib = 0 and precopy_timeout_max = 0 '
                   'leave pre-copy without a budget, so a guest that dirties '
                   'memory faster than the network carries it would migrate '
                   'forever. Fix: set either one above 0%s' % (
                       ' (or %s)' % other_budget if other_budget else ''))
    return group


def _reason(error):
    # oslo.config wraps the type's message into "Value for option X from
    # <location> is not valid: <message>"; the message is what helps.
    text = str(error)
    return text.split('is not valid: ', 1)[-1]
