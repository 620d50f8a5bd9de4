# SPDX-License-Identifier: Apache-2.0
"""The plan into libvirt's flags, once for the CLI and the driver."""

from nova.tests.fixtures import libvirt as fakelibvirt

from nova_postcopy import negotiate
from nova_postcopy.tests.unit import base

LIVE = fakelibvirt.VIR_MIGRATE_LIVE
POSTCOPY = fakelibvirt.VIR_MIGRATE_POSTCOPY
AUTO_CONVERGE = fakelibvirt.VIR_MIGRATE_AUTO_CONVERGE
BW = negotiate.PARAM_BANDWIDTH_POSTCOPY


class TestCallFlags(base.TestCase):

    def flags(self, flags, params, postcopy, bandwidth=0, auto=False):
        return negotiate.call_flags(fakelibvirt, flags, params, postcopy,
                                    bandwidth, auto)

    def test_postcopy_with_its_bandwidth_and_no_auto_converge(self):
        flags, params = self.flags(LIVE | AUTO_CONVERGE, {'x': 1}, True,
                                   bandwidth=4, auto=True)
        self.assertEqual(LIVE | POSTCOPY, flags)
        self.assertEqual({'x': 1, BW: 4}, params)

    def test_precopy_drops_postcopy_and_may_auto_converge(self):
        given = {'x': 1, BW: 4}
        flags, params = self.flags(LIVE | POSTCOPY, given, False, auto=True)
        self.assertEqual(LIVE | AUTO_CONVERGE, flags)
        self.assertEqual({'x': 1}, params)
        self.assertEqual({'x': 1, BW: 4}, given)  # the caller's, untouched
        flags, _ = self.flags(LIVE | POSTCOPY, given, False, auto=False)
        self.assertEqual(LIVE, flags)

    def test_retry_as_precopy_only_where_prepare_refused(self):
        refused = ('operation failed: Postcopy is not supported: '
                   'Userfaultfd not available')
        self.assertTrue(negotiate.retry_as_precopy(refused, 'allowed'))
        self.assertFalse(negotiate.retry_as_precopy(refused, 'required'))
        self.assertFalse(negotiate.retry_as_precopy('No route to host',
                                                    'allowed'))
        self.assertFalse(negotiate.retry_as_precopy(None, 'allowed'))
