# SPDX-License-Identifier: Apache-2.0
"""The built-in workload matrix of ``nova-postcopy-bench``.

Workloads are sized relative to RAM and link so that each class means the
same thing on every size: ``heavy`` converges (it dirties at 60 % of the
link), ``busy`` and ``hotcold`` dirty faster than the link carries data and
never converge, ``phased`` alternates 10 s busy and quiet phases. The two
outage workloads cut the link for 15 s in pre-copy: while the first pass
runs, and just before it ends, where pass-based decisions are made. (QEMU
ends a pass once what is left fits its downtime target, 0.5 s of data by
default: ``just before`` is 90 % of the time to that point.)
"""

from nova_postcopy.sim import model
from nova_postcopy.sim import workload

RAM_GIB = (1, 4, 16, 64, 256)
LINK_GBPS = (1, 10, 25)
OUTAGE_S = 15.0
DOWNTIME_S = 0.5                # the default max downtime: a pass's tail


def _bound_s(ram_gib, link_gbps, zero_pct):
    nonzero = ram_gib * model.GIB * (1 - zero_pct / 100.0)
    return nonzero / (link_gbps * 1e9 / 8 * model.LINK_EFFICIENCY)


def _classes(ram, link):
    heavy = dict(zero_pct=10, wss_gib=ram * 0.25, dirty_gbps=link * 0.6)
    busy = dict(zero_pct=10, wss_gib=ram * 0.125, dirty_gbps=link * 2)
    bound = _bound_s(ram, link, 10)
    return {
        'idle': dict(zero_pct=70, wss_gib=ram * 0.01, dirty_gbps=0.01),
        'light': dict(zero_pct=30, wss_gib=ram * 0.05,
                      dirty_gbps=link * 0.05),
        'heavy': heavy,
        'phased': dict(busy, pattern='phased'),
        'busy': busy,
        'hotcold': dict(zero_pct=10, wss_gib=ram * 0.25,
                        dirty_gbps=link * 3, pattern='hotcold'),
        'heavy+outage': dict(heavy, outage_at_s=round(0.3 * bound, 1),
                             outage_s=OUTAGE_S),
        'busy+outage': dict(busy, outage_at_s=round(
            0.9 * max(bound - DOWNTIME_S, 0.0), 1), outage_s=OUTAGE_S),
    }


def builtin(sync='pass'):
    """Every workload of the matrix, in a stable order.

    :param sync: how QEMU syncs the dirty bitmap (see
        :class:`nova_postcopy.sim.workload.Workload`); the same guests and
        links either way, so the two runs compare QEMU generations.
    """
    workloads = []
    seed = 0
    for ram in RAM_GIB:
        for link in LINK_GBPS:
            for name, spec in _classes(ram, link).items():
                seed += 1
                workloads.append(workload.Workload(
                    ram_gib=ram, link_gbps=link, seed=seed, sync=sync,
                    name='%s ram=%dG link=%dG' % (name, ram, link), **spec))
    return workloads
