# SPDX-License-Identifier: Apache-2.0
"""tools/check-postcopy-log, which the Zuul job's post-run relies on."""

import os
import subprocess
import sys

from nova_postcopy.tests.unit import base

SCRIPT = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'tools',
                      'check-postcopy-log')
ONE = '11111111-2222-3333-4444-555555555555'
TWO = '66666666-7777-8888-9999-000000000000'
SWITCH = ('2026-12-03 03:09:51.394 3899 INFO nova_postcopy.monitor [-] '
          'instance %s at 3.2 s: switch to post-copy (force-complete): the '
          'operator asked to complete the migration\n')
ENDED = ('Dec 03 03:10:11 node nova-compute[3899]: INFO nova_postcopy.monitor'
         ' [-] instance %s ended: postcopy after 23.0 s\n')
NOISE = ('2026-12-03 03:09:51.394 3899 DEBUG nova_postcopy.monitor [-] '
         'instance %s: switch to post-copy (force-complete)\n')


def run(text, *args):
    result = subprocess.run([sys.executable, SCRIPT, '-'] + list(args),
                            input=text, text=True, capture_output=True)
    return result.returncode, result.stdout, result.stderr


class TestCheckPostcopyLog(base.TestCase):

    def test_a_switch_and_its_end_pass(self):
        code, out, _ = run(SWITCH % ONE + ENDED % ONE)
        self.assertEqual(0, code)
        self.assertEqual(2, len(out.splitlines()))

    def test_a_migration_that_never_switched_fails_naming_it(self):
        code, _, err = run(ENDED % ONE + NOISE % ONE)
        self.assertEqual(1, code)
        self.assertIn('no "switch to post-copy (force-complete)" decision',
                      err)
        self.assertNotIn('ended: postcopy"', err)

    def test_decisions_of_another_server_do_not_count(self):
        code, _, err = run(SWITCH % ONE + ENDED % TWO, '--server', ONE)
        self.assertEqual(1, code)
        self.assertIn('no migration "ended: postcopy"', err)
        self.assertIn('for server %s' % ONE, err)

    def test_the_cause_is_the_one_asked_for(self):
        code, _, err = run(SWITCH % ONE + ENDED % ONE, '--cause', 'forecast')
        self.assertEqual(1, code)
        self.assertIn('(forecast)', err)
