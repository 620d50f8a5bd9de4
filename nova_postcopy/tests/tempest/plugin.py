# SPDX-License-Identifier: Apache-2.0
"""nova-postcopy's tempest plugin (entry point ``tempest.test_plugins``).

Only tempest loads this module: nothing else of nova-postcopy imports
tempest.
"""

import os

from tempest.test_discover import plugins

from nova_postcopy.tests.tempest import config

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


class NovaPostcopyTempestPlugin(plugins.TempestPlugin):

    def load_tests(self):
        return (os.path.join(TOP, 'nova_postcopy', 'tests', 'tempest'), TOP)

    def register_opts(self, conf):
        config.register_opts(conf)

    def get_opt_lists(self):
        return [(config.group.name, config.opts)]
