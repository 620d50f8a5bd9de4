# SPDX-License-Identifier: Apache-2.0
"""libvirt-python for the CLI's adapters, imported lazily, as Nova does.

Nothing but the adapters that talk to libvirt (the CLI's job, the probe,
the commands) needs the binding, so the engine, the simulator and Nova's
in-process tests run without it. The domain states are in
:mod:`nova_postcopy.domain_states`, which needs no binding at all.
"""

import threading

from nova_postcopy import domain_states

libvirt = None

# virDomainAbortJobFlagsValues (libvirt 8.5); older bindings lack the name.
ABORT_JOB_POSTCOPY = 1
# virDomainJobType: the job runs.
JOB_UNBOUNDED = 2


def import_libvirt():
    global libvirt
    if libvirt is None:
        import libvirt as module
        # Errors reach the caller as exceptions; the default handler would
        # also print each one on stderr.
        module.registerErrorHandler(lambda context, error: None, None)
        libvirt = module
    return libvirt


class EventLoop:
    """libvirt's default event loop in a daemon thread, started once.

    It must be registered before the first connection is opened, or no
    domain events arrive on that connection.
    """

    _started = False
    _lock = threading.Lock()

    @classmethod
    def ensure(cls):
        with cls._lock:
            if cls._started:
                return
            lv = import_libvirt()
            lv.virEventRegisterDefaultImpl()
            thread = threading.Thread(target=cls._run, name='libvirt-events',
                                      daemon=True)
            thread.start()
            cls._started = True

    @staticmethod
    def _run():
        while True:
            libvirt.virEventRunDefaultImpl()


def state_of(domain):
    """(state, reason) of a domain; None when it cannot be asked."""
    try:
        return tuple(domain.state())
    except libvirt.libvirtError:
        return None


def describe(domain):
    """A domain's state in words, for an operator."""
    try:
        return domain_states.describe(tuple(domain.state()))
    except libvirt.libvirtError as error:
        return 'cannot be asked (%s)' % error.get_error_message()
