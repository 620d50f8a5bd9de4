# SPDX-License-Identifier: Apache-2.0
"""Tests on the two-host lab: real libvirt, real QEMU, real guests.

They need root and bring the lab up themselves (``tools/lab/lab up``);
they run one at a time (``--serial``): two cores carry one TCG guest and
one migration.
"""

import json
import os
import subprocess
import threading
import time
import uuid

import fixtures
import testtools
from testtools import content

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                   '..'))
LAB = os.path.join(TOP, 'tools', 'lab', 'lab')
DEST = 'qemu+tcp://10.250.0.2/system'


def lab(*args):
    return subprocess.run([LAB] + list(args), check=True, text=True,
                          stdout=subprocess.PIPE).stdout.strip()


# forky's libvirt 12.8 with trixie's QEMU 10.0: forky's own QEMU 11.1
# loses TCG guests switched to post-copy (issue #11, test_switchover.py).
DEFAULT_SUITE = 'forky-qemu10'


def lab_up(suite_a=DEFAULT_SUITE, suite_b=DEFAULT_SUITE):
    lab('up', '--suite-a', suite_a, '--suite-b', suite_b)


class LabTestCase(testtools.TestCase):
    suite = DEFAULT_SUITE

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        lab_up(cls.suite, cls.suite)
        lab('link', 'A', 'up')

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def guest(self, wss_mib, dirty_mibs=0, ram_mib=512,
              pattern='sequential'):
        name = 't%s' % uuid.uuid4().hex[:8]
        self.addCleanup(lab, 'destroy', name)
        lab('guest', name, '--ram-mib', str(ram_mib), '--wss-mib',
            str(wss_mib), '--dirty-mibs', str(dirty_mibs), '--pattern',
            pattern)
        return name

    def busy_guest(self):
        """Rewrites 256 MiB as fast as TCG goes; 32 MiB/s never catches up."""
        return self.guest(256)

    def quiet_guest(self):
        """Rewrites 64 MiB at 2 MiB/s: converges at 32 MiB/s."""
        return self.guest(64, 2)

    def config(self, text):
        path = os.path.join(self.tmp, 'nova.conf')
        with open(path, 'w') as handle:
            handle.write('[postcopy]\n%s\n' % text)
        return path

    def migrate(self, name, *extra, config=None, during=None,
                bandwidth_mibs=32):
        """Run nova-postcopy-migrate; return (exit code, report, output)."""
        report = os.path.join(self.tmp, '%s.json' % name)
        argv = ['nova-postcopy-migrate', lab('uri', 'A'), DEST, name,
                '--bandwidth-mibs', str(bandwidth_mibs),
                '--report', report] + list(extra)
        if config:
            argv += ['--config-file', config]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        if during is not None:
            thread = threading.Thread(target=during, daemon=True)
            thread.start()
        output, _ = process.communicate(timeout=600)
        self.addDetail('migrate-output', content.text_content(
            output))
        data = {}
        if os.path.exists(report):
            with open(report) as handle:
                data = json.load(handle)
        return process.returncode, data, output

    def check(self, name):
        return json.loads(lab('check', name))

    def assertHealthyOn(self, host, name):
        health = self.check(name)
        self.addDetail('health-%s' % name, content.text_content(
            json.dumps(health)))
        self.assertEqual(host, health['host'], health)
        self.assertTrue(health['running'], health)
        self.assertTrue(health['counter_advanced'], health)
        self.assertEqual(0, health['memory_errors'], health)
        self.assertFalse(health['panic'], health)
        self.assertFalse(health['reset'], health)


def wait_for(predicate, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
