# SPDX-License-Identifier: Apache-2.0
"""nova-compute on the source killed during a live migration, and back.

Pre-copy: libvirt cancels the job with its client, the guest runs on the
source, Nova's start-up resets the instance there and marks the migration
``error``. Post-copy: the job cannot be cancelled and completes without
nova-compute; at start our driver finds it and runs Nova's post-migration,
so the instance ends on the destination, where its guest runs. In both, the
server ends ``ACTIVE`` where the guest is, and nothing is lost.
"""

import os
import signal
import time

from nova_postcopy.tests.cloud import base

PIDFILE = os.path.join(base.LAB, 'cloud', 'run', 'nova-compute-hostA.pid')


def kill_compute_a():
    with open(PIDFILE) as handle:
        os.killpg(int(handle.read()), signal.SIGKILL)


class TestComputeRestart(base.CloudTestCase):

    def kill_and_restart(self):
        kill_compute_a()
        time.sleep(3)
        self.restart_compute('hostA')

    def settled(self, server):
        return base.wait_for(lambda: (lambda s: s if s.task_state is None
                                      else None)(
            self.cloud.compute.get_server(server)), base.MIGRATION_S, 2)

    def test_killed_during_precopy_guest_stays_on_the_source(self):
        server = self.boot('lab-busy', flavor='lab.512.forbidden')
        self.cloud.compute.live_migrate_server(server, host='hostB',
                                               block_migration=False)
        self.assertIsNotNone(self.wait_running(server))
        time.sleep(5)
        self.kill_and_restart()
        self.assertIsNotNone(self.settled(server))
        ended = self.ended_migration(server)
        self.assertIsNotNone(ended, self.migration(server, any_state=True))
        self.assertEqual('error', ended.status)
        self.assertHealthyOn('hostA', server)
        self.assertEqual(['hostA'], self.allocation_hosts(server))

    def test_killed_during_postcopy_completed_on_the_destination(self):
        server = self.boot('lab-slow')
        self.cloud.compute.live_migrate_server(server, host='hostB',
                                               block_migration=False)
        self.force_postcopy(server)
        time.sleep(2)
        self.kill_and_restart()
        self.assertIsNotNone(self.settled(server))
        ended = self.ended_migration(server)
        self.assertIsNotNone(ended, self.migration(server, any_state=True))
        self.assertEqual('completed', ended.status)
        self.assertHealthyOn('hostB', server)
        self.assertEqual(['hostB'], self.allocation_hosts(server))
        lines = self.decisions(server)
        self.assertTrue(any('found in post-copy at start' in line
                            for line in lines), lines)
