# SPDX-License-Identifier: Apache-2.0
"""``nova-postcopy-migrate``'s input checks, before any connection.

Nothing here reaches libvirt: a bad value must stop the command before it
connects (the URIs point nowhere; reaching them would be a different
error).
"""

from nova_postcopy.cmd import migrate
from nova_postcopy import conf as np_conf
from nova_postcopy.tests.unit import base

URIS = ['qemu+tcp://192.0.2.1/system', 'qemu+tcp://192.0.2.2/system', 'g']


class TestMigrateInput(base.TestCase):

    def setUp(self):
        super().setUp()
        # main() parses the command line itself, as a console script.
        np_conf.CONF.clear()

    def run_migrate(self, *flags):
        return self.run_main(migrate.main, *(list(flags) + URIS))

    def test_downtime_out_of_range_names_the_range(self):
        for value in ('0', '-5', '3000000'):
            code, _, err = self.run_migrate('--max-downtime-ms', value)
            self.assertEqual(2, code)
            self.assertIn('--max-downtime-ms', err)
            self.assertIn('allowed from 10 to 2000000 ms', err)

    def test_downtime_not_a_number(self):
        code, _, err = self.run_migrate('--max-downtime-ms', 'fast')
        self.assertEqual(2, code)
        self.assertIn("'fast' is not a number", err)

    def test_negative_bandwidth(self):
        code, _, err = self.run_migrate('--bandwidth-mibs', '-1')
        self.assertEqual(2, code)
        self.assertIn('--bandwidth-mibs', err)
        self.assertIn('allowed >= 0', err)

    def test_unknown_policy_lists_the_installed_ones(self):
        code, _, err = self.run_migrate('--policy', 'forcast')
        self.assertEqual(2, code)
        self.assertIn("Unknown switch policy 'forcast'", err)
        self.assertIn('forecast', err)
        self.assertNotIn('cannot connect', err)


class TestDestinationAskedOverDestUri(base.TestCase):
    """Loopback only: a listener here, and a port nothing listens on."""

    def test_reachable_tcp_transport_is_asked(self):
        import socket
        listener = socket.create_server(('127.0.0.1', 0))
        self.addCleanup(listener.close)
        uri = 'qemu+tcp://127.0.0.1:%d/system' % listener.getsockname()[1]
        self.assertEqual((uri, ''), migrate.reachable_dest_uri(uri))

    def test_unreachable_says_why(self):
        import socket
        listener = socket.create_server(('127.0.0.1', 0))
        port = listener.getsockname()[1]
        listener.close()
        uri, why = migrate.reachable_dest_uri(
            'qemu+tcp://127.0.0.1:%d/system' % port)
        self.assertIsNone(uri)
        self.assertIn('not reachable from here (127.0.0.1:%d' % port, why)

    def test_default_ports_by_transport(self):
        self.assertEqual(16509, migrate.AUTO_PROBE_PORTS['qemu+tcp'])
        self.assertEqual(16514, migrate.AUTO_PROBE_PORTS['qemu+tls'])

    def test_ssh_and_sockets_are_not_tried(self):
        for uri in ('qemu+ssh://root@dest/system', 'qemu:///system',
                    'qemu+unix:///system?socket=/run/x'):
            found, why = migrate.reachable_dest_uri(uri)
            self.assertIsNone(found)
            self.assertIn('not asked automatically', why)
