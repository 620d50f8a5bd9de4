# SPDX-License-Identifier: Apache-2.0
"""How long pre-copy may run, counted the way Nova counts it."""


def migration_data_gib(ram_mib, disk_gibs=()):
    """GiB that Nova's completion timeout is scaled by.

    As Nova's ``LibvirtDriver._live_migration_data_gb``: RAM plus every
    migrated disk, each counted as at least 2 GiB, so that tiny guests still
    get a usable timeout.
    """
    return max(ram_mib / 1024.0, 2.0) + sum(max(gib, 2.0) for gib in disk_gibs)


def precopy_budget_s(data_gib, per_gib_s, cap_s):
    """Seconds of pre-copy: ``per_gib_s`` per GiB, at most ``cap_s``.

    A zero for either means "not limited by this one"; both zero is
    refused when the configuration loads.
    """
    scaled = per_gib_s * data_gib
    if scaled and cap_s:
        return float(min(scaled, cap_s))
    return float(scaled or cap_s)
