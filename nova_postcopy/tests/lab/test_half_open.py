# SPDX-License-Identifier: Apache-2.0
"""A cut leaves the receiving end half-open; the knock clears it.

The shape of a post-copy cut, without a guest: host B only receives (as
the destination's QEMU does), host A sends until its kernel gives up while
the link is down, and closes. When the link is back, B's end is still
ESTABLISHED and would stay so as long as B sends nothing. From host A,
``half_open.MigrationConnections.knock_forgotten`` must make B's kernel drop
it within a second; without the knock it stays. Seconds, no guest.
"""

import json
import os
import subprocess
import sys
import time

from nova_postcopy.tests.lab import base

PORT = 49210  # in libvirt's migration range, as the knock requires
RECEIVER = r'''
import errno, json, socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(('10.250.0.2', %(port)d))
server.listen(1)
print('listening', flush=True)
connection, _ = server.accept()
server.close()
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
from nova_postcopy import half_open
connection = socket.create_connection(('10.250.0.2', %(port)d), timeout=10)
connections = half_open.MigrationConnections()
connections.record()
print(json.dumps({'recorded': [str(c) for c in connections.seen]}),
      flush=True)
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
sys.stdin.readline()  # the link is back
answered = (connections.knock_forgotten() if sys.argv[1] == 'knock'
            else [])
print(json.dumps({'answered': [str(c) for c in answered]}), flush=True)
''' % {'port': PORT}


class TestHalfOpen(base.LabTestCase):
    def in_host(self, host, script, *args):
        process = subprocess.Popen(
            ['ip', 'netns', 'exec', 'host%s' % host, sys.executable, '-c',
             script] + list(args), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=base.TOP, env=dict(os.environ, PYTHONPATH=base.TOP))
        self.addCleanup(process.kill)
        return process

    def held_on_b(self):
        out = subprocess.run(
            ['ip', 'netns', 'exec', 'hostB', 'ss', '-Htn', 'state',
             'established', '( sport = :%d )' % PORT], check=True,
            text=True, stdout=subprocess.PIPE).stdout
        return out.strip()

    def cut_and_return(self, knock, receiver_wait_s):
        receiver = self.in_host('B', RECEIVER, str(receiver_wait_s))
        self.assertEqual('listening', receiver.stdout.readline().strip(),
                         receiver.stderr.read() if receiver.poll() else '')
        sender = self.in_host('A', SENDER, 'knock' if knock else 'wait')
        recorded = json.loads(sender.stdout.readline())['recorded']
        self.addCleanup(base.lab, 'link', 'A', 'up')
        base.lab('link', 'A', 'down')
        sender.stdin.write('down\n')
        sender.stdin.flush()
        ended = json.loads(sender.stdout.readline())['ended']
        base.lab('link', 'A', 'up')
        time.sleep(1)
        held = self.held_on_b()
        sender.stdin.write('up\n')
        sender.stdin.flush()
        answered = json.loads(sender.stdout.readline())['answered']
        started = time.monotonic()
        result = json.loads(receiver.stdout.readline())['result']
        return {'recorded': recorded, 'ended': ended, 'held': held,
                'answered': answered, 'result': result,
                'result_after_s': time.monotonic() - started}

    def test_the_receiver_keeps_a_cut_connection_unless_told(self):
        seen = self.cut_and_return(knock=False, receiver_wait_s=5)
        self.assertEqual(1, len(seen['recorded']), seen)
        self.assertEqual('TimeoutError', seen['ended'], seen)
        self.assertIn('10.250.0.2:%d' % PORT, seen['held'], seen)
        self.assertEqual('still open', seen['result'], seen)

    def test_a_knock_makes_the_receiver_drop_it(self):
        seen = self.cut_and_return(knock=True, receiver_wait_s=30)
        self.assertEqual('TimeoutError', seen['ended'], seen)
        # Half-open when the link came back...
        self.assertIn('10.250.0.2:%d' % PORT, seen['held'], seen)
        # ...and reset by the knock, at once.
        self.assertEqual(seen['recorded'], seen['answered'], seen)
        self.assertEqual('ECONNRESET', seen['result'], seen)
        self.assertLess(seen['result_after_s'], 1.0, seen)
        self.assertEqual('', self.held_on_b())
