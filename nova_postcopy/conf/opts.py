# SPDX-License-Identifier: Apache-2.0
"""Entry point for oslo-config-generator (namespace ``nova_postcopy``)."""

from nova_postcopy.conf import postcopy


def list_opts():
    return [(group, opts) for group, opts in postcopy.list_opts().items()]
