# SPDX-License-Identifier: Apache-2.0
"""The devstack plugin's AppArmor step, in bash, against a fake host.

The lab has no AppArmor (its kernel has no module), so the whole-devstack
test (``tests/lab/test_devstack.py``) only sees the step do nothing. Here
the plugin's function runs with ``nova-postcopy-check --apparmor-rule``'s
two possible answers, the file it writes in a temporary directory.
"""

import os
import subprocess

import fixtures

from nova_postcopy import capabilities
from nova_postcopy.tests.unit import base

LIB = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'devstack',
                   'lib', 'nova-postcopy')


class TestApparmorStep(base.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.local = os.path.join(self.tmp, 'apparmor.d', 'local',
                                  'abstractions', 'libvirt-qemu')

    def step(self, answer):
        """Run allow_userfaultfd_in_apparmor with the check answering."""
        fake_check = os.path.join(self.tmp, 'check')
        with open(fake_check, 'w') as handle:
            handle.write('#!/bin/sh\nprintf "%s"\n' % answer)
        os.chmod(fake_check, 0o755)
        script = ('function die { echo "die: $*" >&2; exit 1; }\n'
                  'function sudo { "$@"; }\n'
                  'source "%s"\n'
                  # The check the plugin would run with nova-compute's
                  # Python: here a script that answers as told.
                  'function _nova_postcopy_python { echo "%s"; }\n'
                  'allow_userfaultfd_in_apparmor\n' % (LIB, fake_check))
        return subprocess.run(['bash', '-c', script], text=True,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)

    def test_adds_the_line_once_where_apparmor_denies(self):
        answer = '%s\\t%s\\n' % (self.local, capabilities.APPARMOR_RULE)
        for _ in range(2):
            done = self.step(answer)
            self.assertEqual(0, done.returncode, done.stdout)
        with open(self.local) as handle:
            self.assertEqual(capabilities.APPARMOR_RULE + '\n', handle.read())

    def test_touches_nothing_where_apparmor_allows(self):
        done = self.step('')
        self.assertEqual(0, done.returncode, done.stdout)
        self.assertFalse(os.path.exists(os.path.dirname(self.local)))
