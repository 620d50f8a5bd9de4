# SPDX-License-Identifier: Apache-2.0
"""What the two switchover reproductions share (issue #11).

``bare_switch.py`` (plain libvirt-python) and ``qmp_switch.py`` (QEMU
alone) take the same guest shape, by default the one that lost guests on
forky, and report a run the same way, so that their tables line up.
"""

import json


def add_shape_arguments(parser):
    parser.add_argument('--ram-mib', type=int, default=512)
    parser.add_argument('--wss-mib', type=int, default=256)
    parser.add_argument('--dirty-mibs', type=int, default=64)
    parser.add_argument('--bandwidth-mibs', type=int, default=16)
    parser.add_argument('--postcopy-bandwidth-mibs', type=int, default=0)
    parser.add_argument('--settle', type=float, default=8.0,
                        help='seconds the guest dirties before migrating')
    parser.add_argument('--poll', type=float, default=0.1)
    parser.add_argument('--json', metavar='FILE',
                        help='the run with every sample')


def report(run, path):
    """Print the run without its samples; exit status 1 if the guest died."""
    if path:
        with open(path, 'w') as handle:
            json.dump(run, handle, indent=1)
    print(json.dumps({k: v for k, v in run.items() if k != 'samples'},
                     sort_keys=True))
    return 1 if run['lost'] else 0
