# SPDX-License-Identifier: Apache-2.0
"""The Zuul job, checked for what would make it pass without testing us.

This project has no Zuul to run ``.zuul.yaml``; a typo there would show
only on the day it runs, and some typos (a localrc variable the plugin
never reads, an irrelevant-files pattern that skips the driver) would
make the job pass while testing less. The parent job and the tempest
names it relies on were read in openstack/tempest at fa340b1f5f
(2026-07-26).
"""

import os
import re

import yaml

from nova_postcopy.tests.unit import base

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                   '..'))
# Jobs this file builds on, where they are defined.
UPSTREAM_JOBS = {
    'tempest-multinode-full-py3':
        'openstack/tempest zuul.d/integrated-gate.yaml',
}
# Files whose change the job must test.
EXERCISED = ('nova_postcopy/compute/driver.py', 'nova_postcopy/monitor.py',
             'nova/virt/postcopy/__init__.py', 'devstack/plugin.sh',
             'devstack/lib/nova-postcopy', 'devstack/settings', 'setup.cfg',
             'requirements.txt',
             'nova_postcopy/tests/tempest/api/test_postcopy.py',
             'nova_postcopy/tests/tempest/plugin.py',
             'tools/check-postcopy-log', 'playbooks/check-postcopy-log.yaml')
# The tests the job must run: tempest's live-migration tests and ours.
RUN = ('tempest.api.compute.admin.test_live_migration.LiveMigrationTest.'
       'test_live_block_migration',
       'nova_postcopy.tests.tempest.api.test_postcopy.'
       'PostcopyLiveMigrationTest.test_force_complete_finishes_in_postcopy')


def settings():
    """The devstack plugin's name and the variables it defines."""
    with open(os.path.join(TOP, 'devstack', 'settings')) as handle:
        text = handle.read()
    name = re.search(r'^define_plugin (\S+)', text, re.M).group(1)
    return name, set(re.findall(r'^(NOVA_POSTCOPY_\w+)=', text, re.M))


class TestZuulJob(base.TestCase):

    def setUp(self):
        super().setUp()
        with open(os.path.join(TOP, '.zuul.yaml')) as handle:
            entries = yaml.safe_load(handle)
        self.jobs = {e['job']['name']: e['job'] for e in entries
                     if 'job' in e}
        self.project = next(e['project'] for e in entries if 'project' in e)

    def test_every_job_run_is_defined_and_its_parent_known(self):
        for pipeline in self.project.values():
            for name in pipeline['jobs']:
                self.assertIn(name, self.jobs)
        for job in self.jobs.values():
            self.assertIn(job['parent'],
                          set(self.jobs) | set(UPSTREAM_JOBS), job['name'])

    def test_the_plugin_enabled_is_ours_and_its_repo_is_checked_out(self):
        plugin, _ = settings()
        for job in self.jobs.values():
            url = job['vars']['devstack_plugins'][plugin]
            repo = '/'.join(url.rstrip('/').split('/')[-2:])
            self.assertIn(repo, job['required-projects'])

    def test_localrc_names_only_settings_the_plugin_reads(self):
        _, known = settings()
        for job in self.jobs.values():
            localrcs = [job['vars'].get('devstack_localrc', {})] + [
                group.get('devstack_localrc', {})
                for group in job.get('group-vars', {}).values()]
            for localrc in localrcs:
                ours = {k for k in localrc if k.startswith('NOVA_POSTCOPY_')}
                self.assertEqual(set(), ours - known, job['name'])
            # The parent's subnode localrc replaces the job's: repeated.
            self.assertEqual(localrcs[0], localrcs[-1], job['name'])

    def test_irrelevant_files_never_skip_what_the_job_tests(self):
        for job in self.jobs.values():
            patterns = [re.compile(p) for p in job.get('irrelevant-files',
                                                       [])]
            for path in EXERCISED:
                self.assertTrue(os.path.exists(os.path.join(TOP, path)),
                                path)
                self.assertEqual([], [p.pattern for p in patterns
                                      if p.search(path)], path)

    def test_tempest_regexes_compile(self):
        for job in self.jobs.values():
            for key in ('tempest_test_regex', 'tempest_exclude_regex'):
                if key in job['vars']:
                    re.compile(job['vars'][key])

    def test_the_job_runs_our_tempest_test_from_our_plugin(self):
        for job in self.jobs.values():
            regex = re.compile(job['vars']['tempest_test_regex'])
            for test in RUN:
                self.assertTrue(regex.search(test), (job['name'], test))
            self.assertEqual([], [
                p for p in job['vars']['tempest_plugins']
                if p not in job['required-projects']])
        with open(os.path.join(TOP, 'setup.cfg')) as handle:
            entry = re.search(r'^tempest\.test_plugins =\s*\n\s+'
                              r'nova_postcopy = (\S+):(\w+)$',
                              handle.read(), re.M)
        module, cls = entry.groups()
        with open(os.path.join(TOP, *module.split('.')) + '.py') as handle:
            self.assertIn('class %s(' % cls, handle.read())

    def test_post_run_checks_the_log_with_the_projects_script(self):
        for job in self.jobs.values():
            path = os.path.join(TOP, job['post-run'])
            with open(path) as handle:
                plays = yaml.safe_load(handle)
            commands = [task['shell'] for play in plays
                        for task in play['tasks'] if 'shell' in task]
            self.assertTrue(any('tools/check-postcopy-log -' in c
                                for c in commands), commands)
            script = os.path.join(TOP, 'tools', 'check-postcopy-log')
            self.assertTrue(os.access(script, os.X_OK))
