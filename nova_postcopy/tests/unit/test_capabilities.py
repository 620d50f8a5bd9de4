# SPDX-License-Identifier: Apache-2.0
import dataclasses

import fixtures

from nova_postcopy import capabilities as caps
from nova_postcopy import exception
from nova_postcopy import negotiate
from nova_postcopy.tests.unit import base

ALL_CAPS = frozenset(['postcopy-ram', 'postcopy-preempt', 'return-path'])

# A forky lab host: libvirt 12.8, QEMU 11.1, QEMU runs as root.
READY = caps.HostFacts(
    hostname='hostA', kernel=(6, 18),
    dev_userfaultfd=caps.DeviceNode(0o20600, 0, 0),
    unprivileged_userfaultfd=0, qemu_uid=0, qemu_gids=(0,),
    libvirt_version=(12, 8, 0), qemu_version=(11, 1, 2),
    migration_capabilities=ALL_CAPS, hugepage_sizes_kib=frozenset([2048]))
# A Debian 13 compute host: QEMU as libvirt-qemu (uid 64055, gid 64055),
# /dev/userfaultfd root-only, the sysctl at its default.
LOCKED = dataclasses.replace(
    READY, hostname='hostB', qemu_uid=64055, qemu_gids=(64055, 108),
    libvirt_version=(11, 3, 0), qemu_version=(10, 0, 2))


def replace(facts, **changes):
    return dataclasses.replace(facts, **changes)


class TestUserfaultfd(base.TestCase):

    def test_root_qemu_opens_the_device(self):
        self.assertEqual(caps.PASS, caps.check_userfaultfd(READY).status)

    def test_device_closed_to_the_qemu_user(self):
        check = caps.check_userfaultfd(LOCKED)
        self.assertEqual(caps.FAIL, check.status)
        self.assertIn('mode 600, uid 0, gid 0', check.why)
        self.assertIn('vm.unprivileged_userfaultfd = 0', check.why)
        self.assertIn('KERNEL=="userfaultfd"', check.remedy)
        self.assertIn('avoid vm.unprivileged_userfaultfd = 1', check.remedy)

    def test_device_opened_to_the_qemu_group(self):
        facts = replace(LOCKED, dev_userfaultfd=caps.DeviceNode(
            0o20660, 0, 108))
        self.assertEqual(caps.PASS, caps.check_userfaultfd(facts).status)

    def test_sysctl_works_but_is_discouraged(self):
        check = caps.check_userfaultfd(replace(LOCKED,
                                               unprivileged_userfaultfd=1))
        self.assertEqual(caps.PASS, check.status)
        self.assertIn('every process', check.remedy)

    def test_ptrace_capability(self):
        facts = replace(LOCKED, qemu_keeps_ptrace=True)
        self.assertEqual(caps.PASS, caps.check_userfaultfd(facts).status)

    def test_old_kernel_without_the_device(self):
        check = caps.check_userfaultfd(replace(LOCKED, kernel=(5, 15),
                                               dev_userfaultfd=None))
        self.assertEqual(caps.FAIL, check.status)
        self.assertIn('no /dev/userfaultfd', check.why)
        self.assertIn('Linux 6.1', check.remedy)

    def test_trial_by_an_incoming_qemu_decides(self):
        refused = replace(READY, postcopy_trial=(
            False, 'Userfaultfd not available: Inappropriate ioctl'))
        check = caps.check_userfaultfd(refused)
        self.assertEqual(caps.FAIL, check.status)
        self.assertIn('Inappropriate ioctl', check.why)
        accepted = replace(LOCKED, postcopy_trial=(True, ''))
        self.assertEqual(caps.PASS, caps.check_userfaultfd(accepted).status)

    def test_nothing_known(self):
        self.assertEqual(caps.UNKNOWN,
                         caps.check_userfaultfd(caps.HostFacts()).status)

    def test_apparmor_closes_a_device_the_group_may_open(self):
        opened = replace(LOCKED, dev_userfaultfd=caps.DeviceNode(
            0o20660, 0, 108), apparmor_denies_userfaultfd=True)
        check = caps.check_userfaultfd(opened)
        self.assertEqual(caps.FAIL, check.status)
        self.assertIn('AppArmor confines QEMU', check.why)
        self.assertEqual('add the line "/dev/userfaultfd rw," to '
                         '/etc/apparmor.d/local/abstractions/libvirt-qemu '
                         '(new QEMU processes get it)', check.remedy)
        # QEMU falls back to userfaultfd(2), which the sysctl opens.
        self.assertEqual(caps.PASS, caps.check_userfaultfd(replace(
            opened, unprivileged_userfaultfd=1)).status)

    def test_apparmor_named_when_the_device_is_closed_too(self):
        check = caps.check_userfaultfd(replace(
            LOCKED, apparmor_denies_userfaultfd=True))
        self.assertIn(caps.APPARMOR_LOCAL, check.remedy)
        self.assertIn('KERNEL=="userfaultfd"', check.remedy)

    def test_a_refused_trial_names_apparmor_in_its_remedy(self):
        refused = replace(READY, apparmor_denies_userfaultfd=True,
                          postcopy_trial=(False, 'Permission denied'))
        check = caps.check_userfaultfd(refused)
        self.assertEqual(caps.FAIL, check.status)
        self.assertIn(caps.APPARMOR_RULE, check.remedy)


class TestApparmorProbe(base.TestCase):
    """Read from a fake root with the abstraction libvirt 12.8 ships."""

    # The device lines of Debian forky's libvirt-qemu abstraction.
    SHIPPED = ('  #include <abstractions/base>\n  /dev/kvm rw,\n'
               '  /dev/net/tun rw,\n  /dev/vfio/vfio rw,\n'
               '  include if exists <local/abstractions/libvirt-qemu>\n')

    def setUp(self):
        super().setUp()
        import os
        self.root = self.useFixture(fixtures.TempDir()).path
        for folder in ('sys/module/apparmor/parameters',
                       'etc/apparmor.d/abstractions/libvirt-qemu.d',
                       'etc/apparmor.d/local/abstractions', 'etc/libvirt'):
            os.makedirs(os.path.join(self.root, folder))
        self.write('sys/module/apparmor/parameters/enabled', 'Y\n')
        self.write('etc/apparmor.d/abstractions/libvirt-qemu', self.SHIPPED)

    def write(self, path, text):
        import os
        with open(os.path.join(self.root, path), 'w') as handle:
            handle.write(text)

    def denies(self):
        from nova_postcopy import probe
        return probe.apparmor_denies_userfaultfd(self.root)

    def test_the_shipped_abstraction_denies(self):
        self.assertTrue(self.denies())

    def test_the_local_hook_with_the_rule_allows(self):
        self.write('etc/apparmor.d/local/abstractions/libvirt-qemu',
                   '# site\n' + caps.APPARMOR_RULE + '\n')
        self.assertFalse(self.denies())

    def test_a_drop_in_with_the_rule_allows(self):
        self.write('etc/apparmor.d/abstractions/libvirt-qemu.d/uffd',
                   '  /dev/userfaultfd rw,\n')
        self.assertFalse(self.denies())

    def test_a_read_only_rule_does_not_allow(self):
        self.write('etc/apparmor.d/local/abstractions/libvirt-qemu',
                   '/dev/userfaultfd r,\n')
        self.assertTrue(self.denies())

    def test_apparmor_off_or_not_libvirts_driver(self):
        self.write('etc/libvirt/qemu.conf', 'security_driver = "none"\n')
        self.assertFalse(self.denies())
        self.write('etc/libvirt/qemu.conf', '')
        self.write('sys/module/apparmor/parameters/enabled', 'N\n')
        self.assertFalse(self.denies())

    def test_without_libvirts_abstraction_nothing_is_confined(self):
        import os
        os.remove(os.path.join(self.root,
                               'etc/apparmor.d/abstractions/libvirt-qemu'))
        self.assertFalse(self.denies())


class TestVersions(base.TestCase):

    def test_recovery_known_good_and_broken(self):
        self.assertEqual(caps.PASS, caps.check_recovery(READY).status)
        broken = caps.check_recovery(LOCKED)
        self.assertEqual(caps.FAIL, broken.status)
        self.assertIn('crashes the destination libvirtd', broken.why)
        self.assertIn('fixed in 11.4.0', broken.why)
        for version, status in (((11, 2, 0), caps.FAIL),
                                ((11, 1, 0), caps.PASS),
                                ((11, 4, 0), caps.PASS),
                                ((12, 0, 0), caps.PASS)):
            self.assertEqual(status, caps.check_recovery(
                replace(READY, libvirt_version=version)).status, version)
        old = caps.check_recovery(replace(READY, libvirt_version=(8, 0, 0)))
        self.assertEqual(caps.FAIL, old.status)

    def test_qemu_capability_and_preempt(self):
        self.assertEqual(caps.PASS, caps.check_qemu(READY).status)
        self.assertEqual(caps.PASS, caps.check_preempt(READY).status)
        none = replace(READY, migration_capabilities=frozenset(['xbzrle']))
        self.assertEqual(caps.FAIL, caps.check_qemu(none).status)
        self.assertEqual(caps.UNKNOWN, caps.check_qemu(
            replace(READY, migration_capabilities=None)).status)

    def test_report(self):
        report = caps.judge(READY)
        self.assertTrue(report.postcopy_ready)
        self.assertTrue(report.recovery_ready)
        self.assertTrue(report.preempt)
        locked = caps.judge(LOCKED)
        self.assertFalse(locked.postcopy_ready)


class TestTcgPostcopy(base.TestCase):
    """QEMU 11.1 sending loses TCG guests switched to post-copy (#11)."""

    def test_by_version_and_accelerator(self):
        for qemu, accelerator, status in (
                ((10, 0, 2), 'tcg', caps.PASS),
                ((10, 1, 0), 'tcg', caps.FAIL),
                ((11, 1, 2), 'tcg', caps.FAIL),
                ((12, 0, 0), 'tcg', caps.FAIL),
                (None, 'tcg', caps.FAIL),
                ((11, 1, 2), 'kvm', caps.WARN),
                ((10, 0, 2), 'kvm', caps.PASS),
                ((11, 1, 2), None, caps.UNKNOWN)):
            check = caps.check_tcg_postcopy(qemu, accelerator)
            self.assertEqual(status, check.status, (qemu, accelerator))
            self.assertEqual('tcg-postcopy', check.name)
        broken = caps.check_tcg_postcopy((11, 1, 2), 'tcg')
        self.assertIn('QEMU 11.1.2 loses TCG guests switched to post-copy',
                      broken.why)
        self.assertIn('virt_type = kvm', broken.remedy)
        self.assertIn('QEMU 10.0.x', broken.remedy)
        kvm = caps.check_tcg_postcopy((11, 1, 2), 'kvm')
        self.assertIn('KVM guests were not measured', kvm.why)

    def test_a_fixed_release_would_pass(self):
        self.useFixture(fixtures.MockPatchObject(
            caps, 'QEMU_TCG_POSTCOPY_BROKEN', ((10, 1, 0), (11, 2, 99))))
        self.assertEqual(caps.FAIL, caps.check_tcg_postcopy(
            (11, 1, 2), 'tcg').status)
        self.assertEqual(caps.PASS, caps.check_tcg_postcopy(
            (11, 3, 0), 'tcg').status)

    def test_a_tcg_host_is_not_ready_and_advertises_no_trait(self):
        from nova_postcopy.compute import traits
        tcg = caps.judge(replace(READY, accelerator='tcg'))
        self.assertFalse(tcg.postcopy_ready)
        self.assertEqual(caps.FAIL, tcg.check('tcg-postcopy').status)
        self.assertEqual(set(), traits.traits_for(tcg))
        kvm = caps.judge(replace(READY, accelerator='kvm'))
        self.assertTrue(kvm.postcopy_ready)
        self.assertIn(traits.POSTCOPY, traits.traits_for(kvm))
        old = caps.judge(replace(LOCKED, qemu_uid=0, accelerator='tcg'))
        self.assertTrue(old.postcopy_ready)

    def test_a_destination_known_by_its_traits_is_judged_by_itself(self):
        from nova_postcopy.compute import traits
        ready = traits.report_from_traits('dest', [traits.POSTCOPY])
        self.assertTrue(ready.postcopy_ready)
        self.assertEqual(caps.UNKNOWN, ready.check('tcg-postcopy').status)
        self.assertFalse(traits.report_from_traits('dest', []).postcopy_ready)


class TestOutageDetection(base.TestCase):

    def test_linux_default_warns_and_says_how_long(self):
        check = caps.check_outage_detection(replace(READY, tcp_retries2=15))
        self.assertEqual(caps.WARN, check.status)
        self.assertIn('after about 925 s', check.why)
        self.assertIn('net.ipv4.tcp_retries2=5', check.remedy)
        # Slow to notice, not unable: readiness does not change.
        report = caps.judge(replace(READY, tcp_retries2=15))
        self.assertTrue(report.postcopy_ready)
        self.assertTrue(report.recovery_ready)

    def test_a_tuned_host_passes(self):
        check = caps.check_outage_detection(replace(READY, tcp_retries2=5))
        self.assertEqual(caps.PASS, check.status)
        self.assertIn('after about 13 s', check.why)
        self.assertEqual(caps.WARN, caps.check_outage_detection(
            replace(READY, tcp_retries2=caps.TCP_RETRIES2_MAX + 1)).status)

    def test_check_prints_the_warning_and_its_fix(self):
        import contextlib
        import io

        from nova_postcopy.cmd import check
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            check.print_table('qemu:///system',
                              caps.judge(replace(READY, tcp_retries2=15)))
        text = out.getvalue()
        self.assertIn('outage-detection   WARN    QEMU notices a cut link',
                      text)
        self.assertIn('fix: sysctl -w net.ipv4.tcp_retries2=5', text)
        self.assertIn('post-copy: ready; recovery: ready', text)

    def test_unknown_from_a_remote_uri(self):
        self.assertEqual(caps.UNKNOWN,
                         caps.check_outage_detection(READY).status)

    def test_destination_keepalive_needs_pidfd_getfd_and_ptrace(self):
        self.assertEqual(caps.PASS,
                         caps.check_destination_keepalive(READY).status)
        old = caps.check_destination_keepalive(replace(READY, kernel=(5, 4)))
        self.assertEqual(caps.WARN, old.status)
        self.assertIn('pidfd_getfd', old.why)
        self.assertIn('Linux 5.6', old.remedy)
        locked = caps.check_destination_keepalive(
            replace(READY, ptrace_scope=3))
        self.assertEqual(caps.WARN, locked.status)
        self.assertIn('ptrace_scope = 2', locked.remedy)
        self.assertEqual(caps.PASS, caps.check_destination_keepalive(
            replace(READY, ptrace_scope=2)).status)
        self.assertEqual(caps.UNKNOWN, caps.check_destination_keepalive(
            replace(READY, kernel=None)).status)
        # Late, not unable: readiness does not change.
        report = caps.judge(replace(READY, ptrace_scope=3))
        self.assertTrue(report.postcopy_ready)
        self.assertTrue(report.recovery_ready)

    def test_give_up_time_follows_linux_backoff(self):
        # 3 retries: 0.2 + 0.4 + 0.8 + 1.6 s; the lab measured 3.1-5 s.
        self.assertAlmostEqual(3.0, caps.tcp_give_up_s(3))
        self.assertAlmostEqual(924.6, caps.tcp_give_up_s(15))


class TestNegotiate(base.TestCase):

    def plan(self, source=READY, destination=READY, **instance):
        return negotiate.negotiate(caps.judge(source), caps.judge(destination),
                                   negotiate.InstanceFacts(name='vm1',
                                                           **instance))

    def test_both_ready(self):
        plan = self.plan()
        self.assertTrue(plan.postcopy)
        self.assertTrue(plan.recovery)
        self.assertTrue(plan.preempt)
        self.assertIn('post-copy allowed (recovery on', plan.summary())

    def test_destination_without_userfaultfd_falls_back(self):
        plan = self.plan(destination=LOCKED)
        self.assertFalse(plan.postcopy)
        self.assertIn('pre-copy only', plan.summary())
        self.assertIn('destination hostB', plan.summary())
        self.assertIn('KERNEL=="userfaultfd"', plan.summary())

    def test_either_direction(self):
        self.assertFalse(self.plan(source=LOCKED).postcopy)
        self.assertFalse(self.plan(destination=LOCKED).postcopy)

    def test_required_and_impossible_fails_before_anything_moves(self):
        error = self.assertRaises(exception.PostcopyRequired, self.plan,
                                  destination=LOCKED, mode='required')
        self.assertIn('requires post-copy', str(error))
        self.assertIn('userfaultfd', str(error))

    def test_forbidden(self):
        plan = self.plan(mode='forbidden')
        self.assertFalse(plan.postcopy)
        self.assertIn('forbidden', plan.summary())

    def test_bad_mode(self):
        self.assertRaises(exception.InvalidPostcopyMode, self.plan,
                          mode='maybe')

    def test_recovery_off_with_a_broken_destination_libvirt(self):
        unlocked = replace(LOCKED, qemu_uid=0)
        plan = self.plan(destination=unlocked)
        self.assertTrue(plan.postcopy)
        self.assertFalse(plan.recovery)
        self.assertIn('no recovery: destination libvirt 11.3.0 crashes',
                      plan.summary())

    def test_every_instance_incompatibility(self):
        old_qemu = replace(READY, qemu_version=(10, 0, 2))
        cases = [
            (dict(hostdevs=('0000:3b:00.0',)), 'passthrough'),
            (dict(mdevs=('nvidia-63',)), 'mdev'),
            (dict(vpmem=True), 'vpmem'),
            (dict(file_backed_memory=True), 'file-backed-memory'),
            (dict(hugepage_kib=1048576), 'hugepages'),
            (dict(tunnelled=True), 'tunnelled'),
            (dict(paused=True), 'paused'),
            (dict(block_migration=True), 'block-migration'),
        ]
        for instance, name in cases:
            plan = self.plan(**instance)
            self.assertFalse(plan.postcopy, name)
            self.assertTrue(plan.reasons[0].startswith(name), plan.reasons)
        multifd = negotiate.negotiate(
            caps.judge(old_qemu), caps.judge(READY),
            negotiate.InstanceFacts(parallel_connections=4))
        self.assertFalse(multifd.postcopy)
        self.assertIn('QEMU 10.1', multifd.summary())
        self.assertTrue(self.plan(parallel_connections=4).postcopy)
        self.assertTrue(self.plan(hugepage_kib=2048).postcopy)
        old_kernel = negotiate.negotiate(
            caps.judge(READY), caps.judge(replace(READY, kernel=(4, 9))),
            negotiate.InstanceFacts(hugepage_kib=2048))
        self.assertFalse(old_kernel.postcopy)
        self.assertIn('Linux 4.11', old_kernel.summary())

    def test_tcg_guest_leaves_qemu_11_1_by_pre_copy(self):
        plan = self.plan(accelerator='tcg')
        self.assertFalse(plan.postcopy)
        self.assertTrue(plan.reasons[0].startswith(
            'tcg-postcopy: source hostA: QEMU 11.1.2 loses TCG guests '
            'switched to post-copy'), plan.reasons)
        self.assertIn('(fix: run guests under KVM', plan.summary())
        self.assertRaises(exception.PostcopyRequired, self.plan,
                          accelerator='tcg', mode='required')
        self.assertTrue(self.plan(accelerator='kvm').postcopy)

    def test_the_sender_decides_for_tcg(self):
        qemu_10 = replace(LOCKED, qemu_uid=0)
        self.assertTrue(self.plan(source=qemu_10, destination=READY,
                                  accelerator='tcg').postcopy)
        self.assertFalse(self.plan(source=READY, destination=qemu_10,
                                   accelerator='tcg').postcopy)


class TestInstanceFromXml(base.TestCase):

    XML = """<domain type='kvm'><name>vm1</name>
      <memoryBacking><hugepages><page size='1' unit='G'/></hugepages>
        <source type='file'/></memoryBacking>
      <devices>
        <hostdev mode='subsystem' type='pci'><source>
          <address domain='0x0000' bus='0x3b' slot='0x00' function='0x1'/>
        </source></hostdev>
        <hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>
          <address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/>
        </source></hostdev>
        <memory model='nvdimm'><target><size unit='GiB'>1</size></target>
        </memory>
      </devices></domain>"""

    def test_everything_that_blocks_postcopy_is_found(self):
        from nova_postcopy import probe
        facts = probe.instance_facts(self.XML, paused=True)
        self.assertEqual('vm1', facts.name)
        self.assertEqual(('0000:3b:00.1',), facts.hostdevs)
        self.assertEqual(('c2177883-f1bb-47f0-914d-32a22e3a8804',),
                         facts.mdevs)
        self.assertTrue(facts.vpmem)
        self.assertTrue(facts.file_backed_memory)
        self.assertEqual(1048576, facts.hugepage_kib)
        self.assertTrue(facts.paused)

    def test_plain_guest(self):
        from nova_postcopy import probe
        facts = probe.instance_facts("<domain><name>g</name><devices/>"
                                     "</domain>")
        checks = negotiate.instance_checks(facts, READY, READY)
        self.assertEqual([], checks)

    def test_accelerator_from_the_domain_type(self):
        from nova_postcopy import probe
        for domain_type, accelerator in (('qemu', 'tcg'), ('kvm', 'kvm')):
            facts = probe.instance_facts(
                "<domain type='%s'><name>g</name><devices/></domain>"
                % domain_type)
            self.assertEqual(accelerator, facts.accelerator)

    def test_what_libvirt_offers(self):
        from nova_postcopy import probe
        guest = ("<capabilities><guest><arch name='x86_64'>%s</arch></guest>"
                 "</capabilities>")
        self.assertEqual('tcg', probe.offered_accelerator(
            guest % "<domain type='qemu'/>"))
        self.assertEqual('kvm', probe.offered_accelerator(
            guest % "<domain type='qemu'/><domain type='kvm'/>"))


class TestLocalFacts(base.TestCase):

    def test_reads_the_kernel_files_and_the_qemu_user(self):
        import os

        import fixtures

        from nova_postcopy import probe
        root = self.useFixture(fixtures.TempDir()).path
        for folder in ('dev', 'proc/sys/vm', 'proc/sys/net/ipv4',
                       'etc/libvirt',
                       'sys/kernel/mm/hugepages/hugepages-2048kB',
                       'sys/kernel/mm/hugepages/hugepages-1048576kB'):
            os.makedirs(os.path.join(root, folder))
        node = os.path.join(root, 'dev/userfaultfd')
        open(node, 'w').close()
        os.chmod(node, 0o660)
        with open(os.path.join(root, 'proc/sys/vm/unprivileged_userfaultfd'),
                  'w') as handle:
            handle.write('0\n')
        with open(os.path.join(root, 'proc/sys/net/ipv4/tcp_retries2'),
                  'w') as handle:
            handle.write('15\n')
        os.makedirs(os.path.join(root, 'proc/sys/kernel/yama'))
        with open(os.path.join(root, 'proc/sys/kernel/yama/ptrace_scope'),
                  'w') as handle:
            handle.write('1\n')
        with open(os.path.join(root, 'etc/libvirt/qemu.conf'), 'w') as handle:
            handle.write('# user = "nobody"\nuser = "root"\n')
        facts = probe.local_facts(root)
        self.assertEqual(0o660, facts['dev_userfaultfd'].mode & 0o777)
        self.assertEqual(0, facts['unprivileged_userfaultfd'])
        self.assertEqual(15, facts['tcp_retries2'])
        self.assertEqual(1, facts['ptrace_scope'])
        self.assertEqual(frozenset([2048, 1048576]),
                         facts['hugepage_sizes_kib'])
        self.assertEqual(0, facts['qemu_uid'])
        self.assertEqual(2, len(facts['kernel']))

    def test_default_qemu_user(self):
        from nova_postcopy import probe
        self.assertEqual('libvirt-qemu', probe.qemu_user('/nonexistent'))

    def test_qemu_group_from_qemu_conf_or_the_users_own(self):
        import grp
        import os

        import fixtures

        from nova_postcopy import probe
        root = self.useFixture(fixtures.TempDir()).path
        os.makedirs(os.path.join(root, 'etc/libvirt'))
        conf = os.path.join(root, 'etc/libvirt/qemu.conf')
        with open(conf, 'w') as handle:
            handle.write('user = "root"\n')
        self.assertEqual(grp.getgrgid(0).gr_name, probe.qemu_group(root))
        with open(conf, 'a') as handle:
            handle.write('#group = "nobody"\ngroup = "kvm"\n')
        self.assertEqual('kvm', probe.qemu_group(root))
        with open(conf, 'w') as handle:
            handle.write('user = "no-such-qemu-user"\n')
        self.assertIsNone(probe.qemu_group(root))


class TestUdevRuleCommand(base.TestCase):

    def run_check(self, qemu_conf_text, *argv):
        import os

        import fixtures

        from nova_postcopy.cmd import check
        folder = self.useFixture(fixtures.TempDir()).path
        conf = os.path.join(folder, 'qemu.conf')
        with open(conf, 'w') as handle:
            handle.write(qemu_conf_text)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_postcopy.probe.QEMU_CONF', conf))
        return self.run_main(check.main, *argv)

    def test_rule_for_the_group_qemu_runs_as(self):
        code, out, _ = self.run_check('user = "root"\ngroup = "kvm"\n',
                                      '--udev-rule')
        self.assertEqual(0, code)
        self.assertEqual('KERNEL=="userfaultfd", GROUP="kvm", MODE="0660"\n',
                         out)

    def test_missing_qemu_user_says_what_to_install(self):
        code, out, err = self.run_check('user = "no-such-qemu-user"\n',
                                        '--udev-rule')
        self.assertEqual((2, ''), (code, out))
        self.assertIn("QEMU's user 'no-such-qemu-user'", err)
        self.assertIn("install libvirt's QEMU driver first", err)

    def test_group_named_where_the_host_cannot_tell(self):
        code, out, _ = self.run_check('user = "no-such-qemu-user"\n',
                                      '--udev-rule', '--qemu-group', 'qemu')
        self.assertEqual(0, code)
        self.assertIn('GROUP="qemu"', out)
        code, _, err = self.run_check('', '--qemu-group', 'qemu')
        self.assertEqual(2, code)
        self.assertIn('--qemu-group goes with --udev-rule', err)

    def test_rule_is_about_this_host_only(self):
        code, _, err = self.run_check('', '--udev-rule', '--uri',
                                      'qemu+tcp://b/system')
        self.assertEqual(2, code)
        self.assertIn('--udev-rule and --apparmor-rule are about this host',
                      err)

    def test_apparmor_rule_only_where_apparmor_denies(self):
        for denies, printed in ((True, '%s\t%s\n' % (
                caps.APPARMOR_LOCAL, caps.APPARMOR_RULE)), (False, '')):
            self.useFixture(fixtures.MockPatch(
                'nova_postcopy.probe.apparmor_denies_userfaultfd',
                return_value=denies))
            self.assertEqual((0, printed, ''),
                             self.run_check('', '--apparmor-rule'))
