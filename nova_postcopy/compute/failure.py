# SPDX-License-Identifier: Apache-2.0
"""A post-copy that failed for good: what the operator is told.

Both halves are kept (Nova's rollback would destroy the destination
domain, the only one running the guest); the instance goes to ERROR with a
fault whose first 255 characters, all that Nova's API shows, are the next
step.
"""

import sys

from nova.compute import utils as compute_utils
from nova import exception as nova_exception
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


class PostcopyFailed(nova_exception.NovaException):
    # The instance fault keeps 255 characters: the next step comes first.
    msg_fmt = ('Post-copy to %(dest)s failed; guest memory is split between '
               '%(source)s (paused) and %(dest)s (running), both kept: do not '
               'reboot or delete. Fix the network, then on %(source)s: virsh '
               'migrate --live --p2p --postcopy --postcopy-resume %(domain)s '
               '%(uri)s. %(detail)s')


class PostcopyLost(nova_exception.NovaException):
    msg_fmt = ('Post-copy to %(dest)s failed and the guest stopped there: '
               'its domain on %(dest)s is gone, and its memory with it. '
               '%(source)s keeps a paused, incomplete copy for inspection; '
               'restart the instance from its disks (reset its state, then '
               'hard reboot). %(detail)s')


def report(context, instance, source, dest, dest_uri, job, outcome, plan):
    """Leave both halves alone; record the fault and raise it.

    :param plan: the migration's :class:`negotiate.Plan`, None if unknown.
    """
    found = outcome.recovery or {}
    if found.get('result') == 'lost':
        # Recovery logged why; the fault tells the operator.
        error = PostcopyLost(dest=dest, source=source,
                             detail='Hosts: %s' % found['hosts'])
    else:
        if found:
            detail = ('Not recovered within %.0f s (%d resume attempts); '
                      'hosts: %s' % (found['took_s'], len(found['attempts']),
                                     found['hosts']))
        else:
            detail = 'Recovery was not available: %s' % (
                '; '.join(plan.reasons) if plan else 'no plan')
        LOG.error('post-copy migration to %s failed (source domain state '
                  '%s): the guest runs on %s with part of its memory still '
                  'on %s. Neither half is destroyed and Nova\'s rollback is '
                  'not run; the instance is put in ERROR until the migration '
                  'is resumed.', dest, job.domain_state(), dest, source,
                  instance=instance)
        error = PostcopyFailed(dest=dest, source=source,
                               domain=instance.name, uri=dest_uri,
                               detail=detail)
    try:
        raise error
    except (PostcopyFailed, PostcopyLost):
        # With the traceback Nova keeps the whole text in the fault's
        # details; the message is cut at 255 characters.
        compute_utils.add_instance_fault_from_exc(
            context, instance, error, sys.exc_info())
        raise
