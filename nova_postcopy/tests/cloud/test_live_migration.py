# SPDX-License-Identifier: Apache-2.0
"""``openstack server migrate --live-migration`` on the lab cloud.

nova-compute runs our driver on real libvirt and QEMU; these are the
migrations an operator runs, checked the way an operator would check them
(server status and host, the migration record, placement, nova-compute's
log) and then inside the guest.
"""

import time

from nova_postcopy.tests.cloud import base


class TestLiveMigration(base.CloudTestCase):

    def test_busy_guest_switched_to_postcopy_by_the_policy(self):
        server = self.boot('lab-busy')
        final, migration, took = self.live_migrate(server)
        self.assertEqual('completed', migration.status)
        self.assertEqual(('hostA', 'hostB'),
                         (migration.source_compute, migration.dest_compute))
        self.assertHealthyOn('hostB', server)
        self.assertEqual(['hostB'], self.allocation_hosts(server))
        lines = self.decisions(server)
        plans = [line for line in lines if 'post-copy allowed' in line]
        switches = [line for line in lines if 'switch to post-copy (' in line]
        self.assertEqual(1, len(plans), lines)
        self.assertEqual(1, len(switches), lines)
        # The policy that switched is named with its reason.
        self.assertRegex(switches[0], r'switch to post-copy \((forecast|'
                         r'stall|timeout)\): \S')
        self.assertTrue(any('ended: postcopy' in line for line in lines),
                        lines)

    def test_quiet_guest_converges_without_a_switch(self):
        server = self.boot('lab-quiet')
        final, migration, took = self.live_migrate(server)
        self.assertEqual('completed', migration.status)
        self.assertHealthyOn('hostB', server)
        lines = self.decisions(server)
        self.assertFalse([line for line in lines
                          if 'switch to post-copy (' in line], lines)
        self.assertTrue(any('ended: converged' in line for line in lines),
                        lines)

    def test_abort_during_precopy_keeps_the_guest_on_the_source(self):
        server = self.boot('lab-steady')

        def abort(migration):
            running = self.wait_running(server)
            self.assertIsNotNone(running)
            time.sleep(3)
            self.cloud.compute.abort_server_migration(running.id, server)

        final, migration, took = self.live_migrate(server, during=abort)
        self.assertEqual('cancelled', migration.status)
        self.assertHealthyOn('hostA', server)
        self.assertEqual(['hostA'], self.allocation_hosts(server))
