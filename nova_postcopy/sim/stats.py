# SPDX-License-Identifier: Apache-2.0
"""The simulated migration as libvirt reports it (``virDomainGetJobStats``).

Kept apart from the model's dynamics so that what a policy can see is
written in one place, in libvirt's own keys.
"""

from nova_postcopy import units

PAGE = 4096
FREQUENT_SYNC_S = 0.1
PROBE_S = 1.0                   # the dirty-rate sampler's measuring period


class JobStatsView:
    """libvirt's view of a :class:`~nova_postcopy.sim.model.MigrationModel`.

    Mixed into the model; reads its state, changes nothing but the dirty
    rate it reports.
    """

    def remaining(self):
        if self.state == 'postcopy':
            return self.postcopy_pending
        if self.state == 'stopped':
            return self.complete_pending
        if self.workload.sync == 'frequent':
            return self.dirty_unsent() + self.bitmap_zero
        return self.bitmap

    def iteration(self):
        if self.workload.sync == 'frequent':
            return 1 + int(self.t / FREQUENT_SYNC_S)
        return self.sync_count

    def job_stats(self):
        """``virDomainGetJobStats`` of the running job, or None once over."""
        if self.finished:
            return None
        if self.t < self.workload.setup_s:
            # libvirt answers with zeros until QEMU's migration runs.
            return {'type': 2, 'time_elapsed': int(self.t * 1000)}
        remaining = int(self.remaining())
        if self.workload.sync == 'frequent' and self.wss:
            # Syncs every 0.1 s see nearly every write land on a clean page.
            clean = 1 - self.unique(self.written) / self.wss
            self.reported_dirty_rate = self.write_rate(self.t) * clean / PAGE
        stats = {
            'type': 2,
            'time_elapsed': int(self.t * 1000),
            'data_total': int(self.ram),
            'data_processed': int(self.sent),
            'data_remaining': remaining,
            'memory_total': int(self.ram),
            'memory_processed': int(self.sent),
            'memory_remaining': remaining,
            'memory_constant': int(self.zero_pages),
            'memory_normal': int(self.normal_bytes / PAGE),
            'memory_normal_bytes': int(self.normal_bytes),
            'memory_bps': int(self.bandwidth(self.t)),
            'memory_dirty_rate': int(self.reported_dirty_rate),
            'memory_page_size': PAGE,
            'memory_iteration': self.iteration(),
            'memory_postcopy_requests': int(self.postcopy_requests),
        }
        if self.t >= PROBE_S:
            stats['dirtyrate.megabytes_per_second'] = (
                self.probe_rate / units.MIB)
        return stats

    def completed_stats(self):
        """The completed job's statistics, as libvirt keeps them."""
        return {
            'time_elapsed': int(self.t * 1000),
            'downtime': int(self.downtime_s * 1000),
            'data_processed': int(self.sent),
            'memory_processed': int(self.sent),
            'memory_iteration': self.iteration(),
            'memory_postcopy_requests': int(self.postcopy_requests),
        }
