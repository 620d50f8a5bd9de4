# SPDX-License-Identifier: Apache-2.0
"""Switch after a number of completed passes over RAM.

``first_pass`` is what virsh's ``--postcopy-after-precopy`` and libvirt's
documentation advise: one full pass first, so that the destination faults
only on what the guest dirtied since. ``iterations`` is oVirt's post-copy
schedule, which switches at about the fourth pass. Both count passes from
the data (see :mod:`nova_postcopy.progress`), never from the raw counter,
which QEMU 11.1 advances ten times a second once post-copy is enabled.
"""

from nova_postcopy.policies import base
from nova_postcopy import units

GIB = units.GIB


class _AfterPasses(base.SwitchPolicy):

    def passes_needed(self):
        raise NotImplementedError

    def decide(self, progress, context):
        needed = self.passes_needed()
        if progress.completed_passes < needed:
            return self.keep_going()
        last = progress.passes[-1]
        return self.switch(
            '%d pass(es) over RAM completed at %.0f s; the guest dirtied '
            '%.2f GiB during the last one (%.1f s)', progress.completed_passes,
            last.end_s, last.dirtied / GIB, last.duration_s)


class FirstPassPolicy(_AfterPasses):
    name = 'first_pass'

    def passes_needed(self):
        return 1


class IterationsPolicy(_AfterPasses):
    name = 'iterations'

    def passes_needed(self):
        return self.conf.switch_after_passes
