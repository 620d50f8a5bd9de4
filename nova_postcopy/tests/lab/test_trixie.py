# SPDX-License-Identifier: Apache-2.0
"""The same decisions on Debian 13's stack (libvirt 11.3, QEMU 10.0)."""

from nova_postcopy.tests.lab import base
from nova_postcopy.tests.lab import test_migrations


class TestTrixie(test_migrations.SwitchesAfterRealPasses, base.LabTestCase):
    suite = 'trixie'
    # QEMU 10.0 counts 1, 2, 3: one per pass, and one at the switch.
    counter_races = False
