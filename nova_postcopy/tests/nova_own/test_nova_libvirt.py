# SPDX-License-Identifier: Apache-2.0
"""Nova 34's own libvirt live-migration tests, run on our driver.

``LibvirtDriver`` is replaced by :class:`PostcopyLibvirtDriver` before
Nova's test modules are imported (their decorators read the class at
import), and the policy chain is set to Nova's own behaviour: the
``timeout`` policy alone, with Nova's completion timeout as the only
budget. If these pass, the driver keeps Nova's behaviour where Nova has
one. :data:`DIVERGENCES` would name a test left out where Nova's
behaviour is the bug this project fixes; none is today.
"""

import re
import unittest

from nova.virt import libvirt as libvirt_package
from nova.virt.libvirt import driver as libvirt_driver

from nova_postcopy.compute import driver as postcopy_driver
from nova_postcopy.conf import postcopy as postcopy_opts

libvirt_driver.LibvirtDriver = postcopy_driver.PostcopyLibvirtDriver
libvirt_package.LibvirtDriver = postcopy_driver.PostcopyLibvirtDriver
# Nova's ConfFixture resets overrides and set_default()s after every test;
# the options' own defaults stay.
NOVA_BEHAVIOUR = {'switch_policies': ['timeout'],
                  'precopy_timeout_per_gib': 0, 'precopy_timeout_max': 0}
for _opt in postcopy_opts.ALL_OPTS:
    if _opt.name in NOVA_BEHAVIOUR:
        _opt.default = NOVA_BEHAVIOUR[_opt.name]

from nova.tests.unit.virt.libvirt import test_driver  # noqa: E402
from nova.tests.unit.virt.libvirt import test_migration  # noqa: E402

# test_driver's tests of live migration, post-copy and the monitor.
SELECTED = re.compile(r'live_migr|post_?copy|migration_monitor|'
                      r'force_complete|migrate_data|migration_flags')
# Where Nova's behaviour is the bug this project fixes. Nothing for now:
# Nova's test of a failed post-copy keeps the source domain running, and
# a running source holds the whole guest, so the rollback it expects is
# right there too.
DIVERGENCES = {}


def load_tests(loader, standard_tests, pattern):
    suite = unittest.TestSuite()
    suite.addTests(loader.loadTestsFromModule(test_migration))
    for case in _flatten(loader.loadTestsFromModule(test_driver)):
        name = case.id().rsplit('.', 1)[-1]
        if SELECTED.search(name) and name not in DIVERGENCES:
            suite.addTest(case)
    return suite


def _flatten(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _flatten(item)
        else:
            yield item
