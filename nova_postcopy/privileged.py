# SPDX-License-Identifier: Apache-2.0
"""What nova-compute does as root, through oslo.privsep, and nothing more.

One context, one entry point, two capabilities: setting TCP keepalive on
the sockets of an instance's incoming QEMU (:mod:`incoming_sockets` says
why) needs ``pidfd_getfd`` (CAP_SYS_PTRACE) and a look at that QEMU's
descriptor table (CAP_DAC_READ_SEARCH). Nova's own ``sys_admin_pctxt``
has neither, and lending ours its CAP_SYS_ADMIN would give this helper
far more than it needs. The entry point takes an instance UUID, never a
PID or a descriptor: it can only touch a QEMU started for an incoming
migration of that instance.

The daemon starts on first use; ``[nova_postcopy_privileged]
helper_command`` in nova.conf sets how (as for any privsep context).
"""

from oslo_privsep import capabilities
from oslo_privsep import priv_context

from nova_postcopy import incoming_sockets

incoming_migration = priv_context.PrivContext(
    'nova_postcopy',
    cfg_section='nova_postcopy_privileged',
    pypath=__name__ + '.incoming_migration',
    capabilities=[capabilities.CAP_SYS_PTRACE,
                  capabilities.CAP_DAC_READ_SEARCH],
)


@incoming_migration.entrypoint
def keep_incoming_alive(instance_uuid, idle_s, interval_s, count):
    """:func:`incoming_sockets.keep_incoming_alive`, privileged."""
    return incoming_sockets.keep_incoming_alive(instance_uuid, idle_s,
                                                interval_s, count)
