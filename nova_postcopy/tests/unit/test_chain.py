# SPDX-License-Identifier: Apache-2.0
import os
import sys

import fixtures

from nova_postcopy import exception
from nova_postcopy import plugins
from nova_postcopy.policies import base as policy_base
from nova_postcopy.policies import chain
from nova_postcopy.policies import forecast
from nova_postcopy.policies import timeout
from nova_postcopy import progress
from nova_postcopy.tests.unit import base

GIB = base.GIB
Action = policy_base.Action


class Always(policy_base.SwitchPolicy):
    name = 'always'

    def decide(self, progress, context):
        return self.switch('because')


class Never(policy_base.SwitchPolicy):
    name = 'never'

    def decide(self, progress, context):
        return self.keep_going()


def ctx(budget_s=100, allowed=True):
    return policy_base.MigrationContext(budget_s, 500, allowed)


def tracker_at(*points):
    """A tracker fed (time, processed GiB) points."""
    tracker = progress.ProgressTracker()
    for t, gib in points:
        tracker.update(progress.Sample.from_job_stats(
            base.stats(t, 16 * GIB - gib * GIB, gib * GIB)))
    return tracker


MOVING = [(0, 0), (1, 1), (2, 2)]
STALLED = MOVING + [(3, 2), (4, 2)]


class TestChain(base.TestCase):

    def test_first_acting_policy_wins(self):
        decision = chain.PolicyChain([Never(None), Always(None)]).decide(
            tracker_at(*MOVING), ctx())
        self.assertIs(Action.SWITCH, decision.action)
        self.assertEqual('always', decision.policy)

    def test_switch_held_during_a_network_stall(self):
        decision = chain.PolicyChain([Always(None)]).decide(
            tracker_at(*STALLED), ctx())
        self.assertIs(Action.CONTINUE, decision.action)
        self.assertIn('switch proposed by always held', decision.reason)
        self.assertIn('network stall', decision.reason)

    def test_switch_held_during_the_grace_after_a_stall(self):
        rules = chain.PolicyChain([Always(None)], stall_grace_s=3)
        tracker = tracker_at(*STALLED + [(5, 3), (6, 4)])
        self.assertIs(Action.CONTINUE, rules.decide(tracker, ctx()).action)
        base.feed(tracker, base.stats(7, 11 * GIB, 5 * GIB),
                  base.stats(8, 10 * GIB, 6 * GIB))
        self.assertIs(Action.SWITCH, rules.decide(tracker, ctx()).action)

    def test_long_stall_aborts_pre_copy(self):
        rules = chain.PolicyChain([Always(None)], progress_timeout_s=2)
        decision = rules.decide(tracker_at(*STALLED), ctx())
        self.assertIs(Action.ABORT, decision.action)
        self.assertIn('keeps running on the source', decision.reason)

    def test_anchor_chains_have_no_guard(self):
        rules = chain.PolicyChain([Always(None)], guard=False)
        self.assertIs(Action.SWITCH,
                      rules.decide(tracker_at(*STALLED), ctx()).action)

    def test_postcopy_not_allowed_means_precopy_until_the_budget(self):
        rules = chain.PolicyChain([Always(None)])
        early = rules.decide(tracker_at(*MOVING), ctx(allowed=False))
        self.assertIs(Action.CONTINUE, early.action)
        self.assertIn('post-copy not allowed', early.reason)
        late = rules.decide(tracker_at(*MOVING + [(100, 50)]),
                            ctx(allowed=False))
        self.assertIs(Action.ABORT, late.action)
        self.assertIn('post-copy not allowed for this migration',
                      late.reason)

    def test_budget_end_without_a_switching_policy_pauses(self):
        rules = chain.PolicyChain([Never(None)],
                                  budget_action=Action.PAUSE)
        decision = rules.decide(tracker_at(*MOVING + [(100, 50)]), ctx())
        self.assertIs(Action.PAUSE, decision.action)
        self.assertIn('no policy among [never] switched', decision.reason)

    def test_budget_end_with_timeout_switches(self):
        rules = chain.PolicyChain([timeout.TimeoutPolicy(None)])
        decision = rules.decide(tracker_at(*MOVING + [(100, 50)]), ctx())
        self.assertIs(Action.SWITCH, decision.action)


class TestPlugins(base.TestCase):

    def test_builtin_policies_are_entry_points(self):
        self.assertEqual(
            ['first_pass', 'forecast', 'iterations', 'stall', 'timeout'],
            plugins.available_policies())
        self.assertIs(forecast.ForecastPolicy, plugins.policy_class(
            'forecast'))

    def test_unknown_policy(self):
        error = self.assertRaises(exception.UnknownPolicy,
                                  plugins.policy_class, 'nope')
        self.assertIn('first_pass, forecast', str(error))

    def install_broken_policy(self):
        """A third-party package whose policy's import fails, on sys.path."""
        top = self.useFixture(fixtures.TempDir()).path
        info = os.path.join(top, 'broken_policy-1.0.dist-info')
        os.mkdir(info)
        with open(os.path.join(info, 'METADATA'), 'w') as handle:
            handle.write('Metadata-Version: 2.1\nName: broken-policy\n'
                         'Version: 1.0\n')
        with open(os.path.join(info, 'entry_points.txt'), 'w') as handle:
            handle.write('[%s]\nbroken = np_broken_policy:Policy\n'
                         % plugins.NAMESPACE)
        with open(os.path.join(top, 'np_broken_policy.py'), 'w') as handle:
            handle.write('raise ImportError("needs libfoo")\n')
        self.useFixture(fixtures.MonkeyPatch('sys.path', [top] + sys.path))
        # stevedore keeps what it found per namespace for the process.
        self.useFixture(fixtures.MonkeyPatch(
            'stevedore.extension.ExtensionManager.ENTRY_POINT_CACHE', {}))
        plugins.policy_class.cache_clear()
        self.addCleanup(plugins.policy_class.cache_clear)

    def test_broken_unconfigured_policy_does_not_stop_migrations(self):
        self.install_broken_policy()
        self.assertIn('broken', plugins.available_policies())
        rules = chain.PolicyChain.from_conf(self.conf)
        self.assertEqual(['forecast', 'stall', 'timeout'], rules.names)

    def test_broken_configured_policy_fails_at_load_naming_it(self):
        self.install_broken_policy()
        error = self.assertRaises(exception.PolicyLoadError,
                                  plugins.policy_class, 'broken')
        self.assertIn("'broken'", str(error))
        self.assertIn('ImportError: needs libfoo', str(error))
        error = self.assertRaises(exception.InvalidConfig, self.load_config,
                                  'switch_policies = forecast,broken')
        self.assertIn('switch_policies', str(error))
        self.assertIn('needs libfoo', str(error))

    def test_chain_from_conf(self):
        self.flags(switch_policies=['stall', 'timeout'],
                   precopy_budget_action='pause', progress_timeout=60,
                   network_stall_grace=7)
        rules = chain.PolicyChain.from_conf(self.conf)
        self.assertEqual(['stall', 'timeout'], rules.names)
        self.assertIs(Action.PAUSE, rules.budget_action)
        self.assertEqual(60, rules.progress_timeout_s)
        self.assertEqual(7, rules.stall_grace_s)
        # Fresh instances per migration: policies keep per-migration state.
        again = chain.PolicyChain.from_conf(self.conf)
        self.assertIsNot(rules.policies[0], again.policies[0])
