# SPDX-License-Identifier: Apache-2.0
"""The lab's two hosts as the network sees them, for the Python tools.

``tools/lab/lab`` gives each host's namespace these addresses (its ADDR
table: veth, libvirtd's listen and migration addresses, the certificates'
subjectAltName); the tools that reach a host over the lab's link take them
from here rather than each keeping a copy. No imports: cloud_conf runs in
the cloud's virtualenv, the probes under the lab's libvirt bindings.
"""

ADDR = {'A': '10.250.0.1', 'B': '10.250.0.2'}


def libvirt_uri(host):
    """libvirtd of ``host`` over TCP, as a peer-to-peer migration names it."""
    return 'qemu+tcp://%s/system' % ADDR[host]


def migrate_uri(host):
    """QEMU's migration stream to ``host`` (libvirt's migrate URI)."""
    return 'tcp://%s' % ADDR[host]
