# SPDX-License-Identifier: Apache-2.0
"""A migration that outlived its nova-compute: finish Nova's half of it.

Measured on the lab cloud (``doc/source/contributor/cloud.rst``): when the
source nova-compute dies during pre-copy, libvirt cancels the peer-to-peer
job with its client and the guest runs on the source; Nova 34's
``init_host`` then resets the instance (``_reset_live_migration``) and the
migration is ``error``, which is right, but the instance's placement
allocations stay on the destination: the driver gives them back. In
post-copy libvirt cannot cancel: the job goes on and completes, the guest
runs on the destination, and Nova knew nothing of it.
``_reset_live_migration`` looks for a migration ``running``, not ``running
(post-copy)``, so it clears the task state and leaves the instance on the
source host, ``ACTIVE``, its domain gone: the power-state sync would later
stop it there, and a start would boot a second copy of a disk that a
running guest uses.

So at start, before Nova's ``_init_instance``, the driver takes over each
instance it finds migrating from this host in post-copy (its migration
``running (post-copy)``, its domain here not running the guest: paused in
post-copy, being shut down, migrated away, gone or post-copy failed): it
waits for libvirt's job to end and then runs Nova's own post-migration
(``ComputeManager._post_live_migration``), as the migration's monitor
would have. A post-copy that failed meanwhile is left
as it is, paused on both sides, and said once with the command that
resumes it.
"""

import time

from nova.compute import task_states
from nova import context as nova_context
from nova import exception as nova_exception
from nova import objects
from nova import thread_pool_factory
from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from nova_postcopy.compute import guest_job
from nova_postcopy import domain_states

LOG = logging.getLogger(__name__)

# How often, and for how long, the end of an adopted job is looked for.
POLL_S = 1.0
WAIT_MAX_S = 3600


def migration_in(context, instance, status):
    """This instance's live migration in ``status``, or None."""
    if instance.task_state != task_states.MIGRATING:
        return None
    try:
        return objects.Migration.get_by_instance_and_status(
            context, instance.uuid, status)
    except nova_exception.MigrationNotFoundByStatus:
        return None


def give_back_allocations(driver, context, instance):
    """A pre-copy cut short by a restart: resources back to this host.

    Nova's start-up resets the instance here (``_reset_live_migration``:
    the job is aborted, the migration ``error``), but leaves the instance's
    placement allocations on the destination, where the scheduler put them
    for the migration, while the source's stay with the migration: the
    server would run here on resources placement counts elsewhere.
    """
    migration = migration_in(context, instance, 'running')
    if migration is None:
        return
    LOG.info('live migration to %s found in pre-copy at start: Nova resets '
             'the instance here, where the guest runs; its allocations go '
             'back to this host', migration.dest_compute, instance=instance)
    driver.virtapi._compute._revert_allocation(context, instance, migration)


def domain_state(connection, libvirt, name):
    """(state, reason) of the domain on this host, or None if it is gone."""
    try:
        return tuple(connection.lookupByName(name).state())
    except libvirt.libvirtError:
        return None


def adopt(driver, context, instances):
    """Take post-copy migrations out of Nova's start-up handling.

    Returns the instances Nova should go on with.
    """
    keep = []
    for instance in instances:
        migration = migration_in(context, instance,
                                 guest_job.POSTCOPY_STATUS)
        state = None
        if migration is not None:
            state = domain_state(driver._host.get_connection(),
                                 libvirt_driver.libvirt, instance.name)
        # Whatever this domain is (paused in post-copy, being shut down
        # once the job completed, "migrated", gone, post-copy failed), Nova's
        # reset is wrong for it unless it runs the guest here.
        if migration is None or domain_states.runs_here(state):
            give_back_allocations(driver, context, instance)
            keep.append(instance)
            continue
        LOG.info('live migration to %s found in post-copy at start (domain '
                 'here %s): the guest runs there; waiting for the job to end '
                 'and then completing it as Nova would have',
                 migration.dest_compute, domain_states.describe(state),
                 instance=instance)
        thread_pool_factory.spawn(finish, driver, instance, migration)
    return objects.InstanceList(context, objects=keep)


def finish(driver, instance, migration):
    context = nova_context.get_admin_context()
    libvirt = libvirt_driver.libvirt
    deadline = time.monotonic() + WAIT_MAX_S
    # Between the end of a completed job and QEMU's exit the source is
    # "being shut down" (4, 0): a poll that met it on the lab cloud gave
    # the instance up to the operator.
    while True:
        state = domain_state(driver._host.get_connection(), libvirt,
                             instance.name)
        if domain_states.outgoing_job_over(state):
            break
        if time.monotonic() > deadline:
            LOG.error('post-copy to %s still running after %d s; left to the '
                      'operator', migration.dest_compute, WAIT_MAX_S,
                      instance=instance)
            return
        time.sleep(POLL_S)
    if state == domain_states.POSTCOPY_FAILED:
        LOG.error('post-copy to %s failed while nova-compute was down; the '
                  'guest runs there and its memory is split: nothing is '
                  'destroyed. Fix the network, then %s',
                  migration.dest_compute,
                  driver._resume_command(instance, migration.dest_compute),
                  instance=instance)
        return
    if state not in (None, domain_states.MIGRATED_AWAY):
        LOG.warning('post-copy to %s: the domain here is %s %s; left to the '
                    'operator', migration.dest_compute,
                    domain_states.describe(state), state,
                    instance=instance)
        return
    # Shared storage (post-copy is never planned with block migration), so
    # Nova's clean-up keeps every file: at worst something stays behind,
    # never a disk the guest uses.
    migrate_data = objects.LibvirtLiveMigrateData(
        is_shared_instance_path=True, is_shared_block_storage=True,
        block_migration=False, migration=migration)
    bdms = objects.BlockDeviceMappingList.get_by_instance_uuid(
        context, instance.uuid)
    LOG.info('post-copy to %s ended while nova-compute was down: running '
             "Nova's post-migration", migration.dest_compute,
             instance=instance)
    driver.virtapi._compute._post_live_migration(
        context, instance, migration.dest_compute, block_migration=False,
        migrate_data=migrate_data, source_bdms=bdms)
