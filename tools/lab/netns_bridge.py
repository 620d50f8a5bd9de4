# SPDX-License-Identifier: Apache-2.0
"""The lab cloud's services, reachable from inside the lab's hosts.

A nova-compute runs on its host: in the host's network namespace, where
its QEMU's migration connections are (post-copy recovery reads them there,
see ``nova_postcopy/half_open.py``). The control plane (RabbitMQ, keystone,
placement, glance, neutron) listens on this machine's 127.0.0.1, which a
namespace does not see. This relays 127.0.0.1:PORT inside each named
namespace to 127.0.0.1:PORT outside: loopback to loopback, nothing else.

    netns_bridge.py --netns hostA --netns hostB PORT [PORT...]
"""

import argparse
import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000


def setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def listeners(netns, ports):
    """Listening sockets made inside ``netns``; they stay there."""
    home = os.open('/proc/self/ns/net', os.O_RDONLY)
    target = os.open('/run/netns/%s' % netns, os.O_RDONLY)
    made = []
    try:
        setns(target)
        for port in ports:
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(('127.0.0.1', port))
            server.listen(64)
            made.append((server, port))
    finally:
        setns(home)
        os.close(target)
        os.close(home)
    return made


def pipe(source, sink):
    """Copy until the source ends; pass its end on."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                sink.shutdown(socket.SHUT_WR)
                return
            sink.sendall(data)
    except OSError:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay(inside, outside):
    back = threading.Thread(target=pipe, args=(outside, inside), daemon=True)
    back.start()
    pipe(inside, outside)
    back.join()
    inside.close()
    outside.close()


def serve(server, port):
    while True:
        inside, _ = server.accept()
        try:
            outside = socket.create_connection(('127.0.0.1', port))
        except OSError:
            inside.close()
            continue
        threading.Thread(target=relay, args=(inside, outside),
                         daemon=True).start()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--netns', action='append', required=True)
    parser.add_argument('ports', type=int, nargs='+')
    args = parser.parse_args()
    servers = []
    for netns in args.netns:
        servers.extend(listeners(netns, args.ports))
    for server, port in servers:
        threading.Thread(target=serve, args=(server, port),
                         daemon=True).start()
    print('relaying %s in %s' % (', '.join(map(str, args.ports)),
                                 ', '.join(args.netns)), flush=True)
    threading.Event().wait()


if __name__ == '__main__':
    sys.exit(main())
