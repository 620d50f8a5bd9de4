# SPDX-License-Identifier: Apache-2.0
"""What an instance wants of post-copy, from its flavor and its image.

The flavor extra spec ``postcopy:mode`` is the operator's word, checked by
nova-api when it is set (see :mod:`nova_postcopy.nova_validators`); the
image property ``postcopy_mode`` is the image owner's, and nova-api does
not check it, so it is checked here, before a migration starts. The flavor
wins when both are set: whoever runs the cloud decides what its migrations
may risk.
"""

from nova_postcopy import exception

FLAVOR_KEY = 'postcopy:mode'
IMAGE_KEY = 'postcopy_mode'
MODES = ('forbidden', 'allowed', 'required')
DEFAULT = 'allowed'


def resolve(extra_specs=None, image_properties=None):
    """(mode, where it came from) for one instance.

    :raises nova_postcopy.exception.InvalidPostcopyMode: a value that is
        not one of :data:`MODES`, naming where it was found.
    """
    flavor = (extra_specs or {}).get(FLAVOR_KEY)
    image = (image_properties or {}).get(IMAGE_KEY)
    for value, where in ((flavor, 'flavor extra spec ' + FLAVOR_KEY),
                         (image, 'image property ' + IMAGE_KEY)):
        if value is not None and value not in MODES:
            raise exception.InvalidPostcopyMode(
                mode='%s (%s)' % (value, where), allowed=', '.join(MODES))
    if flavor is not None:
        if image is not None and image != flavor:
            return flavor, ('flavor extra spec %s=%s (overrides image '
                            'property %s=%s)' % (FLAVOR_KEY, flavor,
                                                 IMAGE_KEY, image))
        return flavor, 'flavor extra spec %s=%s' % (FLAVOR_KEY, flavor)
    if image is not None:
        return image, 'image property %s=%s' % (IMAGE_KEY, image)
    return DEFAULT, 'default'
