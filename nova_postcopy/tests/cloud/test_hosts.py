# SPDX-License-Identifier: Apache-2.0
"""Hosts that cannot take post-copy, and hosts being drained.

A host whose QEMU cannot get a userfaultfd must say so where the cloud can
see it (placement traits), keep a guest that requires post-copy off it
before anything moves, and take a guest that merely allows it by pre-copy,
saying why. Draining a host, as operators do before maintenance, moves
several guests at once: every decision is logged against its own instance.
"""

import re

import openstack

from nova_postcopy.tests.cloud import base

POSTCOPY_TRAIT = 'CUSTOM_POSTCOPY_LIVE_MIGRATION'


class TestUserfaultfdDenied(base.CloudTestCase):

    def deny_on_b(self):
        base.lab('deny-userfaultfd', 'B')
        self.addCleanup(self.restart_compute, 'hostB')
        self.addCleanup(base.lab, 'allow-userfaultfd', 'B')
        # What an operator does after changing a host: restart its
        # nova-compute, which probes the host again at start.
        self.restart_compute('hostB')
        self.assertTrue(base.wait_for(
            lambda: POSTCOPY_TRAIT not in self.host_traits('hostB'), 120, 2),
            self.host_traits('hostB'))
        self.assertIn(POSTCOPY_TRAIT, self.host_traits('hostA'))

    def test_required_refused_and_allowed_moved_by_precopy(self):
        self.deny_on_b()
        required = self.boot('lab-quiet', flavor='lab.512.required')
        # Refused by the pre-checks, before anything moved: the API answers
        # the caller at once (Nova words a failed pre-check on a requested
        # host as "No valid host"); the reason is in nova-compute's log.
        error = self.assertRaises(
            openstack.exceptions.BadRequestException,
            self.cloud.compute.live_migrate_server, required, host='hostB',
            block_migration=False)
        self.assertIn('No valid host', str(error))
        self.assertHealthyOn('hostA', required)
        self.assertEqual(['hostA'], self.allocation_hosts(required))
        refusal = [line for line in self.compute_log_lines(required)
                   if 'requires post-copy' in line]
        self.assertTrue(refusal, self.compute_log_lines(required)[-20:])
        self.assertIn('userfaultfd', refusal[0])

        allowed = self.boot('lab-quiet')
        final, migration, took = self.live_migrate(allowed)
        self.assertEqual('completed', migration.status)
        self.assertHealthyOn('hostB', allowed)
        plans = [line for line in self.decisions(allowed)
                 if 'pre-copy only' in line]
        self.assertEqual(1, len(plans), self.decisions(allowed))
        # The source judges the destination by its traits, and says how to
        # learn more there.
        self.assertIn('hostB', plans[0])
        self.assertIn('does not advertise %s' % POSTCOPY_TRAIT, plans[0])
        self.assertIn('fix: run nova-postcopy-check on hostB', plans[0])


class TestDrainHost(base.CloudTestCase):

    def test_three_guests_drained_two_at_a_time(self):
        servers = self.boot_many(('lab-busy', 'lab-quiet', 'lab-steady'))
        for server in servers:
            self.cloud.compute.live_migrate_server(server, host='hostB',
                                                   block_migration=False)
        for server in servers:
            final = base.wait_for(
                lambda: (lambda s: s if s.status != 'MIGRATING'
                         and s.task_state is None else None)(
                    self.cloud.compute.get_server(server)),
                base.MIGRATION_S, 2)
            self.assertIsNotNone(final)
        ended = re.compile(r'(\S+) ended: (\w+)')
        for server in servers:
            self.assertEqual('completed',
                             self.ended_migration(server).status)
            self.assertHealthyOn('hostB', server)
            lines = self.decisions(server)
            # One plan and one end for this instance, each naming it.
            plans = [line for line in lines if 'live migration to hostB'
                     in line]
            ends = [m for m in map(ended.search, lines) if m]
            self.assertEqual(1, len(plans), lines)
            self.assertEqual(1, len(ends), lines)
            self.assertIn(server.id, ends[0].group(0))
