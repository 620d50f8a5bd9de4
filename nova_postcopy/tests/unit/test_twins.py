# SPDX-License-Identifier: Apache-2.0
import json

from nova_postcopy.bench import twins
from nova_postcopy.cmd import bench
from nova_postcopy.policies import base as policy_base
from nova_postcopy.sim import workload
from nova_postcopy.tests.unit import base

# A phased guest of 16 GiB over 25 Gbit/s: its first pass ends inside its
# first busy phase (0-10 s). Its 3 GiB working set keeps the steady twin
# from converging: over 2 GiB (the matrix's), QEMU's threshold (1.5 GB)
# holds most of the set unwalked and the twin converges.
PHASED = ('ram_gib=16,link_gbps=25,wss_gib=3,dirty_gbps=50,zero_pct=10,'
          'pattern=phased,seed=1')
BUSY = PHASED.replace('pattern=phased', 'pattern=steady').replace(
    'seed=1', 'seed=2')


class Always:
    """A chain that always gives the same decision."""

    def __init__(self, decision):
        self.decision = decision

    def decide(self, progress, context):
        return self.decision


class Progress:
    def __init__(self, elapsed_s):
        self.elapsed_s = elapsed_s


class TestTwins(base.TestCase):

    def setUp(self):
        super().setUp()
        self.phased = workload.Workload.parse(PHASED)

    def test_told_apart_when_a_sync_shows_the_quiet_phase(self):
        apart = twins.told_apart_s(self.conf, self.phased)
        self.assertGreater(apart, 10.0)
        self.assertLess(apart, 11.0)

    def test_holding_the_twin_until_then_costs_it(self):
        twin = twins.compare(self.conf, self.phased)
        self.assertLess(twin.default_s, twin.told_apart_s)
        self.assertGreater(twin.held_s, twin.told_apart_s)
        self.assertGreater(twin.held_ratio, 1.15)
        self.assertLess(twin.default_ratio, twin.held_ratio)

    def test_twin_stands_in_for_the_guest_it_differs_from_by_seed(self):
        busy = workload.Workload.parse(BUSY)
        result = twins.bound(self.conf, [self.phased, busy])
        self.assertEqual(1, len(result.twins))
        held = round(result.twins[0].held_ratio, 4)
        # The busy guest is the only one pre-copy cannot finish.
        self.assertLess(result.p95_today, 1.15)
        self.assertEqual(held, result.p95_lowest)
        self.assertEqual(held, result.p95_floor)

    def test_held_chain_holds_switches_only(self):
        context = policy_base.MigrationContext(60)
        switch = policy_base.Decision(policy_base.Action.SWITCH, 'now')
        held = twins.HeldChain(Always(switch), until_s=10)
        early = held.decide(Progress(9.9), context)
        self.assertIs(policy_base.Action.CONTINUE, early.action)
        self.assertIn('held until 10.0 s: now', early.reason)
        self.assertEqual(switch, held.decide(Progress(10.0), context))
        abort = policy_base.Decision(policy_base.Action.ABORT, 'budget')
        self.assertEqual(abort, twins.HeldChain(Always(abort), 10).decide(
            Progress(1), context))


class TestTwinsCommand(base.TestCase):

    def test_json(self):
        code, out, _ = self.run_main(bench.main, '--twins', '--json',
                                     '--workload', PHASED,
                                     '--workload', BUSY)
        self.assertEqual(0, code)
        data = json.loads(out)
        self.assertEqual(1, len(data['twins']))
        self.assertGreater(data['lowest_p95_any_policy'], 1.15)
        self.assertIn('told_apart_s', data['twins'][0])

    def test_policies_are_not_its_business(self):
        code, _, err = self.run_main(bench.main, '--twins', '--policy',
                                     'default')
        self.assertEqual(2, code)
        self.assertIn('drop --policy, --check and --rows', err)

    def test_rst_is_the_guides_table(self):
        code, out, _ = self.run_main(bench.main, '--twins', '--rst',
                                     '--workload', PHASED,
                                     '--workload', BUSY)
        self.assertEqual(0, code)
        lines = out.splitlines()
        rules = [i for i, line in enumerate(lines)
                 if line and set(line) == {'=', ' '}]
        self.assertEqual(3, len(rules))
        self.assertIn('held vs-1st', lines[rules[0] + 1])
        body = lines[rules[1] + 1:rules[2]]
        self.assertEqual(1, len(body))
        self.assertTrue(body[0].startswith('ram=16G link=25G'), body)
        self.assertIn('``vs-1st p95`` of the default chain', out)
