# SPDX-License-Identifier: Apache-2.0
"""TCP keepalive on an incoming migration's connections, set from outside.

Why: after a cut in post-copy the destination's QEMU, which only receives,
keeps its end of the migration connection open (half-open) until it next
sends, i.e. until its guest faults on a page it has not asked for yet. A
guest whose hot pages have arrived, or whose vCPU waits on a page lost in
the cut, may not do so for minutes: the destination stays "running
(post-copy)", libvirt refuses every resume ("QEMU reports migration is
still running") or does not even return the failed call, and the
migration hangs (lab cloud: 180 s; the CI run of 54b87e0: past its 300 s).
A keepalive probe is answered by the source host's kernel, not by QEMU:
once the source's socket is gone its kernel resets the connection, and the
destination's QEMU pauses post-copy at once, ready to be resumed.

QEMU itself sets keepalive on incoming migration sockets only from 10.1
(commit 1bd4237cb1, "util/qemu-sockets: Introduce inet socket options
controlling TCP keep-alive", whose message describes this very case) and
only when asked; libvirt 12.8 does not ask. So the destination host sets
it on QEMU's sockets (keepalive only, as QEMU would: ``TCP_USER_TIMEOUT``
would also replace ``net.ipv4.tcp_retries2`` for a page request sent into
the cut, and measured slower there, 3-7 s behind the source instead of
0.5-1.6 s on the lab's tuned hosts):
``pidfd_getfd(2)`` (Linux 5.6) gives this process a second descriptor of
QEMU's socket, ``setsockopt`` on it changes that very socket, and closing
it leaves QEMU's descriptor alone. No packet is sent
by us and no new connection is made (a SYN to QEMU's still-listening
incoming port would be taken as a recovery channel, see
``doc/source/user/recovery.rst``).

Which sockets: the established TCP connections that QEMU accepted on one
of its own listening ports (the migration's, and a display client's if
any: keepalive costs one probe per idle period there), in a QEMU that was
started for an incoming migration (``-incoming``) with the instance's
UUID. Reading another user's ``/proc/PID/fd`` needs CAP_DAC_READ_SEARCH,
``pidfd_getfd`` CAP_SYS_PTRACE: :mod:`nova_postcopy.privileged` runs this
with those two and nothing else.
"""

import ctypes
import errno as errno_codes
import os
import re
import socket

# pidfd_getfd(2): the same number on every architecture (the unified
# syscall table, Linux 5.6).
SYS_PIDFD_GETFD = 438
TCP_ESTABLISHED = 0x01
TCP_LISTEN = 0x0A
_SOCKET_LINK = re.compile(r'socket:\[(\d+)\]$')


class KeepaliveError(Exception):
    """The keepalive could not be set; the message names cause and fix."""


def parse_tcp_table(text):
    """``/proc/PID/net/tcp{,6}`` as ``{inode: (local_port, state, peer)}``."""
    table = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        local_port = int(fields[1].rsplit(':', 1)[1], 16)
        table[int(fields[9])] = (local_port, int(fields[3], 16), fields[2])
    return table


def is_incoming_qemu(args, uuid):
    """A QEMU started for an incoming migration of this instance."""
    return ('-incoming' in args and '-uuid' in args
            and args.index('-uuid') + 1 < len(args)
            and args[args.index('-uuid') + 1].lower() == uuid.lower())


def accepted_connections(fd_inodes, tcp_table):
    """The fds of established connections accepted on the process's ports.

    :param fd_inodes: ``{fd: socket inode}`` of the process.
    :param tcp_table: :func:`parse_tcp_table` of its network namespace.
    """
    own = {fd: tcp_table[inode] for fd, inode in fd_inodes.items()
           if inode in tcp_table}
    listening = {port for port, state, _ in own.values()
                 if state == TCP_LISTEN}
    return sorted(fd for fd, (port, state, _) in own.items()
                  if state == TCP_ESTABLISHED and port in listening)


def peer_of(hex_address):
    """``0100FA0A:D368`` -> ``10.250.0.1:54120`` (IPv4) or the hex as is."""
    address, port = hex_address.rsplit(':', 1)
    if len(address) == 8:
        host = socket.inet_ntoa(int(address, 16).to_bytes(4, 'little'))
        return '%s:%d' % (host, int(port, 16))
    return hex_address


# -- reading /proc and the sockets ------------------------------------------

def _read(path, mode='r'):
    with open(path, mode) as handle:
        return handle.read()


def incoming_qemu_pids(uuid, proc='/proc'):
    pids = []
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            raw = _read(os.path.join(proc, name, 'cmdline'), 'rb')
        except OSError:
            continue  # exited meanwhile
        args = [arg.decode('utf-8', 'replace') for arg in raw.split(b'\0')]
        if is_incoming_qemu(args, uuid):
            pids.append(int(name))
    return pids


def _fd_inodes(pid, proc):
    inodes = {}
    directory = os.path.join(proc, str(pid), 'fd')
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return inodes  # exited meanwhile, as pidfd_open may find below
    except PermissionError as error:
        raise KeepaliveError(
            'cannot read %s (%s): the privileged helper needs '
            'CAP_DAC_READ_SEARCH' % (directory, error))
    for name in names:
        try:
            match = _SOCKET_LINK.match(os.readlink(os.path.join(directory,
                                                                name)))
        except OSError:
            continue
        if match:
            inodes[int(name)] = int(match.group(1))
    return inodes


def _tcp_table(pid, proc):
    table = {}
    for name in ('tcp', 'tcp6'):
        try:
            table.update(parse_tcp_table(_read(os.path.join(
                proc, str(pid), 'net', name))))
        except OSError:
            pass
    return table


def _duplicate(pidfd, fd):
    libc = ctypes.CDLL(None, use_errno=True)
    dup = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
    if dup < 0:
        code = ctypes.get_errno()
        if code == errno_codes.EBADF:
            return None  # closed meanwhile
        raise KeepaliveError(
            "pidfd_getfd on QEMU's descriptor %d: %s; the privileged helper "
            'needs CAP_SYS_PTRACE (and Yama ptrace_scope below 3, an '
            'AppArmor/SELinux policy that lets it trace QEMU)'
            % (fd, os.strerror(code)))
    return dup


def _set(dup, idle_s, interval_s, count):
    """True if set now, False if this keepalive was already there."""
    try:
        sock = socket.socket(fileno=dup)
    except OSError:
        os.close(dup)  # the number now names something else
        raise
    try:
        if (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
                and sock.getsockopt(socket.IPPROTO_TCP,
                                    socket.TCP_KEEPIDLE) == idle_s):
            return False
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return True
    finally:
        sock.close()  # ours only: QEMU's descriptor stays open


def keep_incoming_alive(uuid, idle_s, interval_s, count, proc='/proc'):
    """Set keepalive where it is not yet; the peers newly covered.

    Idempotent: call it as often as new connections may appear (a resumed
    post-copy opens new ones).

    :raises KeepaliveError: not permitted (the message says what to grant).
    """
    covered = []
    for pid in incoming_qemu_pids(uuid, proc):
        table = _tcp_table(pid, proc)
        inodes = _fd_inodes(pid, proc)
        fds = accepted_connections(inodes, table)
        if not fds:
            continue
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # exited meanwhile
        try:
            for fd in fds:
                dup = _duplicate(pidfd, fd)
                if dup is None:
                    continue
                try:
                    if _set(dup, idle_s, interval_s, count):
                        covered.append(peer_of(table[inodes[fd]][2]))
                except OSError:
                    # QEMU closed it and reused the number meanwhile: the
                    # next call sees the table as it is then.
                    continue
        finally:
            os.close(pidfd)
    return covered
