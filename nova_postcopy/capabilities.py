# SPDX-License-Identifier: Apache-2.0
"""Whether a host can take part in post-copy, as verdicts over facts.

Facts are gathered elsewhere (:mod:`nova_postcopy.probe`); here they are
only judged, so every verdict is a pure function tested on recorded facts.
Each check says pass, fail, warn (works, at a cost) or unknown, why, and
what to do about it. The remedies prefer least privilege: giving the QEMU
user access to ``/dev/userfaultfd`` beats ``vm.unprivileged_userfaultfd =
1``, which hands userfaultfd to every process on the host, a known aid to
kernel exploits.
"""

import dataclasses
import typing

PASS, FAIL, WARN, UNKNOWN = 'pass', 'fail', 'warn', 'unknown'

LIBVIRT_POSTCOPY = (1, 3, 3)
LIBVIRT_RESUME = (8, 5, 0)
QEMU_RESUME = (3, 0, 0)
# libvirt 11.2.0 and 11.3.x crash the destination's daemon on a post-copy
# resume (a NULL fd dereferenced below qemuMigrationDstPrepareResume; seen
# on the lab with Debian 13's 11.3.0-3+deb13u3 and bookworm-backports'
# 11.3.0-2~bpo12+1). Upstream's NEWS.rst, v11.4.0 (2025-06-02), bug fixes:
# "qemu: Fix virtqemud crash when resuming failed post-copy migration. A
# regression introduced in libvirt-11.2.0 caused virtqemud on the
# destination host to crash when trying to resume failed post-copy
# migration." 12.8.0 resumed on the lab (research 7/7, lab tests).
LIBVIRT_RESUME_BROKEN = ((11, 2, 0), (11, 3, 999))
QEMU_MULTIFD_WITH_POSTCOPY = (10, 1, 0)
# QEMU 11.1 sending loses TCG guests switched to post-copy: on the lab they
# panicked (stale kernel data: rb-tree corruption in timer code) or hung on
# arrival, through libvirt (7 of 12) and with QEMU alone over QMP (4 of 17,
# postcopy-preempt on or off, QEMU 10.0 or 11.1 receiving); with QEMU 10.0
# sending none of 21 was lost. 11.1 also syncs the dirty bitmap ~10 times a
# second once postcopy-ram is on (10.0: once per pass), the pattern of
# QEMU issue #1565 (TCG guests corrupted by migration, fixed in 9.0 by
# "migration/postcopy: Fix high frequency sync"), but pre-copy at that rate
# lost none of 5: the exact defect is not pinned down. Measured: 10.0.x
# good, 11.1.2 bad; 10.1-11.0 not measured and counted bad; no fixed
# release known (None). KVM could not be measured (a warning there).
# doc/source/contributor/lab.rst.
QEMU_TCG_POSTCOPY_BROKEN = ((10, 1, 0), None)
# userfaultfd learned hugetlbfs (and shmem) in Linux 4.11.
KERNEL_HUGETLBFS_USERFAULT = (4, 11)
# net.ipv4.tcp_retries2 above this lets a cut link go unnoticed by QEMU for
# minutes (8: ~100 s, Linux's default 15: ~15 min), all that time a guest
# in post-copy waits on its missing pages before recovery can act.
TCP_RETRIES2_MAX = 8
TCP_RTO_MIN_S, TCP_RTO_MAX_S = 0.2, 120.0
# pidfd_getfd(2), through which a destination's nova-compute sets keepalive
# on its incoming QEMU's sockets (nova_postcopy.incoming_sockets).
KERNEL_PIDFD_GETFD = (5, 6)
# Yama's ptrace_scope 3 forbids every ptrace access, CAP_SYS_PTRACE or not.
YAMA_NO_ATTACH = 3


def udev_rule(group):
    """The udev rule that opens /dev/userfaultfd to ``group`` and root only."""
    return 'KERNEL=="userfaultfd", GROUP="%s", MODE="0660"' % group


UDEV_RULE = udev_rule('<the QEMU group>')
# Where AppArmor confines QEMU: the line, and the hook of libvirt's
# libvirt-qemu abstraction that is the host's own to edit.
APPARMOR_RULE = '/dev/userfaultfd rw,'
APPARMOR_LOCAL = '/etc/apparmor.d/local/abstractions/libvirt-qemu'


@dataclasses.dataclass(frozen=True)
class DeviceNode:
    mode: int
    uid: int
    gid: int


@dataclasses.dataclass(frozen=True)
class HostFacts:
    """What a probe found out; None where it could not tell."""

    hostname: str = ''
    kernel: typing.Optional[typing.Tuple[int, int]] = None
    dev_userfaultfd: typing.Optional[DeviceNode] = None
    unprivileged_userfaultfd: typing.Optional[int] = None
    qemu_uid: typing.Optional[int] = None
    qemu_gids: typing.Tuple[int, ...] = ()
    qemu_keeps_ptrace: typing.Optional[bool] = None
    libvirt_version: typing.Optional[typing.Tuple[int, int, int]] = None
    qemu_version: typing.Optional[typing.Tuple[int, int, int]] = None
    migration_capabilities: typing.Optional[typing.FrozenSet[str]] = None
    hugepage_sizes_kib: typing.Optional[typing.FrozenSet[int]] = None
    # The incoming QEMU's own answer to enabling postcopy-ram: None if not
    # asked, else (accepted, QEMU's message).
    postcopy_trial: typing.Optional[typing.Tuple[bool, str]] = None
    # net.ipv4.tcp_retries2 of the network namespace that was probed.
    tcp_retries2: typing.Optional[int] = None
    # What this host's guests run under: 'kvm', 'tcg' (Nova's virt_type
    # qemu), or None where nobody said.
    accelerator: typing.Optional[str] = None
    # AppArmor on, libvirt confining QEMU with it, and no rule there that
    # lets QEMU open /dev/userfaultfd.
    apparmor_denies_userfaultfd: typing.Optional[bool] = None
    # kernel.yama.ptrace_scope; None where Yama is not there (or not read).
    ptrace_scope: typing.Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    status: str
    why: str
    remedy: str = ''


@dataclasses.dataclass(frozen=True)
class HostReport:
    facts: HostFacts
    checks: typing.Tuple[Check, ...]

    def check(self, name):
        return next(c for c in self.checks if c.name == name)

    @property
    def postcopy_ready(self):
        """No check needed for post-copy failed (unknown is a maybe).

        A host that cannot send its guests by post-copy without losing
        them is not ready either, although it could receive them: a guest
        placed there for post-copy could not leave by it.
        """
        return all(self.check(name).status != FAIL
                   for name in POSTCOPY_CHECKS + SENDING_CHECKS)

    @property
    def recovery_ready(self):
        return self.postcopy_ready and self.check('recovery').status == PASS

    @property
    def preempt(self):
        return self.check('postcopy-preempt').status == PASS


def version_text(numbers):
    return '.'.join(str(n) for n in numbers) if numbers else 'unknown'


def check_userfaultfd(facts):
    """Can the QEMU process obtain a userfaultfd?"""
    name = 'userfaultfd'
    if facts.postcopy_trial is not None:
        accepted, message = facts.postcopy_trial
        if accepted:
            return Check(name, PASS, 'an incoming QEMU on this host '
                         'accepted the postcopy-ram capability')
        return Check(name, FAIL, 'an incoming QEMU on this host refused '
                     'post-copy: %s' % message, _remedy(facts))
    node = facts.dev_userfaultfd
    if node is not None and _may_open(node, facts) and \
            not facts.apparmor_denies_userfaultfd:
        return Check(name, PASS, '/dev/userfaultfd (mode %o) is open to '
                     'the QEMU user; QEMU 8 and later use it'
                     % (node.mode & 0o777))
    if facts.unprivileged_userfaultfd == 1:
        return Check(name, PASS, 'vm.unprivileged_userfaultfd = 1 lets '
                     'every process use userfaultfd(2)',
                     'works, but hands userfaultfd to every process on the '
                     'host; instead ' + _device_remedy(facts))
    if facts.qemu_keeps_ptrace:
        return Check(name, PASS, 'QEMU keeps CAP_SYS_PTRACE, which '
                     'userfaultfd(2) accepts')
    if facts.dev_userfaultfd is None and facts.kernel is None:
        return Check(name, UNKNOWN, 'could not inspect the kernel',
                     _remedy(facts))
    return Check(name, FAIL, _why_no_userfaultfd(facts), _remedy(facts))


def _may_open(node, facts):
    mode = node.mode & 0o777
    if facts.qemu_uid == 0:
        return True
    if facts.qemu_uid is not None and facts.qemu_uid == node.uid:
        return bool(mode & 0o600 == 0o600)
    if node.gid in facts.qemu_gids:
        return bool(mode & 0o060 == 0o060)
    return bool(mode & 0o006 == 0o006)


def _why_no_userfaultfd(facts):
    parts = []
    if facts.dev_userfaultfd is None:
        parts.append('no /dev/userfaultfd (Linux 6.1 and later have it)')
    else:
        parts.append('/dev/userfaultfd (mode %o, uid %d, gid %d) is closed '
                     'to the QEMU user'
                     % (facts.dev_userfaultfd.mode & 0o777,
                        facts.dev_userfaultfd.uid, facts.dev_userfaultfd.gid))
    parts.append('vm.unprivileged_userfaultfd = %s (0, the default since '
                 'Linux 5.11, allows only user-mode faults)'
                 % ('unknown' if facts.unprivileged_userfaultfd is None
                    else facts.unprivileged_userfaultfd))
    if facts.qemu_keeps_ptrace is False:
        parts.append('QEMU runs without CAP_SYS_PTRACE')
    if facts.apparmor_denies_userfaultfd:
        parts.append("AppArmor confines QEMU and libvirt's libvirt-qemu "
                     'abstraction does not let it open /dev/userfaultfd')
    return '; '.join(parts)


def _device_remedy(facts):
    return ('give the QEMU user access to /dev/userfaultfd, e.g. with the '
            'udev rule %s' % UDEV_RULE)


def _remedy(facts):
    if facts.apparmor_denies_userfaultfd:
        remedy = ('add the line "%s" to %s (new QEMU processes get it); '
                  % (APPARMOR_RULE, APPARMOR_LOCAL))
        node = facts.dev_userfaultfd
        if node is not None and _may_open(node, facts):
            return remedy.rstrip('; ')
        return remedy + _device_remedy(facts)
    if facts.kernel is not None and facts.kernel < (6, 1):
        return ('this kernel has no /dev/userfaultfd: upgrade to Linux 6.1 '
                'or later and grant access to it; meanwhile '
                'vm.unprivileged_userfaultfd = 1 works, but hands '
                'userfaultfd to every process')
    return (_device_remedy(facts) + '; avoid vm.unprivileged_userfaultfd = '
            '1, which hands userfaultfd to every process on the host')


def check_libvirt(facts):
    if facts.libvirt_version is None:
        return Check('libvirt', UNKNOWN, 'libvirt version not known')
    if facts.libvirt_version >= LIBVIRT_POSTCOPY:
        return Check('libvirt', PASS, 'libvirt %s supports post-copy'
                     % version_text(facts.libvirt_version))
    return Check('libvirt', FAIL, 'libvirt %s predates post-copy (1.3.3)'
                 % version_text(facts.libvirt_version),
                 'upgrade libvirt')


def check_qemu(facts):
    caps = facts.migration_capabilities
    if caps is None:
        return Check('qemu-postcopy-ram', UNKNOWN,
                     "QEMU's migration capabilities were not queried")
    if 'postcopy-ram' in caps:
        return Check('qemu-postcopy-ram', PASS, 'QEMU %s has postcopy-ram'
                     % version_text(facts.qemu_version))
    return Check('qemu-postcopy-ram', FAIL, 'QEMU %s lacks postcopy-ram'
                 % version_text(facts.qemu_version), 'upgrade QEMU')


def check_preempt(facts):
    caps = facts.migration_capabilities or frozenset()
    if 'postcopy-preempt' in caps and (facts.libvirt_version or ()) >= (
            11, 3, 0):
        return Check('postcopy-preempt', PASS, 'libvirt 11.3 and later turn '
                     'on postcopy-preempt: page faults skip the queue')
    return Check('postcopy-preempt', UNKNOWN if not caps else FAIL,
                 'faulted pages wait behind the background stream',
                 'libvirt 11.3 or later with QEMU 8.0 or later')


def check_recovery(facts):
    name = 'recovery'
    lv, qemu = facts.libvirt_version, facts.qemu_version
    if lv is None or qemu is None:
        return Check(name, UNKNOWN, 'libvirt or QEMU version not known')
    if lv < LIBVIRT_RESUME or qemu < QEMU_RESUME:
        return Check(name, FAIL, 'resuming a failed post-copy needs libvirt '
                     '8.5 and QEMU 3.0; this host has libvirt %s, QEMU %s'
                     % (version_text(lv), version_text(qemu)),
                     'upgrade libvirt and QEMU')
    low, high = LIBVIRT_RESUME_BROKEN
    if low <= lv <= high:
        return Check(name, FAIL, 'libvirt %s crashes the destination '
                     'libvirtd on a post-copy resume (a regression of '
                     '11.2.0, fixed in 11.4.0)' % version_text(lv),
                     'upgrade libvirt to 11.4.0 or later')
    return Check(name, PASS, 'libvirt %s and QEMU %s resume a post-copy '
                 'interrupted by a network failure'
                 % (version_text(lv), version_text(qemu)))


def check_tcg_postcopy(qemu_version, accelerator):
    """Can a guest under ``accelerator`` be sent by this QEMU, post-copy?

    Judged for the sending QEMU: a 10.0 source with an 11.1 destination
    kept every guest (issue #11), so the loss happens where pages are sent.
    """
    name = 'tcg-postcopy'
    if accelerator is None:
        return Check(name, UNKNOWN, 'accelerator not known (QEMU 10.1 and '
                     'later lose TCG guests at the switch; KVM not measured)')
    low, high = QEMU_TCG_POSTCOPY_BROKEN
    affected = qemu_version is None or qemu_version >= low and (
        high is None or qemu_version <= high)
    if accelerator != 'tcg':
        if affected:
            return Check(name, WARN, 'QEMU %s lost TCG guests at the switch '
                         'to post-copy on the lab (panics and hangs on '
                         'arrival, cause not pinned down); %s guests were '
                         'not measured'
                         % (version_text(qemu_version), accelerator.upper()),
                         'try a few switches on a test host first, or keep '
                         'QEMU 10.0.x on the hosts that send guests')
        return Check(name, PASS, '%s guests: the kernel tracks their dirty '
                     'pages' % accelerator.upper())
    if not affected:
        return Check(name, PASS, 'QEMU %s syncs the dirty bitmap once per '
                     'pass, as TCG needs' % version_text(qemu_version)
                     if qemu_version < low else 'QEMU %s is past the TCG '
                     'post-copy defect' % version_text(qemu_version))
    if qemu_version is None:
        return Check(name, FAIL, 'QEMU version not known, and QEMU %s and '
                     'later lose TCG guests switched to post-copy'
                     % version_text(low), _TCG_REMEDY)
    return Check(name, FAIL, 'QEMU %s loses TCG guests switched to '
                 'post-copy: they panic or hang on arrival, whatever QEMU '
                 'receives them' % version_text(qemu_version), _TCG_REMEDY)


_TCG_REMEDY = ('run guests under KVM ([libvirt] virt_type = kvm), or QEMU '
               '10.0.x on the hosts that send them; no fixed QEMU release is '
               'known. Meanwhile TCG guests migrate by pre-copy')


def tcp_give_up_s(retries):
    """Seconds until Linux drops a connection whose peer went silent.

    The retransmission timeout starts at its 200 ms floor on a LAN and
    doubles up to 120 s, once per retry.
    """
    return sum(min(TCP_RTO_MIN_S * 2 ** k, TCP_RTO_MAX_S)
               for k in range(retries + 1))


def check_outage_detection(facts):
    name = 'outage-detection'
    retries = facts.tcp_retries2
    if retries is None:
        return Check(name, UNKNOWN, 'net.ipv4.tcp_retries2 not read (only '
                     'on the host itself)')
    noticed = 'QEMU notices a cut link after about %.0f s ' \
        '(net.ipv4.tcp_retries2 = %d)' % (tcp_give_up_s(retries), retries)
    if retries <= TCP_RETRIES2_MAX:
        return Check(name, PASS, noticed)
    return Check(name, WARN, noticed + '; a guest in post-copy waits on its '
                 'missing pages that long before recovery can act',
                 'sysctl -w net.ipv4.tcp_retries2=5 (5-8) where migration '
                 'traffic runs (it applies to every TCP connection in that '
                 'network namespace); see the recovery guide')


def check_destination_keepalive(facts):
    """Can this host, as a destination, notice a cut in post-copy?

    Its QEMU only receives, and notices a dead connection when it next
    sends; nova-compute sets TCP keepalive on that QEMU's sockets so that
    it notices within seconds (``[postcopy] incoming_keepalive``).
    """
    name = 'destination-keepalive'
    if facts.kernel is None:
        return Check(name, UNKNOWN, 'kernel version not read (only on the '
                     'host itself)')
    late = ('; as a destination this host notices a cut in post-copy only '
            'when its guest next asks for a page, and no resume is accepted '
            'until then')
    if facts.kernel < KERNEL_PIDFD_GETFD:
        return Check(name, WARN, 'Linux %s lacks pidfd_getfd (5.6)%s'
                     % (version_text(facts.kernel), late),
                     'Linux 5.6 or later on compute hosts')
    if facts.ptrace_scope == YAMA_NO_ATTACH:
        return Check(name, WARN, 'kernel.yama.ptrace_scope = 3 forbids '
                     "reaching QEMU's sockets%s" % late,
                     'kernel.yama.ptrace_scope = 2 (or lower): the helper '
                     'holds CAP_SYS_PTRACE')
    return Check(name, PASS, "nova-compute can keep an incoming post-copy's "
                 'connections alive (pidfd_getfd, Linux %s): a cut is '
                 'noticed here within seconds' % version_text(facts.kernel))


POSTCOPY_CHECKS = ('userfaultfd', 'libvirt', 'qemu-postcopy-ram')
# Checks of a host as the sender of a migration; the negotiation asks them
# of the source only, per instance (see negotiate.instance_checks).
SENDING_CHECKS = ('tcg-postcopy',)


def judge(facts):
    """Every check of a host."""
    return HostReport(facts, (check_userfaultfd(facts), check_libvirt(facts),
                              check_qemu(facts), check_preempt(facts),
                              check_recovery(facts),
                              check_tcg_postcopy(facts.qemu_version,
                                                 facts.accelerator),
                              check_outage_detection(facts),
                              check_destination_keepalive(facts)))
