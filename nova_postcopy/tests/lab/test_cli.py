# SPDX-License-Identifier: Apache-2.0
"""nova-postcopy-migrate refuses bad input before anything moves; Ctrl-C
in pre-copy leaves the guest running on the source (resumed if the CLI had
paused it), and in post-copy, where abort is impossible, watches on."""

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


def domain_state(name):
    import libvirt
    connection = libvirt.open(base.lab('uri', 'A'))
    try:
        return list(connection.lookupByName(name).state())
    finally:
        connection.close()


def interruptible(argv):
    """The CLI as a terminal runs it: Ctrl-C delivered, not ignored."""
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


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
        self.assertIn("Unknown switch policy 'vmotion'", result.stderr)

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

    def test_a_guest_paused_at_the_budget_is_given_up_and_resumed(self):
        name = self.busy_guest()
        config = self.config('precopy_timeout_max = 10\n'
                             'precopy_budget_action = pause')
        process = interruptible(
            ['nova-postcopy-migrate', base.lab('uri', 'A'), base.DEST, name,
             '--no-postcopy', '--bandwidth-mibs', '2', '--quiet',
             '--config-file', config])
        self.addCleanup(process.kill)
        # Paused by the CLI at the 10 s budget; at 2 MiB/s the 512 MiB
        # guest is far from converging, so after as long again it is
        # given up on, and must run again.
        self.assertTrue(base.wait_for(
            lambda: domain_state(name)[0] == 3, 90),
            'the guest was never paused: %s' % domain_state(name))
        output, _ = process.communicate(timeout=90)
        self.assertEqual(1, process.returncode, output)
        self.assertIn('%s: aborted' % name, output)
        self.assertIn('paused to converge for 10 s, as long as the pre-copy '
                      'budget', output)
        self.assertEqual(1, domain_state(name)[0])
        self.assertHealthyOn('A', name)

    def test_interrupt_in_postcopy_watches_on_to_the_end(self):
        name = self.busy_guest()
        # Slow post-copy, so that it is interrupted while it runs.
        config = self.config('switch_policies = first_pass\n'
                             'postcopy_bandwidth_mibs = 4')
        process = interruptible(
            ['nova-postcopy-migrate', base.lab('uri', 'A'), base.DEST, name,
             '--bandwidth-mibs', '32', '--quiet', '--config-file', config])
        self.addCleanup(process.kill)
        self.assertTrue(base.wait_for(
            lambda: domain_state(name) == [3, 12], 120),
            'post-copy never started')
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=300)
        self.assertEqual(0, process.returncode, output)
        self.assertIn('a migration in post-copy cannot be aborted', output)
        self.assertIn('%s: postcopy in' % name, output)
        self.assertNotIn('aborting the migration', output)
        self.assertHealthyOn('B', name)
