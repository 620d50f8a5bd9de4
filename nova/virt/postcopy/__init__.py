# SPDX-License-Identifier: Apache-2.0
"""Shim that lets nova-compute load nova-postcopy's driver.

Nova imports ``nova.virt.<compute_driver>`` and nothing else, so an
out-of-tree driver places a module there, as nova-dpm, nova-zvm and
nova-bhyve do. In nova.conf::

    [DEFAULT]
    compute_driver = postcopy.PostcopyLibvirtDriver

This package is installed into Nova's own ``nova/virt/`` directory (a
regular install, not an editable one). It holds no code of its own.
"""

from nova_postcopy.compute.driver import PostcopyLibvirtDriver  # noqa: F401
