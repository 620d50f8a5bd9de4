# SPDX-License-Identifier: Apache-2.0
"""The Zuul job's tempest test, run on the lab cloud, and what it cannot see.

``tools/lab/cloud tempest`` runs ``nova_postcopy/tests/tempest`` unchanged
(tempest from PyPI, in its own virtualenv): the server booted, migrated,
forced to complete, seen ``running (post-copy)`` through the API, and the
guest alive on the destination by its console (the dirtier's counter moved
on, no failed memory check, no panic; tempest deletes the server after).
What the API cannot say is checked here as the Zuul job's post-run checks
it, with the same script on nova-compute's logs: the switch was made by
force-complete and the migration ended in post-copy.
"""

import os
import re
import subprocess

from testtools import content

from nova_postcopy.tests.cloud import base

CHECK_LOG = os.path.join(base.TOP, 'tools', 'check-postcopy-log')
TEMPEST_LOG = os.path.join(base.LAB, 'cloud', 'tempest', 'tempest.log')


class TestTempest(base.CloudTestCase):

    def test_tempest_force_complete_finishes_in_postcopy(self):
        run = subprocess.run([base.CLOUD_CMD, 'tempest'], text=True,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=900)
        self.addDetail('tempest', content.text_content(run.stdout))
        self.assertEqual(0, run.returncode, run.stdout[-3000:])
        # One test ran and passed: a skip (a missing option, one compute)
        # is a failure here.
        self.assertRegex(run.stdout, r'- Passed: 1\b')
        self.assertRegex(run.stdout, r'- Skipped: 0\b')
        with open(TEMPEST_LOG) as handle:
            log = handle.read()
        server_id = re.search(r'nova-postcopy: migrating server (\S+)',
                              log).group(1)
        self.assertIn("went through ['running', 'running (post-copy)', "
                      "'completed']", log)
        logs = [os.path.join(base.LOGS, 'nova-compute-%s.log' % host)
                for host in base.HOSTS]
        check = subprocess.run([CHECK_LOG, '--server', server_id] + logs,
                               text=True, capture_output=True)
        self.assertEqual(0, check.returncode, check.stderr)
        self.assertIn('the operator asked to complete', check.stdout)
