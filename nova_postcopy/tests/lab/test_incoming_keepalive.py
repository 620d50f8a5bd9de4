# SPDX-License-Identifier: Apache-2.0
"""A cut leaves the receiving end half-open; the keepalive clears it.

The shape of a post-copy cut, without a guest: host B only receives and
keeps listening (as the destination's QEMU does), host A sends into the
cut until its kernel gives up, and closes. Without keepalive B's end stays
ESTABLISHED after the link is back, for as long as B sends nothing: no
resume would be accepted. With the keepalive that the destination's
nova-compute sets (``incoming_sockets.keep_incoming_alive``, called here
from outside the receiver exactly as the privileged helper does), B drops
it within seconds. The receiver's command line carries ``-incoming`` and
``-uuid`` so that the helper takes it for an incoming QEMU. Seconds, no
guest.
"""

import json
import os
import subprocess
import sys
import time
import uuid as uuid_mod

from nova_postcopy import incoming_sockets
from nova_postcopy.tests.lab import base

PORT = 49210
IDLE_S, INTERVAL_S, COUNT = 1, 1, 3
# When B's end is looked at, after the link is back.
HELD_AFTER_S = 3
RECEIVER = r'''
import errno, json, socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(('10.250.0.2', %(port)d))
server.listen(1)
print('listening', flush=True)
connection, _ = server.accept()
print('accepted', flush=True)
# QEMU keeps listening through post-copy (a resume connects there).
connection.settimeout(float(sys.argv[1]))
try:
    while connection.recv(65536):
        pass
    result = 'eof'
except socket.timeout:
    result = 'still open'
except OSError as error:
    result = errno.errorcode[error.errno]
print(json.dumps({'result': result}), flush=True)
''' % {'port': PORT}
SENDER = r'''
import json, socket, sys
connection = socket.create_connection(('10.250.0.2', %(port)d), timeout=10)
print('connected', flush=True)
sys.stdin.readline()  # the link is down
# Unacknowledged for 1 s: the kernel drops the connection, silently since
# the link is down (the source's tcp_retries2, shortened).
connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1000)
connection.settimeout(20)
try:
    connection.sendall(b'x' * 4096)
    connection.recv(1)
    ended = 'not dropped'
except OSError as error:
    ended = type(error).__name__
connection.close()
print(json.dumps({'ended': ended}), flush=True)
''' % {'port': PORT}


class TestIncomingKeepalive(base.LabTestCase):
    def in_host(self, host, script, *args):
        process = subprocess.Popen(
            ['ip', 'netns', 'exec', 'host%s' % host, sys.executable, '-c',
             script] + list(args), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=base.TOP, env=dict(os.environ, PYTHONPATH=base.TOP))
        self.addCleanup(process.wait)
        self.addCleanup(process.kill)
        return process

    def held_on_b(self):
        return subprocess.run(
            ['ip', 'netns', 'exec', 'hostB', 'ss', '-Htn', 'state',
             'established', '( sport = :%d )' % PORT], check=True,
            text=True, stdout=subprocess.PIPE).stdout.strip()

    def cut_and_return(self, keepalive, receiver_wait_s):
        uuid = str(uuid_mod.uuid4())
        receiver = self.in_host('B', RECEIVER, str(receiver_wait_s),
                                '-incoming', 'defer', '-uuid', uuid)
        self.assertEqual('listening', receiver.stdout.readline().strip(),
                         receiver.stderr.read() if receiver.poll() else '')
        sender = self.in_host('A', SENDER)
        self.assertEqual('connected', sender.stdout.readline().strip())
        self.assertEqual('accepted', receiver.stdout.readline().strip())
        covered = (incoming_sockets.keep_incoming_alive(
            uuid, IDLE_S, INTERVAL_S, COUNT) if keepalive else [])
        self.addCleanup(base.lab, 'link', 'A', 'up')
        base.lab('link', 'A', 'down')
        cut = time.monotonic()
        sender.stdin.write('down\n')
        sender.stdin.flush()
        ended = json.loads(sender.stdout.readline())['ended']
        base.lab('link', 'A', 'up')
        time.sleep(HELD_AFTER_S)
        held = self.held_on_b()
        result = json.loads(receiver.stdout.readline())['result']
        return {'covered': covered, 'ended': ended, 'result': result,
                'cut_to_result_s': time.monotonic() - cut, 'held': held}

    def test_without_keepalive_the_receiver_keeps_it(self):
        seen = self.cut_and_return(keepalive=False, receiver_wait_s=8)
        self.assertEqual('TimeoutError', seen['ended'], seen)
        self.assertEqual('still open', seen['result'], seen)
        self.assertIn('10.250.0.2:%d' % PORT, seen['held'], seen)

    def test_with_keepalive_the_receiver_drops_it_within_seconds(self):
        seen = self.cut_and_return(keepalive=True, receiver_wait_s=30)
        self.assertEqual(['10.250.0.1'], [peer.split(':')[0]
                                          for peer in seen['covered']],
                         seen)
        self.assertEqual('TimeoutError', seen['ended'], seen)
        # Dropped in the outage (probes unanswered) or reset at the first
        # probe after it: either way noticed, and QEMU would pause.
        self.assertIn(seen['result'], ('ETIMEDOUT', 'ECONNRESET'), seen)
        self.assertLess(seen['cut_to_result_s'],
                        IDLE_S + INTERVAL_S * COUNT + HELD_AFTER_S, seen)
        self.assertEqual('', seen['held'], seen)
