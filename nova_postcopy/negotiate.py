# SPDX-License-Identifier: Apache-2.0
"""Source, destination and instance into one plan for one migration.

Nova adds VIR_MIGRATE_POSTCOPY to every migration of a host that permits
it and learns at the destination's Prepare that it cannot ("Postcopy is not
supported"). Here the decision is made before anything moves, per
migration, with every reason, and a migration that cannot use post-copy
runs as pre-copy instead of failing, unless the instance requires it.
"""

import dataclasses
import typing

from nova_postcopy import capabilities
from nova_postcopy import exception
from nova_postcopy import instance_mode

FAIL = capabilities.FAIL
# What a destination's QEMU answers at Prepare when it cannot get a
# userfaultfd; nothing has moved yet, so pre-copy can start clean.
REFUSED_AT_PREPARE = 'Postcopy is not supported'
MODES = instance_mode.MODES


@dataclasses.dataclass(frozen=True)
class InstanceFacts:
    """What matters about an instance for post-copy.

    Taken from its domain XML, flavor, image and the requested migration.
    """

    name: str = ''
    mode: str = 'allowed'
    paused: bool = False
    hostdevs: typing.Tuple[str, ...] = ()
    mdevs: typing.Tuple[str, ...] = ()
    vpmem: bool = False
    file_backed_memory: bool = False
    hugepage_kib: typing.Optional[int] = None
    parallel_connections: int = 1
    tunnelled: bool = False
    block_migration: bool = False
    # 'kvm' or 'tcg' (a domain of type 'qemu'), from the domain XML.
    accelerator: typing.Optional[str] = None


def instance_checks(instance, source, destination):
    """Checks that make post-copy impossible for this instance.

    :param source: the source's :class:`capabilities.HostFacts`.
    :param destination: the destination's.
    """
    checks = []

    def refuse(name, why, remedy=''):
        checks.append(capabilities.Check(name, FAIL, why, remedy))

    if instance.hostdevs:
        refuse('passthrough', 'PCI passthrough (%s): QEMU cannot post-copy '
               'VFIO devices' % ', '.join(instance.hostdevs))
    if instance.mdevs:
        refuse('mdev', 'mediated devices (%s, vGPU): their state cannot be '
               'post-copied' % ', '.join(instance.mdevs))
    if instance.vpmem:
        refuse('vpmem', 'virtual persistent memory is not post-copied '
               '(Nova excludes it too)')
    if instance.file_backed_memory:
        refuse('file-backed-memory', 'guest memory backed by a file needs '
               'every process sharing it to handle userfaults')
    if instance.hugepage_kib:
        old = _older(capabilities.KERNEL_HUGETLBFS_USERFAULT, 'kernel',
                     (source, destination))
        if old:
            refuse('hugepages', 'userfaultfd on huge pages (hugetlbfs) needs '
                   'Linux 4.11; %s runs an older kernel' % ', '.join(old),
                   'upgrade the kernel')
        sizes = destination.hugepage_sizes_kib
        if sizes is not None and instance.hugepage_kib not in sizes:
            refuse('hugepages', 'the instance uses %d KiB huge pages, the '
                   'destination offers %s KiB: QEMU needs the same page '
                   'size on both sides' % (
                       instance.hugepage_kib,
                       ', '.join(str(s) for s in sorted(sizes)) or 'none'))
    if instance.parallel_connections > 1:
        too_old = _older(capabilities.QEMU_MULTIFD_WITH_POSTCOPY,
                         'qemu_version', (source, destination),
                         unknown_is_older=True)
        if too_old:
            refuse('multifd', '%d parallel connections with post-copy need '
                   'QEMU 10.1 on both hosts (%s: older or unknown); the '
                   'destination guest would end up shut off'
                   % (instance.parallel_connections, ', '.join(too_old)))
    if instance.tunnelled:
        refuse('tunnelled', 'a tunnelled migration has no return path for '
               'page requests')
    if instance.paused:
        refuse('paused', 'libvirt refuses post-copy for a paused domain; a '
               'paused guest converges by pre-copy anyway')
    sending = capabilities.check_tcg_postcopy(source.qemu_version,
                                              instance.accelerator)
    if sending.status == FAIL:
        refuse(sending.name, 'source %s: %s' % (
            source.hostname or '', sending.why), sending.remedy)
    if instance.block_migration:
        refuse('block-migration', 'local disks are mirrored during pre-copy; '
               'a post-copy failure would leave them split between the '
               'hosts')
    return checks


def _older(minimum, fact, hosts, unknown_is_older=False):
    """Names of the hosts whose ``fact`` (a version) is below ``minimum``."""
    older = []
    for host in hosts:
        value = getattr(host, fact)
        if (value is None and unknown_is_older) or (
                value is not None and value < minimum):
            older.append(host.hostname or 'a host')
    return older


@dataclasses.dataclass(frozen=True)
class Plan:
    postcopy: bool
    recovery: bool
    preempt: bool
    bandwidth_mibs: int
    reasons: typing.Tuple[str, ...]

    def summary(self):
        if self.postcopy:
            head = 'post-copy allowed (recovery %s, preempt %s)' % (
                'on' if self.recovery else 'off',
                'on' if self.preempt else 'not confirmed')
        else:
            head = 'pre-copy only'
        return '%s: %s' % (head, '; '.join(self.reasons))


def negotiate(source, destination, instance, bandwidth_mibs=0):
    """The plan for migrating ``instance`` from ``source`` to ``destination``.

    :param source: :class:`capabilities.HostReport` of the source.
    :param destination: the destination's report.
    :param instance: :class:`InstanceFacts`.
    :raises nova_postcopy.exception.PostcopyRequired: the instance requires
        post-copy and it cannot be had; nothing has moved.
    """
    if instance.mode not in MODES:
        raise exception.InvalidPostcopyMode(mode=instance.mode,
                                            allowed=', '.join(MODES))
    blockers = ['%s: %s%s' % (c.name, c.why, ' (fix: %s)' % c.remedy
                              if c.remedy else '')
                for c in instance_checks(instance, source.facts,
                                         destination.facts)]
    for role, report in (('source', source), ('destination', destination)):
        for name in capabilities.POSTCOPY_CHECKS:
            check = report.check(name)
            if check.status == FAIL:
                blockers.append('%s %s: %s (fix: %s)' % (
                    role, report.facts.hostname or '', check.why,
                    check.remedy or 'see nova-postcopy-check'))
    if instance.mode == 'forbidden':
        return Plan(False, False, False, 0, (
            'post-copy forbidden for this instance (flavor or image)',))
    if blockers:
        if instance.mode == 'required':
            raise exception.PostcopyRequired(instance=instance.name,
                                             missing='; '.join(blockers))
        return Plan(False, False, False, 0, tuple(blockers))
    recovery = source.recovery_ready and destination.recovery_ready
    reasons = ['both hosts and the instance support post-copy']
    if not recovery:
        for role, report in (('source', source),
                             ('destination', destination)):
            check = report.check('recovery')
            if check.status != capabilities.PASS:
                reasons.append('no recovery: %s %s' % (role, check.why))
    return Plan(True, recovery, source.preempt and destination.preempt,
                bandwidth_mibs, tuple(reasons))


# libvirt's VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY (Nova builds the other
# parameters, and its fakelibvirt lacks the constant).
PARAM_BANDWIDTH_POSTCOPY = 'bandwidth.postcopy'


def call_flags(lv, flags, params, postcopy, bandwidth_mibs, auto_converge):
    """The migration call's flags and parameters for post-copy or not.

    The one place the plan becomes libvirt's flags, for the CLI and the
    Nova driver alike: post-copy with its background bandwidth, or
    pre-copy with auto-converge where the operator permits it (post-copy is
    the better way out of a busy guest; without it, slowing the guest is
    what is left before the budget).

    :param lv: the libvirt module (or Nova's fakelibvirt).
    :returns: (flags, params), ``params`` a new dict.
    """
    params = dict(params)
    params.pop(PARAM_BANDWIDTH_POSTCOPY, None)
    flags &= ~(lv.VIR_MIGRATE_POSTCOPY | lv.VIR_MIGRATE_AUTO_CONVERGE)
    if postcopy:
        flags |= lv.VIR_MIGRATE_POSTCOPY
        if bandwidth_mibs:
            params[PARAM_BANDWIDTH_POSTCOPY] = bandwidth_mibs
    elif auto_converge:
        flags |= lv.VIR_MIGRATE_AUTO_CONVERGE
    return flags, params


def retry_as_precopy(error_text, mode):
    """Whether a post-copy call refused at Prepare goes again as pre-copy.

    Nothing has moved when the destination's QEMU refuses post-copy at
    Prepare; an instance that requires post-copy fails there instead.
    """
    return (mode != 'required'
            and REFUSED_AT_PREPARE in (error_text or ''))
