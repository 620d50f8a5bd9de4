# SPDX-License-Identifier: Apache-2.0
"""One outgoing migration as it was planned, and its libvirt call.

``Guest.migrate`` builds the call's parameters as Nova does; the planned
domain applies the plan's flags to them (:func:`negotiate.call_flags`) and
keeps the call for a resume.
"""

import dataclasses

from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from nova_postcopy import libvirt_api
from nova_postcopy import negotiate

LOG = logging.getLogger(__name__)
CONF = libvirt_driver.CONF


@dataclasses.dataclass
class Migration:
    """What one outgoing migration of this host was planned with."""

    plan: negotiate.Plan
    mode: str
    flags_postcopy: bool
    job: object = None
    # (uri, params, flags) of the migration call, for a resume.
    migrate_call: tuple = None


class PlannedDomain:
    """The domain as ``Guest.migrate`` sees it: flags from the plan.

    ``Guest.migrate`` builds the parameters; here the plan's flags and the
    post-copy bandwidth are applied, and a destination that refuses
    post-copy at Prepare (nothing moved yet) gets one retry as pre-copy.
    The call runs on a connection of its own (``connect``), so that the
    monitor's calls are not held behind it
    (:func:`nova_postcopy.libvirt_api.own_connection`).
    """

    def __init__(self, domain, planned, instance, connect):
        self._domain = domain
        self._planned = planned
        self._instance = instance
        self._connect = connect

    def __getattr__(self, name):
        return getattr(self._domain, name)

    def migrateToURI3(self, dconnuri, params, flags):
        lv = libvirt_driver.libvirt
        plan = self._planned.plan
        auto_converge = CONF.libvirt.live_migration_permit_auto_converge
        flags, params = negotiate.call_flags(
            lv, flags, params, plan.postcopy, plan.bandwidth_mibs,
            auto_converge)
        self._planned.migrate_call = (dconnuri, dict(params), flags)
        try:
            return self._call(dconnuri, params, flags)
        except lv.libvirtError as error:
            if not (plan.postcopy and negotiate.retry_as_precopy(
                    str(error), self._planned.mode)):
                raise
            LOG.info('the destination refused post-copy before any memory '
                     'moved (%s); retrying once as pre-copy', error,
                     instance=self._instance)
        self._planned.flags_postcopy = False
        if self._planned.job is not None:
            # The monitor runs in another thread: it is told, not written.
            self._planned.job.withdraw_postcopy()
        flags, params = negotiate.call_flags(lv, flags, params, False, 0,
                                             auto_converge)
        self._planned.migrate_call = (dconnuri, dict(params), flags)
        return self._call(dconnuri, params, flags)

    def _call(self, dconnuri, params, flags):
        with libvirt_api.own_connection(
                self._connect, self._domain,
                libvirt_driver.libvirt.libvirtError) as domain:
            return domain.migrateToURI3(dconnuri, params=params,
                                        flags=flags)
