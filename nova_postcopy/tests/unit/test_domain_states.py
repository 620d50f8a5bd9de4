# SPDX-License-Identifier: Apache-2.0
"""One reading of the source domain's state for every port."""

from nova_postcopy import domain_states as ds
from nova_postcopy import jobs
from nova_postcopy.tests.unit import base


class TestFailedEnding(base.TestCase):

    def test_a_late_postcopy_event_does_not_hide_a_split_memory(self):
        # The switch was asked; the event has not arrived, the call failed:
        # the source is paused in post-copy failed, the memory is split.
        self.assertEqual(jobs.POSTCOPY_FAILED, ds.failed_ending(
            ds.POSTCOPY_FAILED, postcopy_asked=True, cancel_requested=False))

    def test_a_source_running_the_guest_holds_every_page(self):
        for cancel, kind in ((False, jobs.FAILED), (True, jobs.CANCELLED)):
            self.assertEqual(kind, ds.failed_ending(
                (ds.RUNNING, 5), postcopy_asked=True,
                cancel_requested=cancel))

    def test_without_a_switch_it_is_a_precopy_failure(self):
        # Even paused (by the budget): no page left the source for good.
        self.assertEqual(jobs.FAILED, ds.failed_ending(
            (ds.PAUSED, 1), postcopy_asked=False, cancel_requested=False))

    def test_a_gone_source_after_a_switch_is_never_rolled_back(self):
        self.assertEqual(jobs.POSTCOPY_FAILED, ds.failed_ending(
            None, postcopy_asked=True, cancel_requested=True))


class TestOutgoingJob(base.TestCase):

    def test_shutting_down_and_postcopy_are_still_running(self):
        self.assertFalse(ds.outgoing_job_over(ds.IN_POSTCOPY))
        self.assertFalse(ds.outgoing_job_over((ds.SHUTDOWN, 0)))
        self.assertFalse(ds.outgoing_job_over(ds.SWITCHING))

    def test_endings(self):
        for state in (None, ds.MIGRATED_AWAY, ds.POSTCOPY_FAILED):
            self.assertTrue(ds.outgoing_job_over(state), state)

    def test_described_for_an_operator(self):
        self.assertEqual('paused (post-copy failed)',
                         ds.describe(ds.POSTCOPY_FAILED))
        self.assertEqual('shut off (migrated)', ds.describe((5, 4)))
        self.assertEqual('gone', ds.describe(None))
        self.assertEqual('state 7', ds.describe((7, 0)))
