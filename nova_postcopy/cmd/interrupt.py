# SPDX-License-Identifier: Apache-2.0
"""What Ctrl-C (or SIGTERM) does to a migration the CLI runs.

In pre-copy the guest runs on the source: abort, and it stays there. In
post-copy it runs on the destination and libvirt refuses every abort: the
first Ctrl-C says so and the CLI watches on (and recovers a cut); a second,
or SIGTERM, leaves the job to libvirt with the command that resumes it.
"""

import sys

from oslo_log import log as logging

from nova_postcopy import jobs

LOG = logging.getLogger(__name__)


def abort_until_ended(job, resume_command, deadline_s=60.0):
    """Abort, again and again: libvirt refuses while the job sets up.

    Not once post-copy has begun: the guest runs on the destination then,
    and libvirt refuses every abort.
    """
    waited = 0.0
    while job.running() and waited < deadline_s:
        if job.in_postcopy():
            print('post-copy began before the abort; ' + LEFT_IN_POSTCOPY
                  % resume_command, file=sys.stderr)
            return
        try:
            job.abort()
        except jobs.JobError as error:
            LOG.info('abort refused, asking again: %s', error)
        job.wait(1.0)
        waited += 1.0
    if job.running():
        print('the migration did not stop within %.0f s' % deadline_s,
              file=sys.stderr)


LEFT_IN_POSTCOPY = (
    'left in post-copy: the guest runs on the destination and cannot be '
    'brought back; libvirt completes the migration by itself. If the link '
    'fails before it does, nothing resumes it now: run %s')
IN_POSTCOPY_NOTICE = (
    'in post-copy: the guest already runs on the destination, and a '
    'migration in post-copy cannot be aborted; watching it to its end '
    '(and resuming it if the link fails). Ctrl-C again to stop watching.')


def ctrl_c(job, setup):
    """Ctrl-C: abort in pre-copy; in post-copy, say why not, once."""
    if job is None or not job.in_postcopy() or job.told_in_postcopy:
        raise KeyboardInterrupt()
    job.told_in_postcopy = True
    print('\n' + IN_POSTCOPY_NOTICE, file=sys.stderr)
    LOG.info('%s: interrupted in post-copy; watching on', setup.name)


def terminate(signum, frame):
    """SIGTERM, a service manager's stop: as Ctrl-C, without a notice."""
    raise KeyboardInterrupt()
