# SPDX-License-Identifier: Apache-2.0
"""Validator of the ``postcopy:mode`` flavor extra spec, for nova-api.

Registered in Nova's stevedore namespace ``nova.api.extra_spec_validators``
so that ``openstack flavor set --property postcopy:mode=maybe`` is refused
when the operator types it, not at the next migration. Only nova-api
imports this module; it is the one place outside the Nova driver that
imports Nova.
"""

from nova.api.validation.extra_specs import base

from nova_postcopy import instance_mode


def register():
    return [
        base.ExtraSpecValidator(
            name=instance_mode.FLAVOR_KEY,
            description=(
                'Whether live migrations of instances of this flavor may '
                'switch to post-copy: "forbidden" (pre-copy only), '
                '"allowed" (when both hosts support it; the default) or '
                '"required" (a migration that cannot have post-copy fails '
                'before it starts). Overrides the image property '
                'postcopy_mode.'),
            value={'type': str, 'enum': list(instance_mode.MODES)},
        ),
    ]
