# SPDX-License-Identifier: Apache-2.0
"""tempest.conf options of nova-postcopy's tempest test."""

from oslo_config import cfg

group = cfg.OptGroup(name='nova_postcopy',
                     title='nova-postcopy live-migration test')

opts = [
    cfg.StrOpt('image_ref',
               help="""
Image of the server the test migrates. Empty: ``[compute] image_ref``.
Any guest works when the hosts cap the migration's bandwidth so that the
test can catch it in pre-copy and in post-copy; a guest that keeps writing
memory makes the post-copy carry what it rewrote.

Related options:

* ``[compute] image_ref``
* ``heartbeat_regex``
"""),
    cfg.StrOpt('flavor_ref',
               help="Flavor of that server. Empty: ``[compute] flavor_ref``."),
    cfg.StrOpt('heartbeat_regex',
               help="""
A regular expression with one group, an integer the guest prints on its
console and keeps increasing (``DIRTIER seq=(\\d+)`` for the lab's
guest). When set, the test waits after the migration for a value above
the last one printed before it: the guest runs on the destination, not
only its domain. Empty: the console is only searched for
``console_failure_regex``.

Related options:

* ``console_failure_regex``
"""),
    cfg.StrOpt('console_failure_regex',
               default=(r'Kernel panic|BUG: |Oops: |general protection fault'
                        r'|errors=[1-9]'),
               help="""
A regular expression that must not appear on the console after the
migration: a kernel panic or oops, or the lab guest's memory check
failing (``errors=N``).

Related options:

* ``heartbeat_regex``
"""),
    cfg.IntOpt('migration_timeout', default=300, min=10,
               help='Seconds the migration may take from its request to '
               'its end.'),
]


def register_opts(conf):
    conf.register_group(group)
    conf.register_opts(opts, group=group)
