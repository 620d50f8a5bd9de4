# SPDX-License-Identifier: Apache-2.0
"""The devstack plugin, phase by phase as stack.sh runs it.

``devstack_stack.sh`` installs Nova 34 from its source tree in develop
mode into a venv of its own (as devstack does from git) and gives the
plugin the devstack helpers it calls; the plugin then installs this tree
there, writes nova.conf and the udev rule, and checks a lab host.
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

    def nova_conf(self):
        parser = configparser.RawConfigParser(default_section='\x00')
        parser.read(os.path.join(self.tmp, 'nova.conf'))
        return parser

    def in_venv(self, code):
        """Run ``code`` as nova-compute would: the venv, no PYTHONPATH."""
        env = dict(os.environ, NOVA_CONF=os.path.join(self.tmp, 'nova.conf'))
        env.pop('PYTHONPATH', None)
        return subprocess.run(
            [PYTHON, '-c', code], check=True, text=True,
            stdout=subprocess.PIPE, cwd=self.tmp, env=env).stdout.strip()

    def test_stack_installs_configures_and_checks(self):
        code, output = self.stack(
            'stack:install', 'stack:post-config', 'stack:extra',
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
        # stack:extra printed the check of host A.
        self.assertIn('post-copy: ready', output)
        code, output = self.stack('clean:')
        self.assertEqual(0, code, output[-2000:])
        self.assertFalse(os.path.exists(self.rule))

    def test_stack_stops_on_a_host_that_cannot_take_postcopy(self):
        base.lab('deny-userfaultfd', 'B')
        self.addCleanup(base.lab, 'allow-userfaultfd', 'B')
        code, output = self.stack(
            'stack:install', 'stack:extra',
            NOVA_POSTCOPY_CHECK_URI=base.lab('uri', 'B'),
            NOVA_POSTCOPY_REQUIRE_READY='True')
        self.assertEqual(1, code, output[-3000:])
        self.assertIn('post-copy: NOT READY', output)
        self.assertIn('userfaultfd', output)
        self.assertIn('stack.sh: nova-postcopy: this host cannot take '
                      'post-copy', output)
        code, output = self.stack(
            'stack:extra', NOVA_POSTCOPY_CHECK_URI=base.lab('uri', 'B'))
        self.assertEqual(0, code, output[-3000:])
        self.assertIn('post-copy: NOT READY', output)
