# SPDX-License-Identifier: Apache-2.0
"""The destination's part of recovery: its QEMU must notice a cut too.

After a cut in post-copy, a resume is only accepted once both QEMUs have
paused; the destination's, which only receives, may not notice for minutes
(:mod:`nova_postcopy.incoming_sockets` says why and what fixes it). So
while an instance's incoming migration is in post-copy, the destination's
nova-compute keeps TCP keepalive on its QEMU's migration connections,
including the new ones a resume opens. In pre-copy nothing is set: there
the source still runs the guest, and TCP riding out a short outage is
worth more than noticing it early.

:func:`phase` reads the destination domain's state (pure);
:class:`IncomingWatch` polls it between ``pre_live_migration`` and the end
of the migration on this host; :class:`IncomingWatches` holds this host's
watches, each in a daemon thread, and reads the states from Nova's
``Host``.
"""

import threading

from oslo_log import log as logging

from nova_postcopy import domain_states

LOG = logging.getLogger(__name__)

# Keepalive probes once the connection has been idle for the configured
# time: this far apart, this many before the connection is dropped.
KEEPALIVE_INTERVAL_S = 1
KEEPALIVE_COUNT = 5
# How often the destination domain's state is read: post-copy is covered
# within this of its start, a resumed connection within this of its
# opening.
POLL_S = 1.0
# An incoming domain that has not appeared by then never will: the
# migration failed before libvirt's Prepare (rollback also stops the
# watch, this is for a source that died).
APPEAR_S = 300.0


class StateUnknown(Exception):
    """The domain's state could not be read this time (libvirt busy)."""


WAIT = 'wait'            # not here yet, or in pre-copy
POSTCOPY = 'postcopy'    # keep the connections alive
OVER = 'over'            # completed, failed, or gone


def phase(state, seen):
    """What the destination domain's (state, reason) asks for.

    :param state: None when there is no such domain on this host.
    :param seen: the domain was there at an earlier reading.
    """
    if state is None:
        return OVER if seen else WAIT
    if state in ((domain_states.RUNNING, domain_states.RUNNING_POSTCOPY),
                 (domain_states.RUNNING,
                  domain_states.RUNNING_POSTCOPY_FAILED)):
        return POSTCOPY
    if state[0] == domain_states.PAUSED:
        return WAIT  # incoming pre-copy (or paused in post-copy)
    return OVER


class IncomingWatch:
    """Keepalive on one instance's incoming migration while in post-copy.

    :param read_state: ``() -> (state, reason)`` of the instance's domain
        on this host, None if there is none; raises :class:`StateUnknown`
        when it cannot tell this time.
    :param keep_alive: ``(uuid, idle_s, interval_s, count) -> [peer]``,
        the privileged call; raises when not permitted.
    :param clock: ``now()``.
    """

    def __init__(self, instance_uuid, idle_s, read_state, keep_alive,
                 clock):
        self.instance_uuid = instance_uuid
        self.idle_s = idle_s
        self.read_state = read_state
        self.keep_alive = keep_alive
        self.clock = clock
        self._stop = threading.Event()
        self.covered = []

    def stop(self):
        self._stop.set()

    def run(self):
        started = self.clock.now()
        seen = False
        while not self._stop.is_set():
            try:
                state = self.read_state()
            except StateUnknown as error:
                LOG.debug('incoming migration of %s: state not read (%s)',
                          self.instance_uuid, error)
                self._stop.wait(POLL_S)
                continue
            except Exception:  # noqa: H201 - never break a host
                LOG.exception('incoming migration of %s: not watched',
                              self.instance_uuid)
                return
            now_phase = phase(state, seen)
            seen = seen or state is not None
            if now_phase == OVER:
                return
            if not seen and self.clock.now() - started > APPEAR_S:
                return
            if now_phase == POSTCOPY and not self._cover():
                return
            self._stop.wait(POLL_S)

    def _cover(self):
        """False when the helper cannot do it: said once, then stop."""
        try:
            peers = self.keep_alive(self.instance_uuid, self.idle_s,
                                    KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)
        except Exception as error:  # noqa: H201 - never break a migration
            LOG.warning(
                'incoming migration of %s in post-copy: TCP keepalive not '
                'set (%s). After a network failure this host may not notice '
                'it until the guest touches a missing page, and the source '
                'cannot resume the migration until then. Fix the helper '
                "(see [postcopy] incoming_keepalive's help) or set "
                '[postcopy] incoming_keepalive = 0 to stop trying',
                self.instance_uuid, error)
            return False
        if peers:
            self.covered.extend(peers)
            LOG.info('incoming migration of %s in post-copy: TCP keepalive '
                     'on its connection(s) from %s (probes after %d s idle, '
                     '%d s apart, %d): a cut is noticed here as on the '
                     'source, so recovery can resume it',
                     self.instance_uuid, ', '.join(peers), self.idle_s,
                     KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)
        return True


class IncomingWatches:
    """This host's watches, one per incoming migration.

    :param host: Nova's libvirt ``Host``.
    :param libvirt: ``() -> the binding`` (real, or fakelibvirt in tests),
        for its errors.
    :param keep_alive: the privileged call (see :class:`IncomingWatch`).
    :param clock: ``now()``.
    :param idle_s: ``() -> [postcopy] incoming_keepalive``, read at each
        start (the option is mutable); 0 starts nothing.
    """

    def __init__(self, host, libvirt, keep_alive, clock, idle_s):
        self.host = host
        self.libvirt = libvirt
        self.keep_alive = keep_alive
        self.clock = clock
        self.idle_s = idle_s
        self.watches = {}

    def start(self, uuid):
        idle_s = self.idle_s()
        if not idle_s:
            return
        self.stop(uuid)
        watch = IncomingWatch(uuid, idle_s, lambda: self.state_of(uuid),
                              self.keep_alive, self.clock)
        self.watches[uuid] = watch

        def run():
            try:
                watch.run()
            finally:
                if self.watches.get(uuid) is watch:
                    self.watches.pop(uuid, None)
        # A daemon thread, not Nova's executor: it must never hold up a
        # shutdown, and it outlives the RPC call that started it.
        threading.Thread(target=run, daemon=True,
                         name='postcopy-incoming-%s' % uuid).start()

    def stop(self, uuid):
        watch = self.watches.pop(uuid, None)
        if watch is not None:
            watch.stop()

    def adopt_running(self):
        """After a restart: watch the incoming post-copies running here.

        The watch started in ``pre_live_migration`` died with the process;
        a cut after the restart would otherwise leave this half unaware.
        """
        if not self.idle_s():
            return
        try:
            guests = self.host.list_guests(only_running=True)
        except Exception as error:  # noqa: H201 - never stop a start
            LOG.warning('incoming post-copies not looked for: %s', error)
            return
        for guest in guests:
            try:
                state = guest._domain.state()
                found = phase((state[0], state[1]), True)
            except Exception:  # noqa: H201 - one domain, not the host
                continue
            if found == POSTCOPY:
                LOG.info('incoming migration of %s found in post-copy at '
                         'start: watching it again', guest.uuid)
                self.start(guest.uuid)

    def state_of(self, uuid):
        """(state, reason) of the instance's domain on this host, or None."""
        libvirt = self.libvirt()
        try:
            state = self.host.get_connection().lookupByUUIDString(
                uuid).state()
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise StateUnknown(error)
        return (state[0], state[1])
