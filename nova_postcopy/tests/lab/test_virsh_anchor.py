# SPDX-License-Identifier: Apache-2.0
"""The bench's ``virsh_first_pass`` anchor says what virsh does.

The anchor switches when the iteration counter reaches 2, as virsh's
``--postcopy-after-precopy`` does: at the first pass's end where QEMU
syncs once a pass, at once where it re-syncs many times a second (the
bench table ``sim.workload.QEMU_SYNC``). The ``vs-1st`` target is measured
against it, so this runs the suite's own virsh on the lab
(``tools/lab/virsh_probe.py``) and checks when it switched, and that the
guest lived.
"""

import json
import os
import subprocess
import sys

from nova_postcopy.sim import workload
from nova_postcopy.tests.lab import base

PROBE = os.path.join(base.TOP, 'tools', 'lab', 'virsh_probe.py')
# The probe's guest: 512 MiB, about 270 MiB of it not zero, at 16 MiB/s.
FIRST_PASS_AT_LEAST_S = 10.0


class VirshSwitchesAsTheAnchor(object):
    qemu = None

    def test_virsh_switches_where_the_anchor_does(self):
        report = os.path.join(self.tmp, 'virsh.json')
        probe = subprocess.run(
            [sys.executable, PROBE, '--settle', '3', '--json', report],
            cwd=os.path.dirname(PROBE), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # Exit 1: the guest was not healthy where it ended.
        self.assertEqual(0, probe.returncode, probe.stdout)
        with open(report) as handle:
            data = json.load(handle)
        self.assertIn('QEMU %s.' % self.qemu, data['host_a'])
        self.assertEqual('B', data['health']['host'], probe.stdout)
        self.assertEqual(0, data['virsh_rc'], probe.stdout)
        self.assertEqual(1, len(data['virsh_said']), probe.stdout)
        waited = data['switched_s'] - data['first_data_s']
        if workload.QEMU_SYNC[self.qemu] == 'frequent':
            # At the first re-sync: most of the first pass still to send.
            self.assertLess(waited, 1.0, probe.stdout)
            self.assertGreater(data['remaining_at_switch_mib'],
                               data['first_pass_mib'] / 2, probe.stdout)
        else:
            self.assertGreater(waited, FIRST_PASS_AT_LEAST_S, probe.stdout)


class TestQemu10(VirshSwitchesAsTheAnchor, base.LabTestCase):
    qemu = '10.0'


class TestQemu11(VirshSwitchesAsTheAnchor, base.LabTestCase):
    suite = 'forky'
    qemu = '11.1'
