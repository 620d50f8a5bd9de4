# SPDX-License-Identifier: Apache-2.0
"""nova-postcopy inside nova-compute: Nova 34's libvirt driver, extended.

Only this package imports Nova; the engine, the CLIs and the lab run
without it.
"""
