# SPDX-License-Identifier: Apache-2.0
"""A host's post-copy readiness as placement traits, and back.

The destination's facts must reach the source in a multi-host cloud, and
Nova's versioned objects have no field for them. Each compute node running
nova-postcopy advertises what its own probe found as custom traits on its
resource provider; the source reads them before it builds a plan. Operators
see them (``openstack resource provider trait list``), and flavors can
require them (``trait:CUSTOM_POSTCOPY_LIVE_MIGRATION=required``).
"""

from nova_postcopy import capabilities

POSTCOPY = 'CUSTOM_POSTCOPY_LIVE_MIGRATION'
RECOVERY = 'CUSTOM_POSTCOPY_RECOVERY'
PREEMPT = 'CUSTOM_POSTCOPY_PREEMPT'
ALL = (POSTCOPY, RECOVERY, PREEMPT)


def traits_for(report):
    """The traits a host with this :class:`HostReport` advertises."""
    traits = set()
    if report.postcopy_ready:
        traits.add(POSTCOPY)
        if report.recovery_ready:
            traits.add(RECOVERY)
        if report.preempt:
            traits.add(PREEMPT)
    return traits


def report_from_traits(hostname, traits, qemu_version=None):
    """What the source can know of a destination: its traits.

    :param qemu_version: from the compute node record
        (``hypervisor_version``), for the multifd check.
    """
    traits = set(traits or ())
    if POSTCOPY in traits:
        ready = capabilities.Check(
            'userfaultfd', capabilities.PASS,
            'the destination advertises %s' % POSTCOPY)
    else:
        ready = capabilities.Check(
            'userfaultfd', capabilities.FAIL,
            'the destination does not advertise %s' % POSTCOPY,
            'run nova-postcopy-check on %s; it advertises the trait once '
            'its nova-compute runs nova-postcopy and the check passes'
            % (hostname or 'the destination'))
    unknown = capabilities.UNKNOWN
    checks = (
        ready,
        capabilities.Check('libvirt', unknown, 'judged by the destination'),
        capabilities.Check('qemu-postcopy-ram', unknown,
                           'judged by the destination'),
        capabilities.Check('tcg-postcopy', unknown,
                           'judged by the destination'),
        capabilities.Check(
            'postcopy-preempt',
            capabilities.PASS if PREEMPT in traits else unknown,
            'advertised' if PREEMPT in traits else 'not advertised'),
        capabilities.Check(
            'recovery',
            capabilities.PASS if RECOVERY in traits else capabilities.FAIL,
            '%s advertised' % RECOVERY if RECOVERY in traits else
            '%s not advertised (its libvirt or QEMU cannot resume a '
            'post-copy safely)' % RECOVERY),
    )
    return capabilities.HostReport(
        capabilities.HostFacts(hostname=hostname, qemu_version=qemu_version),
        checks)
