# SPDX-License-Identifier: Apache-2.0
"""This host's readiness for post-copy, probed and advertised as traits.

Probing starts a QEMU (the trial that tells whether QEMU really gets a
userfaultfd), so the report is kept for :data:`PROBE_MAX_AGE_S`; the
resource tracker asks every minute. A probe that fails never breaks
resource tracking: the host then advertises no post-copy trait.
"""

import dataclasses
import time

from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from nova_postcopy import capabilities
from nova_postcopy.compute import traits
from nova_postcopy import probe

LOG = logging.getLogger(__name__)
CONF = libvirt_driver.CONF
PROBE_MAX_AGE_S = 600


def host_facts(host):
    """Files, libvirt, and an incoming QEMU's word, through Nova's host."""
    facts = probe.local_facts()
    facts['hostname'] = host.get_hostname()
    connection = host.get_connection()
    facts['libvirt_version'] = probe.version_triple(
        connection.getLibVersion())
    facts['qemu_version'] = probe.version_triple(connection.getVersion())
    try:
        facts.update(probe.trial_incoming_qemu(connection))
    except Exception as error:  # noqa: H201 - the trial is best effort
        LOG.info('post-copy trial QEMU not run (%s); judging from files '
                 'and versions', error)
    return capabilities.HostFacts(**facts)


class Readiness:
    """The judged report of this host, and the traits it advertises.

    :param facts: returns this host's :class:`capabilities.HostFacts`.
    """

    def __init__(self, facts):
        self._facts = facts
        self._report = None
        self._report_at = None
        self._traits = None

    def report(self):
        now = time.monotonic()
        if (self._report is None
                or now - self._report_at > PROBE_MAX_AGE_S):
            # What guests run under is Nova's choice, not the probe's.
            self._report = capabilities.judge(dataclasses.replace(
                self._facts(), accelerator=probe.ACCELERATORS.get(
                    CONF.libvirt.virt_type)))
            self._report_at = now
        return self._report

    def advertise(self, provider_tree, nodename):
        """Set this node's post-copy traits; say so when they change."""
        try:
            report = self.report()
        except Exception:  # noqa: H201 - never break resource tracking
            LOG.exception('post-copy readiness of %s could not be probed; '
                          'advertising no post-copy trait', nodename)
            report = capabilities.judge(capabilities.HostFacts(
                hostname=nodename))
            report = dataclasses.replace(report, checks=tuple(
                dataclasses.replace(c, status=capabilities.FAIL)
                if c.name == 'userfaultfd' else c for c in report.checks))
        have = traits.traits_for(report)
        provider_tree.remove_traits(
            nodename, *[t for t in traits.ALL if t not in have])
        provider_tree.add_traits(nodename, *sorted(have))
        if have != self._traits:
            self._traits = have
            failing, warnings = (
                ['%s: %s' % (c.name, c.why) for c in report.checks
                 if c.status == status]
                for status in (capabilities.FAIL, capabilities.WARN))
            LOG.info('post-copy readiness of %s: advertising [%s]%s%s',
                     nodename, ', '.join(sorted(have)) or 'no trait',
                     ('; not ready: ' + '; '.join(failing)) if failing
                     else '',
                     ('; warnings: ' + '; '.join(warnings)) if warnings
                     else '')
