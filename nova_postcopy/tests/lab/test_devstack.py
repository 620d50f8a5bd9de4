# SPDX-License-Identifier: Apache-2.0
"""The devstack plugin inside real devstack, phase by phase as stack.sh.

``devstack_stack.sh`` runs the plugin in a copy of the devstack snapshot
(``../shared/third_party/devstack``): devstack's own libraries, a compute
subnode's local.conf, the phases in stack.sh's order with neutron's
nova.conf options written in the background; only what starts services or
changes the host is stubbed (it says which). The plugin installs this tree
into devstack's global venv, configures nova.conf (which nova-compute
reads as nova-cpu.conf), opens /dev/userfaultfd to QEMU, and checks a lab
host.
"""

import configparser
import os
import subprocess

from nova_postcopy.tests.lab import base

HARNESS = os.path.join(os.path.dirname(__file__), 'devstack_stack.sh')
VENV = os.environ.get('NOVA_POSTCOPY_DEVSTACK_VENV',
                      os.path.join(base.TOP, '.venv-devstack'))
PYTHON = os.path.join(VENV, 'bin', 'python')
DRIVER = 'postcopy.PostcopyLibvirtDriver'


class TestDevstackPlugin(base.LabTestCase):

    def setUp(self):
        super().setUp()
        self.rule = os.path.join(self.tmp, 'rules.d', '60-postcopy.rules')
        os.makedirs(os.path.dirname(self.rule))

    def stack(self, *phases, **settings):
        env = dict(os.environ, NOVA_POSTCOPY_UDEV_RULE=self.rule,
                   NOVA_POSTCOPY_QEMU_GROUP='kvm')
        env.update(settings)
        done = subprocess.run([HARNESS, self.tmp] + list(phases), env=env,
                              text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=1200)
        return done.returncode, done.stdout

    @property
    def cpu_conf_path(self):
        """What nova-compute reads: devstack's nova-cpu.conf."""
        return os.path.join(self.tmp, 'etc', 'nova', 'nova-cpu.conf')

    def nova_conf(self):
        parser = configparser.RawConfigParser(default_section='\x00',
                                              strict=False)
        parser.read(self.cpu_conf_path)
        return parser

    def in_venv(self, code):
        """Run ``code`` as nova-compute would: the venv, no PYTHONPATH."""
        env = dict(os.environ, NOVA_CONF=self.cpu_conf_path)
        env.pop('PYTHONPATH', None)
        return subprocess.run(
            [PYTHON, '-c', code], check=True, text=True,
            stdout=subprocess.PIPE, cwd=self.tmp, env=env).stdout.strip()

    def test_stack_installs_configures_and_checks(self):
        # stack.sh writes neutron's options into nova.conf in the background
        # across post-config; here each of its writes is stretched to half a
        # second (a loaded host), overlapping the plugin's, which waits.
        code, output = self.stack(
            'stack:install', 'stack:post-config', 'stack:extra',
            NOVA_POSTCOPY_SLOW_BACKGROUND_INISET='1',
            NOVA_POSTCOPY_SWITCH_POLICIES='forecast,timeout',
            NOVA_POSTCOPY_CHECK_URI=base.lab('uri', 'A'),
            NOVA_POSTCOPY_REQUIRE_READY='True')
        self.assertEqual(0, code, output[-3000:])
        # Nova from its tree, in develop mode, as devstack installs it; the
        # shim linked into that tree.
        where = self.in_venv('import nova, nova.virt.postcopy as p; '
                             'print(nova.__file__, p.__file__)').split()
        self.assertIn(os.path.join(VENV, 'src', 'nova-'), where[0])
        self.assertEqual(
            os.path.join(base.TOP, 'nova', 'virt', 'postcopy',
                         '__init__.py'), os.path.realpath(where[1]))
        conf = self.nova_conf()
        self.assertEqual(DRIVER, conf['DEFAULT']['compute_driver'])
        # Neither writer lost anything: neutron's options arrived too.
        self.assertIn('region_name', conf['neutron'])
        self.assertEqual('True',
                         conf['libvirt']['live_migration_permit_post_copy'])
        self.assertEqual('forecast,timeout',
                         conf['postcopy']['switch_policies'])
        # What nova-compute does with that file: Nova's options, the class
        # load_compute_driver imports, ours from the same file.
        loaded = self.in_venv(
            'import os, nova.conf; from oslo_utils import importutils; '
            'from nova_postcopy import conf as np_conf; '
            'c = nova.conf.CONF; '
            'c(["--config-file", os.environ["NOVA_CONF"]], project="nova"); '
            'cls = importutils.import_class("nova.virt." + c.compute_driver);'
            'print(cls.__module__, cls.__name__, '
            'c.libvirt.live_migration_permit_post_copy, '
            '",".join(np_conf.load().switch_policies))')
        self.assertEqual('nova_postcopy.compute.driver PostcopyLibvirtDriver '
                         'True forecast,timeout', loaded)
        with open(self.rule) as handle:
            self.assertEqual(
                'KERNEL=="userfaultfd", GROUP="kvm", MODE="0660"\n',
                handle.read())
        # nova-compute can start our privsep helper through rootwrap.
        with open(os.path.join(self.tmp, 'etc', 'nova', 'rootwrap.d',
                               'nova-postcopy.filters')) as handle:
            self.assertIn('nova_postcopy.privileged.incoming_migration',
                          handle.read())
        # devstack's explicit device list for QEMU now names the device.
        with open(os.path.join(self.tmp, 'qemu.conf')) as handle:
            self.assertIn('"/dev/userfaultfd",', handle.read())
        # stack:extra printed the check of host A.
        self.assertIn('post-copy: ready', output)
        code, output = self.stack('clean')
        self.assertEqual(0, code, output[-2000:])
        self.assertFalse(os.path.exists(self.rule))

    def test_stack_stops_on_a_host_that_cannot_take_postcopy(self):
        base.lab('deny-userfaultfd', 'B')
        self.addCleanup(base.lab, 'allow-userfaultfd', 'B')
        code, output = self.stack(
            'stack:install', 'stack:post-config', 'stack:extra',
            NOVA_POSTCOPY_CHECK_URI=base.lab('uri', 'B'),
            NOVA_POSTCOPY_REQUIRE_READY='True')
        self.assertEqual(1, code, output[-3000:])
        self.assertIn('post-copy: NOT READY', output)
        self.assertIn('userfaultfd', output)
        self.assertIn('nova-postcopy: this host cannot take post-copy',
                      output)
        code, output = self.stack(
            'stack:extra', NOVA_POSTCOPY_CHECK_URI=base.lab('uri', 'B'))
        self.assertEqual(0, code, output[-3000:])
        self.assertIn('post-copy: NOT READY', output)

    def test_extra_fails_where_nova_compute_would_not_load_the_driver(self):
        # An operator's local.conf that sets Nova's driver for nova-compute
        # wins over the plugin (devstack merges it into nova-cpu.conf last).
        code, output = self.stack(
            'stack:post-config', 'stack:extra',
            NOVA_POSTCOPY_GRANT_USERFAULTFD='False',
            NOVA_POSTCOPY_LOCAL_CONF='[[post-config|$NOVA_CPU_CONF]]\n'
                                     '[DEFAULT]\n'
                                     'compute_driver = libvirt.LibvirtDriver')
        self.assertEqual(1, code, output[-3000:])
        self.assertIn('nova-cpu.conf has compute_driver = '
                      'libvirt.LibvirtDriver, not '
                      'postcopy.PostcopyLibvirtDriver', output)
