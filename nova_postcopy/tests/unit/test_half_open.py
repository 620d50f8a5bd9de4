# SPDX-License-Identifier: Apache-2.0
"""Reading the host's TCP table and knocking, on loopback sockets.

A real half-open connection needs a link that drops packets: that is the
lab's test (``tests/lab/test_half_open.py``).
"""

import errno
import socket
import struct

import fixtures
import testtools

from nova_postcopy import half_open


def connected_pair(host='127.0.0.1', family=socket.AF_INET):
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname()[:2])
    server, _ = listener.accept()
    listener.close()
    return client, server


class TestTable(testtools.TestCase):
    def test_a_live_connection_is_read_with_both_ends(self):
        client, server = connected_pair()
        self.addCleanup(client.close)
        self.addCleanup(server.close)
        rows = dict(half_open.read_tables())
        mine = half_open.Connection(socket.AF_INET, client.getsockname(),
                                    client.getpeername())
        # 127.0.0.1 reads back as itself only in the right byte order.
        self.assertEqual(half_open.ESTABLISHED, rows[mine])

    def test_ipv6(self):
        try:
            client, server = connected_pair('::1', socket.AF_INET6)
        except OSError:
            self.skipTest('no IPv6 loopback on this host')
        self.addCleanup(client.close)
        self.addCleanup(server.close)
        rows = dict(half_open.read_tables())
        mine = half_open.Connection(socket.AF_INET6,
                                    client.getsockname()[:2],
                                    client.getpeername()[:2])
        self.assertEqual(half_open.ESTABLISHED, rows[mine])

    def test_parses_the_kernels_format(self):
        # 10.250.0.1:51000 -> 10.250.0.2:49152, established, as a little-
        # endian host writes it.
        text = ('  sl  local_address rem_address   st tx_queue rx_queue\n'
                '   0: 0100FA0A:C738 0200FA0A:C000 01 00000000:00000000\n')
        if socket.htonl(1) == 1:
            self.skipTest('the sample is little-endian')
        ((connection, state),) = half_open.parse_table(text, socket.AF_INET)
        self.assertEqual(('10.250.0.1', 51000), connection.local)
        self.assertEqual(('10.250.0.2', 49152), connection.remote)
        self.assertEqual('01', state)


def row(local_port, remote_port, state=half_open.ESTABLISHED):
    return (half_open.Connection(socket.AF_INET, ('10.0.0.1', local_port),
                                 ('10.0.0.2', remote_port)), state)


class TestMigrationConnections(testtools.TestCase):
    def setUp(self):
        super().setUp()
        self.table = []
        self.answers = {}
        self.knocked = []

        def knock(connection):
            self.knocked.append(connection.local[1])
            answer = self.answers.get(connection.local[1],
                                      half_open.ANSWERED)
            if isinstance(answer, Exception):
                raise answer
            return answer

        self.connections = half_open.MigrationConnections(
            read=lambda: list(self.table), knock=knock)

    def test_records_established_connections_to_migration_ports(self):
        self.table = [row(51000, 49152), row(51001, 16509),
                      row(51002, 49153, state='06'), row(51003, 49215)]
        self.connections.record()
        self.assertEqual({51000, 51003},
                         {c.local[1] for c in self.connections.seen})

    def test_not_a_service_clients_connection_from_such_a_port(self):
        listening = half_open.Connection(socket.AF_INET, ('0.0.0.0', 5672),
                                         ('0.0.0.0', 0))
        self.table = [(listening, half_open.LISTEN), row(5672, 49160),
                      row(51000, 49152)]
        self.connections.record()
        self.assertEqual({51000}, {c.local[1] for c in self.connections.seen})

    def test_knocks_only_for_what_this_host_no_longer_holds(self):
        self.table = [row(51000, 49152), row(51001, 49153)]
        self.connections.record()
        # 51000 is gone here; 51001 is still held (in any state).
        self.table = [row(51001, 49153, state='04')]
        answered = self.connections.knock_forgotten('g1')
        self.assertEqual([51000], self.knocked)
        self.assertEqual([51000], [c.local[1] for c in answered])

    def test_an_answered_connection_is_not_knocked_for_again(self):
        logged = self.useFixture(fixtures.FakeLogger(level='INFO'))
        self.table = [row(51000, 49152)]
        self.connections.record()
        self.table = []
        self.connections.knock_forgotten('g1')
        self.assertEqual([], self.connections.knock_forgotten('g1'))
        self.assertEqual([51000], self.knocked)
        # Said once, with what and why.
        self.assertEqual(1, logged.output.count(
            'g1: told the destination that migration connection '
            '10.0.0.1:51000 -> 10.0.0.2:49152 is closed'))

    def test_switched_off_it_reads_and_sends_nothing(self):
        def never(*args):
            raise AssertionError('must not be called')

        connections = half_open.MigrationConnections(
            enabled=False, read=never, knock=never)
        connections.record()
        self.assertEqual([], connections.knock_forgotten('g1'))

    def test_no_answer_is_knocked_for_again(self):
        self.table = [row(51000, 49152), row(51001, 49153)]
        self.connections.record()
        self.table = []
        self.answers = {51000: half_open.NO_ANSWER,
                        51001: OSError('network is unreachable')}
        self.assertEqual([], self.connections.knock_forgotten('g1'))
        self.answers = {}
        answered = self.connections.knock_forgotten('g1')
        self.assertEqual({51000, 51001}, {c.local[1] for c in answered})


class TestKnock(testtools.TestCase):
    def forgotten(self, remote_port):
        """A connection whose local address is free again.

        Closed with a reset, as a timed-out socket ends: no TIME_WAIT.
        """
        client, server = connected_pair()
        connection = half_open.Connection(
            socket.AF_INET, client.getsockname(), ('127.0.0.1', remote_port))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          struct.pack('ii', 1, 0))
        client.close()
        server.close()
        return connection

    def test_a_port_nobody_listens_on_answers_with_a_reset(self):
        closed = socket.socket()
        closed.bind(('127.0.0.1', 0))
        port = closed.getsockname()[1]
        closed.close()
        connection = self.forgotten(port)
        self.assertEqual(half_open.ANSWERED, half_open.knock(connection))

    def test_a_listener_that_accepts_gets_a_reset_not_a_stream(self):
        listener = socket.socket()
        listener.bind(('127.0.0.1', 0))
        listener.listen(1)
        self.addCleanup(listener.close)
        connection = self.forgotten(listener.getsockname()[1])
        self.assertEqual(half_open.ACCEPTED, half_open.knock(connection))
        accepted, _ = listener.accept()
        self.addCleanup(accepted.close)
        # (recv() would say b'' under eventlet, which hides resets.)
        self.assertEqual(errno.ECONNRESET, accepted.getsockopt(
            socket.SOL_SOCKET, socket.SO_ERROR))

    def test_an_address_still_held_here_is_left_alone(self):
        client, server = connected_pair()
        self.addCleanup(client.close)
        self.addCleanup(server.close)
        held = half_open.Connection(socket.AF_INET, client.getsockname(),
                                    client.getpeername())
        self.assertEqual(half_open.STILL_HELD, half_open.knock(held))
        # The live connection is untouched.
        client.sendall(b'x')
        server.settimeout(2)
        self.assertEqual(b'x', server.recv(1))
