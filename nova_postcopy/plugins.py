# SPDX-License-Identifier: Apache-2.0
"""Discovery of switch policies through stevedore.

Policies are found by entry point so that an operator can add one from
another package without touching ours; built-in ones use the same path, so
what tests load is what production loads.
"""

import functools

from stevedore import extension

from nova_postcopy import exception

NAMESPACE = 'nova_postcopy.switch_policies'


@functools.lru_cache(maxsize=1)
def _policy_classes():
    manager = extension.ExtensionManager(
        NAMESPACE, invoke_on_load=False, on_load_failure_callback=_reraise)
    return {ext.name: ext.plugin for ext in manager}


def _reraise(manager, entrypoint, error):
    raise error


def available_policies():
    """Names of the installed switch policies, sorted."""
    return sorted(_policy_classes())


def policy_class(name):
    """The class registered under ``name``.

    :raises nova_postcopy.exception.UnknownPolicy: listing what exists.
    """
    try:
        return _policy_classes()[name]
    except KeyError:
        raise exception.UnknownPolicy(
            name=name, available=', '.join(available_policies())) from None
