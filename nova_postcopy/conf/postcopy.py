# SPDX-License-Identifier: Apache-2.0
"""Options of the ``[postcopy]`` group in nova.conf.

The group is our own: Nova's ``[libvirt]`` options keep their meaning and
are read, never re-registered, by the Nova driver.
"""

from oslo_config import cfg
from oslo_config import types

from nova_postcopy import exception
from nova_postcopy import plugins

GROUP_NAME = 'postcopy'

postcopy_group = cfg.OptGroup(
    GROUP_NAME,
    title='Post-copy live migration options',
    help="""
Options of nova-postcopy, which runs every live migration as pre-copy first
and switches it to post-copy when a switch policy decides that pre-copy will
not finish in time. Post-copy always finishes in bounded time; it is only
used when both hosts and the instance support it.
""")


class PolicyName(types.String):
    """A switch policy name, checked against the installed plugins.

    Checking at load time turns a typo into an error before any migration
    starts, instead of a migration that silently runs without the policy;
    importing the named policy there turns a broken package into an error
    that names it, at start rather than at the first migration.
    """

    def __init__(self):
        super().__init__(type_name='switch policy name')

    def __call__(self, value):
        value = super().__call__(value).strip()
        available = plugins.available_policies()
        if value not in available:
            raise ValueError(
                'unknown switch policy %r; available policies: %s. Fix: use '
                'one of them, or install the package that provides %r.'
                % (value, ', '.join(available), value))
        try:
            plugins.policy_class(value)
        except exception.PolicyLoadError as error:
            raise ValueError(str(error)) from None
        return value


def _bounded(kind, minimum, maximum=None, unit=''):
    """A number type whose error names the value and the allowed range."""
    base = types.Integer if kind is int else types.Float

    class Bounded(base):
        def __call__(self, value):
            try:
                number = super(Bounded, self).__call__(value)
            except ValueError:
                raise ValueError('%r is not a number' % (value,))
            if number < minimum or (maximum is not None and number > maximum):
                allowed = ('>= %s' % minimum if maximum is None
                           else 'from %s to %s' % (minimum, maximum))
                raise ValueError('%s%s is out of range: allowed %s%s'
                                 % (value, unit, allowed, unit))
            return number

    return Bounded()


DEFAULT_SWITCH_POLICIES = ['forecast', 'stall', 'timeout']

ALL_OPTS = [
    cfg.ListOpt(
        'switch_policies',
        item_type=PolicyName(),
        default=DEFAULT_SWITCH_POLICIES,
        mutable=True,
        help="""
Ordered list of switch policies asked on every poll of a pre-copy migration.

Each name is a plugin of the stevedore namespace
``nova_postcopy.switch_policies``. The first policy that decides something
other than "continue" wins. Built-in policies:

* ``forecast``: switches as soon as pre-copy, extrapolated from its measured
  bandwidth and dirty rate, cannot reach the downtime target within the
  remaining budget, and never while it can.
* ``stall``: switches when the data remaining at pass boundaries stopped
  improving by more than ``stall_margin`` percent over ``stall_window``
  seconds, near a local minimum.
* ``timeout``: switches when the pre-copy budget is used up (Nova's
  completion timeout).
* ``first_pass``: switches once the first full pass over RAM has completed.
* ``iterations``: switches after ``switch_after_passes`` completed passes.

Whatever the policies decide, a switch never happens while the migration
moves no data (a network stall), and the budget always ends pre-copy: with a
switch to post-copy when ``timeout`` is listed and post-copy is allowed,
otherwise with ``precopy_budget_action``.

An empty list means pure pre-copy ended by ``precopy_budget_action``.

In nova-compute, post-copy is allowed per migration by negotiation (both
hosts ready, the instance's devices and ``postcopy:mode``) and only on hosts
whose ``[libvirt] live_migration_permit_post_copy`` is True, Nova's
host-wide permission.

Related options:

* ``precopy_timeout_per_gib``, ``precopy_timeout_max``
* ``precopy_budget_action``
* ``[libvirt] live_migration_permit_post_copy``
"""),
    cfg.Opt(
        'precopy_timeout_per_gib',
        type=_bounded(int, 0, unit=' s/GiB'),
        default=150,
        mutable=True,
        help="""
Pre-copy budget in seconds per GiB of data to migrate.

The data is the instance's RAM plus, for block migration, its local disks,
each counted as at least 2 GiB, as Nova's
``[libvirt] live_migration_completion_timeout`` counts it. Nova's default of
800 s/GiB lets a 64 GiB instance run pre-copy for 14 hours; the default here
is KubeVirt's 150 s/GiB. 0 leaves only ``precopy_timeout_max``.

In nova-compute, the budget is the smaller of this one (with its cap) and
Nova's ``live_migration_completion_timeout``; a 0 on either side means "not
limited by it", so an operator who tightened Nova's timeout keeps it.

Related options:

* ``precopy_timeout_max``: the absolute cap on this budget
* ``precopy_budget_action``
* ``[libvirt] live_migration_completion_timeout``
"""),
    cfg.Opt(
        'precopy_timeout_max',
        type=_bounded(int, 0, unit=' s'),
        default=3600,
        mutable=True,
        help="""
Absolute cap, in seconds, on the pre-copy budget whatever the instance size.

0 means no cap. ``precopy_timeout_per_gib`` and this option cannot both be 0
(in nova-compute: unless Nova's ``live_migration_completion_timeout`` is
set): pre-copy of a guest that dirties memory faster than the network
carries it would never end.

Related options:

* ``precopy_timeout_per_gib``
"""),
    cfg.StrOpt(
        'precopy_budget_action',
        default='abort',
        choices=[
            ('abort', 'Cancel the migration; the guest keeps running on the '
                      'source host.'),
            ('pause', 'Pause the guest so that pre-copy converges, as Nova '
                      'force-complete does without post-copy; the guest '
                      'stops for the rest of the copy.'),
        ],
        mutable=True,
        help="""
What ends pre-copy when its budget runs out and no switch to post-copy
happens: post-copy is not allowed for this migration, or ``timeout`` is not
among ``switch_policies``, or the network stalled.

In nova-compute, ``[libvirt] live_migration_timeout_action = force_complete``
keeps Nova's meaning and wins: the budget ends with post-copy where allowed
(``timeout`` is added to the policies if missing), else with a pause.

Related options:

* ``precopy_timeout_per_gib``, ``precopy_timeout_max``
* ``switch_policies``
* ``[libvirt] live_migration_timeout_action``
"""),
    cfg.Opt(
        'max_downtime_ms',
        type=_bounded(int, 10, 2000000, unit=' ms'),
        default=500,
        mutable=True,
        help="""
Target maximum downtime of the switchover, in milliseconds.

Pre-copy converges when the data still to send fits into this time at the
measured bandwidth; the ``forecast`` policy predicts whether it will.

For ``nova-postcopy-migrate`` only. In nova-compute, Nova's
``[libvirt] live_migration_downtime``, ``live_migration_downtime_steps`` and
``live_migration_downtime_delay`` keep their meaning: the downtime rises in
Nova's steps, and the forecast judges against the last one.

Related options:

* ``forecast_safety_margin``
* ``[libvirt] live_migration_downtime``
"""),
    cfg.Opt(
        'stall_window',
        type=_bounded(int, 5, 3600, unit=' s'),
        default=40,
        mutable=True,
        help="""
Length, in seconds of migration time, of the sliding window of the ``stall``
policy: pre-copy is stalled when the best remaining data at pass boundaries
inside the window is not better than the best before it by more than
``stall_margin``. KubeVirt's stall detector uses 40 s.

Related options:

* ``stall_margin``
"""),
    cfg.Opt(
        'stall_margin',
        type=_bounded(float, 0.1, 50, unit=' %'),
        default=4.0,
        mutable=True,
        help="""
Least improvement, in percent, of the remaining data over ``stall_window``
for pre-copy to count as progressing, and the tolerance within which a
sample counts as a local minimum. KubeVirt uses 4 %.

Related options:

* ``stall_window``
"""),
    cfg.Opt(
        'switch_after_passes',
        type=_bounded(int, 1, 1000),
        default=4,
        mutable=True,
        help="""
Number of completed passes over RAM after which the ``iterations`` policy
switches. oVirt's post-copy policy switches at about the fourth.

Related options:

* ``switch_policies``
"""),
    cfg.Opt(
        'forecast_safety_margin',
        type=_bounded(float, 0, 50, unit=' %'),
        default=5.0,
        mutable=True,
        help="""
Margin, in percent, by which the ``forecast`` policy's projection of
pre-copy is made optimistic: the guest is assumed to dirty this much less
than measured and the budget to be this much longer, so that measurement
noise does not cause a switch that pre-copy did not need. Larger values
switch later on guests that are close to converging.

Related options:

* ``max_downtime_ms``
"""),
    cfg.Opt(
        'progress_timeout',
        type=_bounded(int, 10, 86400, unit=' s'),
        default=150,
        mutable=True,
        help="""
Seconds for which a pre-copy migration may move no data at all before it is
aborted. No data moving means the network or the destination is stuck, not
that the guest is too busy: a switch to post-copy then would leave the guest
split between hosts that cannot talk, so it is never done; the guest keeps
running on the source. KubeVirt uses 150 s.

Related options:

* ``network_stall_grace``
"""),
    cfg.Opt(
        'network_stall_grace',
        type=_bounded(int, 0, 3600, unit=' s'),
        default=3,
        mutable=True,
        help="""
Seconds of healthy transfer needed after a network stall before a switch to
post-copy is allowed again. A link that just came back may fail again, and
post-copy is the worst moment for it.

Related options:

* ``progress_timeout``
"""),
    cfg.Opt(
        'postcopy_bandwidth_mibs',
        type=_bounded(int, 0, unit=' MiB/s'),
        default=0,
        mutable=True,
        help="""
Bandwidth limit in MiB/s of the background transfer in post-copy (libvirt's
``bandwidth.postcopy``). 0 means unlimited, which finishes post-copy, the
phase in which page faults slow the guest, as early as possible.
"""),
    cfg.Opt(
        'poll_interval',
        type=_bounded(float, 0.1, 10, unit=' s'),
        default=0.5,
        mutable=True,
        help="""
Seconds between two reads of the migration's statistics, at which the switch
policies are asked, in nova-compute and in ``nova-postcopy-migrate`` alike.
The default is the interval of Nova's own monitor. Shorter reacts sooner to a
guest that speeds up; each read is one libvirt call on the source.

Related options:

* ``[libvirt] live_migration_monitor_interval``: how often, whatever this
  interval, Nova's progress lines are logged and the migration's progress is
  written to its database record.
"""),
    cfg.Opt(
        'recovery_deadline',
        type=_bounded(int, 0, 86400, unit=' s'),
        default=600,
        mutable=True,
        help="""
Seconds during which a post-copy migration interrupted by a network failure
is resumed (libvirt's ``VIR_MIGRATE_POSTCOPY_RESUME``), retrying with
backoff. Until it succeeds the guest runs on the destination and waits for
pages still on the source; neither half is ever destroyed. After the
deadline both halves stay as they are and the operator is told how to
resume by hand. 0 disables recovery (the failure is only reported).

Recovery needs libvirt 8.5 and QEMU 3.0 on both hosts; libvirt 11.3.x
crashes the destination's libvirtd on a resume, so a plan with such a
destination says "no recovery" before the migration starts.

Related options:

* ``recovery_retry_max``
"""),
    cfg.Opt(
        'recovery_retry_max',
        type=_bounded(float, 0.5, 300, unit=' s'),
        default=10.0,
        mutable=True,
        help="""
Longest wait, in seconds, between two resume attempts. Attempts start 1 s
apart and double up to this, so a short cut is recovered within about a
second of the link coming back and a long one costs little.

Related options:

* ``recovery_deadline``
"""),
    cfg.Opt(
        'incoming_keepalive',
        type=_bounded(int, 0, 3600, unit=' s'),
        default=5,
        mutable=True,
        help="""
On the destination, seconds of silence on an incoming migration's connection
in post-copy after which TCP keepalive probes the source (1 s apart, 5 of
them). Without them a destination whose guest does not touch a missing page
never notices that the source dropped the connection after a network failure,
and no resume is possible until it does (the migration hung for minutes on
the lab). A probe is answered by the source's kernel, so a live but slow
source is never cut off; a dead connection is reset at the first probe after
the link is back, or dropped after a silence of this plus 5 s (a page request
sent into the cut is bounded by ``net.ipv4.tcp_retries2`` as before). In
pre-copy nothing is set. 0 disables it.

nova-compute sets it on the sockets of the instance's incoming QEMU through a
privsep helper with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (its section is
``[nova_postcopy_privileged]``). QEMU 10.1 can do this itself (``keep-alive``
on its listening socket) but libvirt does not ask it to.

Related options:

* ``recovery_deadline``: recovery can only start once both hosts noticed the
  failure.
"""),
]


def option_type(name):
    """The type of ``[postcopy] name``: the one owner of its range.

    Command-line flags that override an option check their value with it,
    so a flag and nova.conf accept the same values.
    """
    for opt in ALL_OPTS:
        if opt.name == name:
            return opt.type
    raise KeyError(name)


def register_opts(conf):
    conf.register_group(postcopy_group)
    conf.register_opts(ALL_OPTS, group=postcopy_group)


def list_opts():
    return {postcopy_group: ALL_OPTS}
