# SPDX-License-Identifier: Apache-2.0
"""Gathers :class:`nova_postcopy.capabilities.HostFacts`: the only I/O of
negotiation.

What the kernel and files say is read on the host this runs on; what
libvirt and QEMU say is asked over a libvirt connection, which may be a
remote host's. The most telling fact is asked of QEMU itself: an incoming
QEMU (``-incoming defer``) is started paused on the host and told to enable
postcopy-ram, which is exactly where a destination without userfaultfd
fails ("Postcopy is not supported"); it is destroyed right after.
"""

import glob
import grp
import json
import os
import pwd
import re
import uuid

from oslo_log import log as logging

from nova_postcopy import capabilities
from nova_postcopy import libvirt_api

LOG = logging.getLogger(__name__)

QEMU_CONF = '/etc/libvirt/qemu.conf'
APPARMOR_ENABLED = 'sys/module/apparmor/parameters/enabled'
APPARMOR_ABSTRACTION = '/etc/apparmor.d/abstractions/libvirt-qemu'
DEFAULT_QEMU_USER = 'libvirt-qemu'

TRIAL_XML = """<domain type='qemu'
    xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>16</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices><memballoon model='none'/></devices>
  <qemu:commandline>
    <qemu:arg value='-incoming'/>
    <qemu:arg value='defer'/>
  </qemu:commandline>
</domain>
"""


def _sysctl(root, name):
    """An integer sysctl; None where this host does not say."""
    try:
        with open(os.path.join(root, 'proc/sys', name)) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def local_facts(root='/'):
    """Facts of the kernel this runs on, and of the QEMU user."""
    facts = {}
    release = os.uname().release
    found = re.match(r'(\d+)\.(\d+)', release)
    if found:
        facts['kernel'] = (int(found.group(1)), int(found.group(2)))
    try:
        info = os.stat(os.path.join(root, 'dev/userfaultfd'))
        facts['dev_userfaultfd'] = capabilities.DeviceNode(
            info.st_mode, info.st_uid, info.st_gid)
    except FileNotFoundError:
        pass
    facts['unprivileged_userfaultfd'] = _sysctl(
        root, 'vm/unprivileged_userfaultfd')
    facts['tcp_retries2'] = _sysctl(root, 'net/ipv4/tcp_retries2')
    facts['ptrace_scope'] = _sysctl(root, 'kernel/yama/ptrace_scope')
    sizes = [int(re.search(r'hugepages-(\d+)kB', path).group(1))
             for path in glob.glob(os.path.join(
                 root, 'sys/kernel/mm/hugepages/hugepages-*kB'))]
    facts['hugepage_sizes_kib'] = frozenset(sizes)
    facts['apparmor_denies_userfaultfd'] = apparmor_denies_userfaultfd(root)
    user = qemu_user(os.path.join(root, QEMU_CONF.lstrip('/')))
    try:
        entry = pwd.getpwnam(user)
        facts['qemu_uid'] = entry.pw_uid
        facts['qemu_gids'] = tuple(sorted(set(
            [entry.pw_gid] + os.getgrouplist(user, entry.pw_gid))))
    except KeyError:
        pass
    return facts


def apparmor_denies_userfaultfd(root='/'):
    """Whether AppArmor keeps libvirt's QEMU from opening /dev/userfaultfd.

    Where AppArmor is on, libvirt confines each QEMU with a profile built on
    its ``libvirt-qemu`` abstraction, and the abstraction libvirt 12.8 ships
    (Debian forky, read on the lab) names /dev/kvm and /dev/vfio/vfio but
    not /dev/userfaultfd: the udev rule then opens the device to QEMU's
    group for nothing, QEMU falls back to userfaultfd(2), and that needs
    what the rule exists to avoid. Debian and Ubuntu turn AppArmor on by
    default. The abstraction's own hooks, ``libvirt-qemu.d/`` and
    ``local/abstractions/libvirt-qemu``, are where a host adds the rule.
    """
    try:
        with open(os.path.join(root, APPARMOR_ENABLED)) as handle:
            if handle.read().strip() != 'Y':
                return False
    except OSError:
        return False
    driver = _qemu_conf_value(os.path.join(root, QEMU_CONF.lstrip('/')),
                              'security_driver')
    if driver and driver != 'apparmor':
        return False
    base = os.path.join(root, APPARMOR_ABSTRACTION.lstrip('/'))
    if not os.path.exists(base):
        return False  # libvirt's AppArmor driver is not installed
    rule = re.compile(r'^\s*/dev/userfaultfd\s+\w*w\w*\s*,', re.M)
    for path in ([base] + sorted(glob.glob(base + '.d/*'))
                 + [os.path.join(root,
                                 capabilities.APPARMOR_LOCAL.lstrip('/'))]):
        try:
            with open(path) as handle:
                if rule.search(handle.read()):
                    return False
        except OSError:
            continue
    return True


def qemu_user(path):
    """The ``user`` of qemu.conf, or libvirt's default."""
    return _qemu_conf_value(path, 'user') or DEFAULT_QEMU_USER


def qemu_group(root='/'):
    """The group QEMU runs as, or None when its user does not exist.

    qemu.conf's ``group``, else the QEMU user's own group: the one to which
    /dev/userfaultfd can be opened without opening it to anyone else.
    """
    path = os.path.join(root, QEMU_CONF.lstrip('/'))
    group = _qemu_conf_value(path, 'group')
    if group:
        return group
    try:
        entry = pwd.getpwnam(qemu_user(path))
        return grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        return None


def _qemu_conf_value(path, key):
    try:
        with open(path) as handle:
            for line in handle:
                found = re.match(r'\s*%s\s*=\s*"([^"]+)"' % key, line)
                if found:
                    return found.group(1)
    except OSError:
        pass
    return None


def libvirt_facts(connection, trial=True):
    """Facts that libvirt and QEMU give over ``connection``."""
    facts = {'hostname': connection.getHostname(),
             'libvirt_version': version_triple(connection.getLibVersion()),
             'qemu_version': version_triple(connection.getVersion()),
             'accelerator': offered_accelerator(connection.getCapabilities())}
    if trial:
        facts.update(trial_incoming_qemu(connection))
    return facts


def offered_accelerator(capabilities_xml):
    """'kvm' where libvirt offers KVM guests, else 'tcg' (all it can run)."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(capabilities_xml)
    kvm = root.find("./guest/arch/domain[@type='kvm']")
    return 'kvm' if kvm is not None else 'tcg'


def trial_incoming_qemu(connection):
    """Ask an incoming QEMU on the host whether it can do post-copy."""
    lv = libvirt_api.import_libvirt()
    import libvirt_qemu
    name = 'nova-postcopy-trial-%s' % uuid.uuid4().hex[:8]
    try:
        domain = connection.createXML(TRIAL_XML.format(name=name),
                                      lv.VIR_DOMAIN_START_PAUSED)
    except lv.libvirtError as error:
        # Not an answer either way: the file-based facts decide instead.
        LOG.info('could not start a trial QEMU on %s: %s',
                 connection.getHostname(), error)
        return {}
    try:
        reply = json.loads(libvirt_qemu.qemuMonitorCommand(
            domain, '{"execute": "query-migrate-capabilities"}', 0))
        found = frozenset(item['capability'] for item in reply['return'])
        command = json.dumps({'execute': 'migrate-set-capabilities',
                              'arguments': {'capabilities': [
                                  {'capability': 'postcopy-ram',
                                   'state': True}]}})
        answer = json.loads(libvirt_qemu.qemuMonitorCommand(domain, command,
                                                            0))
        if 'error' in answer:
            trial = (False, answer['error'].get('desc', str(answer)))
        else:
            trial = (True, '')
        return {'migration_capabilities': found, 'postcopy_trial': trial}
    finally:
        domain.destroy()


# libvirt's domain types, as the accelerator they run under.
ACCELERATORS = {'qemu': 'tcg', 'kvm': 'kvm'}


def version_triple(number):
    """libvirt's 1000000 * major + 1000 * minor + micro, as a tuple."""
    return (number // 1000000, number // 1000 % 1000, number % 1000)


def host_facts(connection=None, local=True, trial=True):
    """HostFacts from this host's files and/or a libvirt connection."""
    facts = local_facts() if local else {}
    if connection is not None:
        facts.update(libvirt_facts(connection, trial=trial))
    return capabilities.HostFacts(**facts)


def instance_facts(domain_xml, name='', mode='allowed', paused=False,
                   parallel_connections=1, tunnelled=False,
                   block_migration=False):
    """:class:`nova_postcopy.negotiate.InstanceFacts` from a domain XML."""
    from xml.etree import ElementTree

    from nova_postcopy import negotiate

    root = ElementTree.fromstring(domain_xml)
    hostdevs, mdevs = [], []
    for dev in root.findall('./devices/hostdev'):
        if dev.get('type') == 'mdev':
            address = dev.find('./source/address')
            mdevs.append(address.get('uuid', 'mdev') if address is not None
                         else 'mdev')
        else:
            address = dev.find('./source/address')
            hostdevs.append('%s:%s:%s.%s' % tuple(
                (address.get(k) or '?').replace('0x', '')
                for k in ('domain', 'bus', 'slot', 'function'))
                if address is not None else dev.get('type', 'hostdev'))
    page = root.find('./memoryBacking/hugepages/page')
    hugepage_kib = None
    if page is not None:
        size = int(page.get('size'))
        unit = (page.get('unit') or 'KiB').lower()
        hugepage_kib = size * {'kib': 1, 'k': 1, 'mib': 1024, 'm': 1024,
                               'gib': 1024 ** 2, 'g': 1024 ** 2}.get(unit, 1)
    elif root.find('./memoryBacking/hugepages') is not None:
        hugepage_kib = 2048
    source = root.find('./memoryBacking/source')
    return negotiate.InstanceFacts(
        name=name or root.findtext('name', ''), mode=mode, paused=paused,
        hostdevs=tuple(hostdevs), mdevs=tuple(mdevs),
        vpmem=root.find("./devices/memory[@model='nvdimm']") is not None,
        file_backed_memory=(source is not None
                            and source.get('type') == 'file'),
        hugepage_kib=hugepage_kib,
        parallel_connections=parallel_connections, tunnelled=tunnelled,
        block_migration=block_migration,
        accelerator=ACCELERATORS.get(root.get('type'), root.get('type')))
