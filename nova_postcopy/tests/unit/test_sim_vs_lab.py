# SPDX-License-Identifier: Apache-2.0
"""The simulator against migrations recorded on the lab.

``data/lab_traces.json`` holds what the demo measured on the forky hosts
(libvirt 12.8, QEMU 11.1, TCG, pre-copy capped at 32 MiB/s over the veth,
given the recordings' rates for it): a busy guest by pre-copy alone and
with the default chain, and a quiet guest. The same workloads are
simulated with the same
policies; pass ends, the data each pass left, the switch moment and the
total time must agree within TOLERANCE.
"""

import json
import os

from nova_postcopy import clock
from nova_postcopy import monitor
from nova_postcopy.policies import base as policy_base
from nova_postcopy.policies import chain
from nova_postcopy.sim import job
from nova_postcopy.sim import model
from nova_postcopy.sim import workload
from nova_postcopy.tests.unit import base

TOLERANCE = 0.10
TRACES = os.path.join(os.path.dirname(__file__), 'data', 'lab_traces.json')
DEMO_BUDGET_S = 30.0


def simulate(conf, trace):
    guest = workload.Workload.parse(trace['workload'])
    postcopy = '--no-postcopy' not in trace['args']
    sim = model.MigrationModel(guest, postcopy_enabled=postcopy,
                               max_downtime_ms=conf.max_downtime_ms)
    virtual = clock.VirtualClock()
    watcher = monitor.MigrationMonitor(
        chain.PolicyChain.from_conf(conf),
        policy_base.MigrationContext(DEMO_BUDGET_S, conf.max_downtime_ms,
                                     postcopy),
        virtual, poll_interval=conf.poll_interval)
    outcome = watcher.run(job.SimulatedJob(sim, virtual))
    return outcome, outcome.passes


class TestSimulatorAgainstLab(base.TestCase):

    def setUp(self):
        super().setUp()
        with open(TRACES) as handle:
            self.traces = json.load(handle)

    def assertClose(self, measured, simulated, what):
        self.assertLessEqual(abs(simulated - measured),
                             TOLERANCE * abs(measured),
                             '%s: measured %.3f, simulated %.3f'
                             % (what, measured, simulated))

    def compare(self, key):
        trace = self.traces[key]
        measured = trace['measured']
        outcome, passes = simulate(self.conf, trace)
        self.assertEqual(measured['result'], outcome.result)
        self.assertClose(measured['total_s'], outcome.total_s, 'total time')
        if measured['switch_at_s'] is not None:
            self.assertClose(measured['switch_at_s'], outcome.switch_at_s,
                             'switch moment')
        for real, simulated in zip(measured['passes'], passes):
            label = 'pass %d' % real['number']
            self.assertClose(real['end_s'], simulated.end_s,
                             label + ' end')
            self.assertClose(real['dirtied'], simulated.dirtied,
                             label + ' data left')
        return outcome, passes

    def test_busy_guest_precopy_only(self):
        _, passes = self.compare('a')
        self.assertGreaterEqual(len(passes), 3)

    def test_busy_guest_default_chain(self):
        outcome, _ = self.compare('b')
        self.assertEqual('forecast', outcome.switch_policy)

    def test_quiet_guest(self):
        outcome, _ = self.compare('c')
        self.assertFalse(outcome.switched)
        measured = self.traces['c']['measured']['downtime_ms']
        self.assertLess(abs(outcome.downtime_ms - measured), 15)
