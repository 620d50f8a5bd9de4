# SPDX-License-Identifier: Apache-2.0
"""Telling the destination that a cut migration connection is gone.

After a cut in post-copy the source's QEMU, which sends, gives up first
(``tcp_retries2``) and its kernel forgets the connection without a word,
since the link is down. The destination's QEMU only receives: its end stays
ESTABLISHED, half-open, until it next sends, that is until its guest faults
on a page still on the source. An idle guest may not fault for minutes
(measured: five), and until then libvirt refuses every resume ("QEMU reports
migration is still running") and cannot pause that half either (its Finish
phase holds the domain's job). QEMU 10.1 can enable TCP keep-alive on the
listening socket for exactly this case (commit 1bd4237cb1); libvirt 12.8
does not ask for it. See ``doc/source/user/recovery.rst``.

TCP has its own answer for a peer that forgot a connection (RFC 793 and
RFC 5961 4.2): a SYN arriving on an ESTABLISHED connection makes the
receiver send a challenge ACK; the sender, which holds no such connection,
answers that ACK with a reset carrying exactly the sequence number the
receiver expects, and the receiver drops the connection. A client that
reconnects from the same port after a reboot clears the server's stale
connection this way. :func:`knock` does the same from the source host, with
an ordinary socket bound to the forgotten connection's own address and port:
no privilege, nothing sent on a connection the source still holds (the bind
fails then), and nothing reaches the destination but one SYN and one reset
for a connection that is dead on the source anyway. The destination's QEMU
then reads an error, pauses its post-copy, and libvirt accepts the resume.

Only connections seen during this migration's post-copy, to libvirt's
migration ports, and since closed here are knocked on. The process must run
in the source QEMU's network namespace, as nova-compute and a
``nova-postcopy-migrate`` on the source host do.
"""

import dataclasses
import errno
import select
import socket
import struct

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

# libvirt's qemu.conf migration_port_min and migration_port_max defaults:
# the destination listens for an incoming migration on one of these.
LIBVIRT_MIGRATION_PORTS = range(49152, 49216)
# /proc/net/tcp's state column (include/net/tcp_states.h).
ESTABLISHED = '01'
LISTEN = '0A'
TABLES = (('/proc/self/net/tcp', socket.AF_INET),
          ('/proc/self/net/tcp6', socket.AF_INET6))
# How long a knock waits for the destination's answer: a round trip and a
# SYN retransmitted at once (Linux re-arms it at its minimum timeout after
# answering a challenge ACK). No answer: the link is still down.
ANSWER_WAIT_S = 0.5

# What became of a knock.
ANSWERED = 'answered'        # the destination holds the connection no more
NO_ANSWER = 'no answer'      # link still down; knock again later
STILL_HELD = 'still held'    # the source holds the address: not forgotten
ACCEPTED = 'accepted'        # a listener took it; closed at once


@dataclasses.dataclass(frozen=True)
class Connection:
    family: int
    local: tuple    # (address, port)
    remote: tuple

    def __str__(self):
        return '%s:%d -> %s:%d' % (self.local + self.remote)


def _address(family, text):
    """An address from /proc/net/tcp: 32-bit words in host byte order."""
    words = [int(text[i:i + 8], 16) for i in range(0, len(text), 8)]
    packed = b''.join(struct.pack('=I', word) for word in words)
    return socket.inet_ntop(family, packed)


def parse_table(text, family):
    """(Connection, state) for each row of a /proc/net/tcp or tcp6 text."""
    rows = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        ends = []
        for field in fields[1:3]:
            address, port = field.split(':')
            ends.append((_address(family, address), int(port, 16)))
        rows.append((Connection(family, ends[0], ends[1]), fields[3]))
    return rows


def read_tables(tables=TABLES):
    rows = []
    for path, family in tables:
        try:
            with open(path) as handle:
                rows.extend(parse_table(handle.read(), family))
        except OSError:
            continue  # no IPv6 on this host
    return rows


def knock(connection, wait_s=ANSWER_WAIT_S):
    """One SYN from the forgotten connection's own address and port."""
    sock = socket.socket(connection.family, socket.SOCK_STREAM)
    try:
        sock.bind(connection.local)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            return STILL_HELD
        raise
    try:
        sock.setblocking(False)
        code = sock.connect_ex(connection.remote)
        if code == errno.EINPROGRESS:
            _, writable, _ = select.select([], [sock], [], wait_s)
            if not writable:
                return NO_ANSWER
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            # Never a stream for anyone: close with a reset, not a FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack('ii', 1, 0))
            return ACCEPTED
        if code in (errno.ECONNREFUSED, errno.ECONNRESET):
            return ANSWERED
        return NO_ANSWER
    finally:
        sock.close()


class MigrationConnections:
    """The source's migration connections, and knocks for forgotten ones.

    :param enabled: ``[postcopy] recovery_reset_half_open``; when off,
        nothing is read and nothing is sent.
    :param read: returns the host's rows, as :func:`read_tables`.
    :param knock: as :func:`knock`.
    """

    def __init__(self, enabled=True, ports=LIBVIRT_MIGRATION_PORTS,
                 read=read_tables, knock=knock):
        self.enabled = enabled
        self.ports = ports
        self._read = read
        self._knock = knock
        self.seen = set()

    def record(self):
        """Remember every established connection to a migration port.

        Not one accepted by a service listening here: a client's ephemeral
        port can fall in libvirt's range too.
        """
        if not self.enabled:
            return
        rows = self._read()
        listening = {connection.local[1] for connection, state in rows
                     if state == LISTEN}
        for connection, state in rows:
            if (state == ESTABLISHED and connection.remote[1] in self.ports
                    and connection.local[1] not in listening):
                self.seen.add(connection)

    def knock_forgotten(self, name):
        """Knock for each seen connection this host no longer holds.

        :param name: the migration, for the log.
        :returns: the connections the destination answered for: it holds
            none of them now, so they are forgotten here too.
        """
        if not self.seen:
            return []
        held = {connection for connection, _ in self._read()}
        answered = []
        for connection in sorted(self.seen - held, key=str):
            try:
                result = self._knock(connection)
            except OSError as error:
                LOG.debug('knocking for %s failed: %s', connection, error)
                continue
            if result == ACCEPTED:
                LOG.warning('the destination accepted a connection from %s: '
                            'a new listener holds that port; closed it at '
                            'once', connection)
            if result in (ANSWERED, ACCEPTED):
                self.seen.discard(connection)
                answered.append(connection)
                LOG.info('%s: told the destination that migration '
                         'connection %s is closed: the source dropped it in '
                         'the cut, and a destination that only receives may '
                         'not notice for minutes, refusing every resume '
                         'until it does', name, connection)
        return answered
