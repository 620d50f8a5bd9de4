# SPDX-License-Identifier: Apache-2.0
"""Binary units, as libvirt and QEMU count memory (bytes)."""

MIB = 1024 ** 2
GIB = 1024 ** 3
