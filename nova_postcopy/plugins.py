# SPDX-License-Identifier: Apache-2.0
"""Discovery of switch policies through stevedore.

Policies are found by entry point so that an operator can add one from
another package without touching ours; built-in ones use the same path, so
what tests load is what production loads.

Only the policies a migration is configured with are imported: listing the
names reads the entry points without importing them, so a broken
third-party package that nobody configured cannot stop migrations, and one
that is configured fails when the configuration is read, with its name and
its import error (as os-vif wraps a plugin's failure in its own exception).
"""

import functools
import importlib.metadata

from stevedore import driver

from nova_postcopy import exception

NAMESPACE = 'nova_postcopy.switch_policies'


def available_policies():
    """Names of the installed switch policies, sorted; nothing imported."""
    return sorted({entry_point.name for entry_point in
                   importlib.metadata.entry_points(group=NAMESPACE)})


@functools.lru_cache(maxsize=None)
def policy_class(name):
    """The class registered under ``name``, imported on first use.

    :raises nova_postcopy.exception.UnknownPolicy: listing what exists.
    :raises nova_postcopy.exception.PolicyLoadError: naming the policy and
        why it could not be imported.
    """
    if name not in available_policies():
        raise exception.UnknownPolicy(
            name=name, available=', '.join(available_policies()))
    try:
        return driver.DriverManager(
            NAMESPACE, name, invoke_on_load=False,
            on_load_failure_callback=_reraise).driver
    except Exception as error:  # whatever a third-party import raises
        raise exception.PolicyLoadError(
            name=name, cause='%s: %s' % (type(error).__name__, error)
        ) from error


def _reraise(manager, entrypoint, error):
    raise error
