# SPDX-License-Identifier: Apache-2.0
"""Keepalive on an incoming migration's connections: which, when, and real.

``TestOnARealProcess`` runs a stand-in for the incoming QEMU (a child
process with ``-incoming`` and ``-uuid`` in its command line, listening
and having accepted a connection) and sets the keepalive on its socket
from this process, as the privileged helper does on the destination; the
child reads its own socket's options back.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid as uuid_mod

import testtools

from nova_postcopy import clock
from nova_postcopy.compute import incoming
from nova_postcopy import domain_states as ds
from nova_postcopy import incoming_sockets

TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:C000 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 101 1
   1: 0200FA0A:C000 0100FA0A:D368 01 00000000:00000000 00:00000000 00000000     0        0 102 1
   2: 0200FA0A:C000 0100FA0A:D36E 01 00000000:00000000 00:00000000 00000000     0        0 103 1
   3: 0200FA0A:E000 0100FA0A:0050 01 00000000:00000000 00:00000000 00000000     0        0 104 1
   4: 0200FA0A:C000 0100FA0A:D370 06 00000000:00000000 00:00000000 00000000     0        0 105 1
"""  # noqa: E501 - lines as the kernel writes them


class TestWhichSockets(testtools.TestCase):
    def test_table_parsed(self):
        table = incoming_sockets.parse_tcp_table(TABLE)
        self.assertEqual((0xC000, 0x0A, '00000000:0000'), table[101])
        self.assertEqual((0xC000, 0x01, '0100FA0A:D368'), table[102])

    def test_only_established_on_own_listening_port(self):
        table = incoming_sockets.parse_tcp_table(TABLE)
        # fd 9: an outgoing connection (port 0xE000 is not listened on);
        # fd 10: TIME_WAIT; fd 11: another process's socket.
        fds = {3: 101, 5: 102, 6: 103, 9: 104, 10: 105, 12: 999}
        self.assertEqual([5, 6],
                         incoming_sockets.accepted_connections(fds, table))

    def test_no_listener_no_connection(self):
        table = incoming_sockets.parse_tcp_table(TABLE)
        self.assertEqual([], incoming_sockets.accepted_connections(
            {5: 102, 6: 103}, table))

    def test_incoming_qemu_of_this_instance_only(self):
        uuid = '04287ded-480a-4cc5-bfdf-1d3bd4ee5d2b'
        args = ['/usr/bin/qemu-system-x86_64', '-name', 'guest=i-1',
                '-uuid', uuid, '-incoming', 'defer']
        self.assertTrue(incoming_sockets.is_incoming_qemu(args, uuid))
        self.assertTrue(incoming_sockets.is_incoming_qemu(args,
                                                          uuid.upper()))
        self.assertFalse(incoming_sockets.is_incoming_qemu(
            args[:-2], uuid))  # the source's QEMU
        self.assertFalse(incoming_sockets.is_incoming_qemu(
            args, str(uuid_mod.uuid4())))
        self.assertFalse(incoming_sockets.is_incoming_qemu(
            ['qemu', '-incoming', 'defer', '-uuid'], uuid))

    def test_peer_named(self):
        self.assertEqual('10.250.0.1:54120',
                         incoming_sockets.peer_of('0100FA0A:D368'))


CHILD = textwrap.dedent("""
    import json, socket, sys
    listener = socket.create_server(('127.0.0.1', 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    print(json.dumps([listener.getsockname()[1],
                      client.getsockname()[1]]), flush=True)
    sys.stdin.readline()
    def options(sock):
        return [sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)]
    print(json.dumps({'accepted': options(accepted),
                      'outgoing': options(client),
                      'still_open': accepted.fileno() >= 0}), flush=True)
    accepted.sendall(b'x')
    print(json.dumps(client.recv(1).decode()), flush=True)
""")


class TestOnARealProcess(testtools.TestCase):
    """Needs pidfd_getfd over a child of ours: Linux 5.6, same user."""

    def _child(self, *extra):
        uuid = str(uuid_mod.uuid4())
        child = subprocess.Popen(
            [sys.executable, '-c', CHILD, '-uuid', uuid] + list(extra),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        ports = json.loads(child.stdout.readline())
        return uuid, child, ports

    def _options(self, child):
        child.stdin.write('\n')
        child.stdin.flush()
        return json.loads(child.stdout.readline())

    def test_set_on_the_accepted_connection_only_and_once(self):
        uuid, child, (port, client_port) = self._child('-incoming', 'defer')
        covered = incoming_sockets.keep_incoming_alive(uuid, 7, 2, 4)
        self.assertEqual(['127.0.0.1:%d' % client_port], covered)
        # Already there: nothing newly covered.
        self.assertEqual(
            [], incoming_sockets.keep_incoming_alive(uuid, 7, 2, 4))
        options = self._options(child)
        # Keepalive only: TCP_USER_TIMEOUT would override tcp_retries2.
        self.assertEqual([1, 7, 2, 4, 0], options['accepted'])
        # The child's outgoing socket is not an accepted one.
        self.assertEqual(0, options['outgoing'][0])
        # QEMU's descriptor still works after ours was closed.
        self.assertEqual('x', json.loads(child.stdout.readline()))

    def test_a_qemu_that_exits_meanwhile_is_not_an_error(self):
        # Its cmdline read, its fd directory gone: as /proc shows a QEMU
        # that exited between the two readings.
        import fixtures
        proc = self.useFixture(fixtures.TempDir()).path
        uuid = str(uuid_mod.uuid4())
        os.makedirs(os.path.join(proc, '4242'))
        with open(os.path.join(proc, '4242', 'cmdline'), 'wb') as handle:
            handle.write(b'\0'.join([b'qemu', b'-uuid', uuid.encode(),
                                     b'-incoming', b'defer']))
        self.assertEqual([4242], incoming_sockets.incoming_qemu_pids(
            uuid, proc))
        self.assertEqual([], incoming_sockets.keep_incoming_alive(
            uuid, 7, 2, 4, proc=proc))

    def test_a_process_not_started_for_incoming_is_left_alone(self):
        uuid, child, _ = self._child()
        self.assertEqual(
            [], incoming_sockets.keep_incoming_alive(uuid, 7, 2, 4))
        self.assertEqual(0, self._options(child)['accepted'][0])


POSTCOPY = (ds.RUNNING, ds.RUNNING_POSTCOPY)
POSTCOPY_FAILED = (ds.RUNNING, ds.RUNNING_POSTCOPY_FAILED)
INCOMING = (ds.PAUSED, ds.PAUSED_MIGRATION)
MIGRATED = (ds.RUNNING, ds.RUNNING_MIGRATED)


class TestPhase(testtools.TestCase):
    def test_readings(self):
        self.assertEqual(incoming.WAIT, incoming.phase(None, False))
        self.assertEqual(incoming.WAIT, incoming.phase(INCOMING, True))
        self.assertEqual(incoming.POSTCOPY, incoming.phase(POSTCOPY, True))
        self.assertEqual(incoming.POSTCOPY,
                         incoming.phase(POSTCOPY_FAILED, True))
        self.assertEqual(incoming.OVER, incoming.phase(MIGRATED, True))
        self.assertEqual(incoming.OVER, incoming.phase(None, True))


class TestWatch(testtools.TestCase):
    def setUp(self):
        super().setUp()
        self.calls = []

    def _watch(self, states, keep_alive=None):
        states = list(states)
        virtual = clock.VirtualClock()

        def read_state():
            virtual.sleep(incoming.POLL_S)
            state = states.pop(0)
            if isinstance(state, Exception):
                raise state
            return state

        def record(uuid, idle_s, interval_s, count):
            self.calls.append((uuid, idle_s, interval_s, count))
            return ['10.250.0.1:%d' % len(self.calls)]

        watch = incoming.IncomingWatch('u-1', 5, read_state,
                                       keep_alive or record, virtual)
        # No real waiting between readings.
        watch._stop.wait = lambda timeout: None
        return watch

    def test_set_only_in_postcopy_until_migrated(self):
        watch = self._watch([None, INCOMING, INCOMING, POSTCOPY,
                             POSTCOPY_FAILED, POSTCOPY, MIGRATED])
        watch.run()
        self.assertEqual([('u-1', 5, incoming.KEEPALIVE_INTERVAL_S,
                           incoming.KEEPALIVE_COUNT)] * 3, self.calls)
        self.assertEqual(3, len(watch.covered))

    def test_ends_when_the_domain_goes(self):
        watch = self._watch([INCOMING, POSTCOPY, None, POSTCOPY])
        watch.run()
        self.assertEqual(1, len(self.calls))

    def test_gives_up_on_a_domain_that_never_comes(self):
        watch = self._watch([None] * int(incoming.APPEAR_S + 5))
        watch.run()
        self.assertEqual([], self.calls)

    def test_unreadable_state_is_not_fatal(self):
        watch = self._watch([incoming.StateUnknown('libvirt restarting'),
                             POSTCOPY, MIGRATED])
        watch.run()
        self.assertEqual(1, len(self.calls))

    def test_a_broken_reading_ends_the_watch(self):
        watch = self._watch([TypeError('not subscriptable'), POSTCOPY])
        with self.assertLogs('nova_postcopy.compute.incoming', 'ERROR'):
            watch.run()
        self.assertEqual([], self.calls)

    def test_refused_helper_said_once_then_stop(self):
        def refuse(*args):
            self.calls.append(args)
            raise incoming_sockets.KeepaliveError('needs CAP_SYS_PTRACE')

        watch = self._watch([POSTCOPY, POSTCOPY, POSTCOPY], refuse)
        with self.assertLogs('nova_postcopy.compute.incoming',
                             'WARNING') as logs:
            watch.run()
        self.assertEqual(1, len(self.calls))
        self.assertIn('CAP_SYS_PTRACE', logs.output[0])
        self.assertIn('incoming_keepalive = 0', logs.output[0])

    def test_stop_ends_it(self):
        watch = self._watch([INCOMING] * 3)
        watch.stop()
        watch.run()
        self.assertEqual([], self.calls)


class TestSleepsBetweenReadings(testtools.TestCase):
    def test_real_wait_is_interrupted_by_stop(self):
        watch = incoming.IncomingWatch('u-2', 5, lambda: INCOMING,
                                       lambda *a: [], clock.VirtualClock())
        started = time.monotonic()
        thread = threading.Thread(target=watch.run)
        thread.start()
        time.sleep(0.1)
        watch.stop()
        thread.join(5)
        self.assertFalse(thread.is_alive())
        self.assertLess(time.monotonic() - started, 2)
