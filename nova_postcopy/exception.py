# SPDX-License-Identifier: Apache-2.0
"""Errors that nova-postcopy raises to its callers."""


class NovaPostcopyError(Exception):
    msg_fmt = 'nova-postcopy error'

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        super().__init__(self.msg_fmt % kwargs)


class InvalidConfig(NovaPostcopyError):
    msg_fmt = 'Invalid value of [postcopy] %(option)s: %(reason)s'


class UnknownPolicy(NovaPostcopyError):
    msg_fmt = ('Unknown switch policy %(name)r; available policies: '
               '%(available)s')


class PostcopyRequired(NovaPostcopyError):
    msg_fmt = ('Instance %(instance)s requires post-copy, which this '
               'migration cannot have: %(missing)s. Nothing was migrated; '
               'fix the hosts or choose another destination.')


class InvalidPostcopyMode(NovaPostcopyError):
    msg_fmt = 'Invalid post-copy mode %(mode)r; allowed: %(allowed)s'


class PolicyLoadError(NovaPostcopyError):
    msg_fmt = ('Switch policy %(name)r is installed but cannot be loaded: '
               '%(cause)s. Fix the package that provides it, or remove it '
               'from [postcopy] switch_policies.')
