# SPDX-License-Identifier: Apache-2.0
"""The bench's ``--qemu`` says what the lab's QEMU does.

``nova-postcopy-bench --qemu V`` models QEMU V's dirty-bitmap syncs with
post-copy enabled from a table (``sim.workload.QEMU_SYNC``) measured by
``tools/lab/sync_probe.py``. This runs the probe again on each QEMU the
table names, so that a new QEMU in a suite, or a wrong entry, fails here
rather than skewing every figure in ``benchmark.rst``.
"""

import json
import os
import subprocess
import sys

from nova_postcopy.sim import workload
from nova_postcopy.tests.lab import base

PROBE = os.path.join(base.TOP, 'tools', 'lab', 'sync_probe.py')


class SyncModeMatchesTheBench(object):
    qemu = None

    def test_probe_agrees_with_the_bench_table(self):
        report = os.path.join(self.tmp, 'sync.json')
        probe = subprocess.run(
            [sys.executable, PROBE, '--settle', '3', '--watch', '5',
             '--json', report], cwd=os.path.dirname(PROBE), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # Exit 1: a guest was not healthy on the source after the abort.
        self.assertEqual(0, probe.returncode, probe.stdout)
        with open(report) as handle:
            data = json.load(handle)
        version = '.'.join(data['host_a']['qemu'].split('.')[:2])
        self.assertEqual(self.qemu, version, data['host_a'])
        modes = {run['postcopy']: run['mode'] for run in data['runs']}
        self.assertEqual('pass', modes[False], probe.stdout)
        self.assertEqual(workload.QEMU_SYNC[version], modes[True],
                         probe.stdout)


class TestQemu10(SyncModeMatchesTheBench, base.LabTestCase):
    qemu = '10.0'


class TestQemu11(SyncModeMatchesTheBench, base.LabTestCase):
    suite = 'forky'
    qemu = '11.1'
