# SPDX-License-Identifier: Apache-2.0
"""nova-postcopy-migrate refuses bad input before anything moves, and
Ctrl-C in pre-copy leaves the guest on the source."""

import signal
import subprocess

from nova_postcopy.tests.lab import base


def job_running(name):
    import libvirt
    connection = libvirt.open(base.lab('uri', 'A'))
    try:
        return (connection.lookupByName(name).jobInfo()[0]
                != libvirt.VIR_DOMAIN_JOB_NONE)
    finally:
        connection.close()


def migrate_cmd(*args):
    return subprocess.run(['nova-postcopy-migrate'] + list(args),
                          capture_output=True, text=True, timeout=120)


class TestCommandLine(base.LabTestCase):

    def test_unknown_domain(self):
        result = migrate_cmd(base.lab('uri', 'A'), base.DEST, 'no-such')
        self.assertEqual(2, result.returncode)
        self.assertIn("no domain 'no-such'", result.stderr)

    def test_unknown_policy(self):
        result = migrate_cmd(base.lab('uri', 'A'), base.DEST, 'x',
                             '--policy', 'vmotion')
        self.assertEqual(2, result.returncode)
        self.assertIn("unknown switch policy 'vmotion'", result.stderr)

    def test_unreachable_source(self):
        result = migrate_cmd('qemu+unix:///system?socket=/nonexistent',
                             base.DEST, 'x')
        self.assertEqual(2, result.returncode)
        self.assertIn('cannot connect to the source', result.stderr)

    def test_domain_already_migrating_and_interrupt(self):
        name = self.busy_guest()
        # A shell's background job ignores SIGINT, and so would its
        # children; this one must take Ctrl-C as a terminal gives it.
        first = subprocess.Popen(
            ['nova-postcopy-migrate', base.lab('uri', 'A'), base.DEST, name,
             '--no-postcopy', '--bandwidth-mibs', '32', '--quiet'],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.addCleanup(first.kill)
        # Right after the lab starts, libvirtd probes QEMU for seconds
        # before the first job exists; wait for the job, not for a time.
        self.assertTrue(base.wait_for(lambda: job_running(name), 60),
                        'the first migration never started')
        second = migrate_cmd(base.lab('uri', 'A'), base.DEST, name)
        self.assertEqual(2, second.returncode)
        self.assertIn('already has a job running', second.stderr)
        first.send_signal(signal.SIGINT)
        output, _ = first.communicate(timeout=60)
        self.assertEqual(130, first.returncode, output)
        self.assertIn('the guest stays on the source', output)
        self.assertHealthyOn('A', name)
