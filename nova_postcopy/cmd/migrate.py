# SPDX-License-Identifier: Apache-2.0
"""``nova-postcopy-migrate``: live-migrate a libvirt domain with the engine.

Pre-copy, peer to peer, with the configured switch policies asked on every
poll; the switch to post-copy when one decides; the end taken from libvirt's
events. Ctrl-C during pre-copy aborts the migration and leaves the guest
running on the source. A post-copy cut by a network failure is resumed
until ``[postcopy] recovery_deadline``; after that, ``--resume`` tries
again.
"""

import argparse
import signal
import socket
import sys
import urllib.parse

from oslo_log import log as logging

from nova_postcopy import budget
from nova_postcopy import capabilities
from nova_postcopy import clock
from nova_postcopy.cmd import interrupt
from nova_postcopy import conf as np_conf
from nova_postcopy.conf import postcopy as postcopy_opts
from nova_postcopy import domain_states
from nova_postcopy import exception
from nova_postcopy import libvirt_api
from nova_postcopy import libvirt_job
from nova_postcopy import monitor
from nova_postcopy import negotiate
from nova_postcopy import plugins
from nova_postcopy.policies import base
from nova_postcopy.policies import chain
from nova_postcopy import probe
from nova_postcopy import recovery
from nova_postcopy import report

LOG = logging.getLogger(__name__)
# DEST_URI is how the source reaches the destination's libvirt; where this
# machine reaches it the same way (the CLI usually runs on the source) it is
# asked over it. Only TCP transports, whose reachability a connect with a
# timeout settles: ssh may prompt, a unix socket is another host's.
AUTO_PROBE_PORTS = {'qemu+tcp': 16509, 'qemu+tls': 16514, 'qemu': 16514}
AUTO_PROBE_TIMEOUT_S = 3.0
NO_DEST_CHECK = (
    '. To enable recovery, give --dest-check-uri: the destination\'s '
    'libvirt as this machine reaches it (e.g. qemu+ssh://DEST/system)')


def reachable_dest_uri(dest_uri):
    """(DEST_URI if this machine reaches its libvirt, else None, why not).

    A TCP connect, with a timeout, to the port its transport uses; no
    libvirt call until that answers (an unreachable host would hold
    libvirt's connect for minutes).
    """
    parts = urllib.parse.urlsplit(dest_uri)
    port = AUTO_PROBE_PORTS.get(parts.scheme)
    if port is None or not parts.hostname:
        return None, ('DEST_URI\'s transport (%s) is not asked '
                      'automatically' % (parts.scheme or 'none'))
    try:
        with socket.create_connection((parts.hostname, parts.port or port),
                                      timeout=AUTO_PROBE_TIMEOUT_S):
            return dest_uri, ''
    except OSError as error:
        return None, 'DEST_URI is not reachable from here (%s:%d: %s)' % (
            parts.hostname, parts.port or port,
            error.strerror or type(error).__name__)


class UsageError(Exception):
    """Bad input, found before anything moved."""


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='nova-postcopy-migrate',
        description=__doc__.split('\n\n')[1])
    parser.add_argument('source_uri', metavar='SOURCE_URI',
                        help='libvirt URI of the source host')
    parser.add_argument('dest_uri', metavar='DEST_URI',
                        help='libvirt URI of the destination as the source '
                             'host reaches it, e.g. qemu+tcp://host/system')
    parser.add_argument('domain', metavar='DOMAIN')
    parser.add_argument('--policy', action='append', metavar='NAME',
                        help='switch policy, repeatable, in order (default: '
                             '[postcopy] switch_policies)')
    parser.add_argument('--postcopy-mode', default='allowed',
                        choices=negotiate.MODES,
                        help='what this instance wants: required fails '
                             'before anything moves when post-copy cannot '
                             'be had (default: allowed)')
    parser.add_argument('--no-postcopy', action='store_true',
                        help='pre-copy only (--postcopy-mode forbidden)')
    parser.add_argument('--dest-check-uri', metavar='URI',
                        help="the destination's libvirt as this machine "
                             "reaches it, to check before migrating that it "
                             "can take post-copy (an incoming QEMU is asked) "
                             "and to enable recovery (default: DEST_URI, "
                             "versions only, when its qemu+tcp or qemu+tls "
                             "port answers from here)")
    parser.add_argument('--permit-auto-converge', action='store_true',
                        help='when the migration runs without post-copy, '
                             'let QEMU throttle the guest so that pre-copy '
                             'converges (as Nova\'s [libvirt] '
                             'live_migration_permit_auto_converge)')
    parser.add_argument('--bandwidth-mibs', default=0,
                        type=_option_value('postcopy_bandwidth_mibs'),
                        help='cap the pre-copy bandwidth, MiB/s (0: no cap)')
    parser.add_argument('--max-downtime-ms',
                        type=_option_value('max_downtime_ms'),
                        help='downtime target (default: [postcopy] '
                             'max_downtime_ms)')
    parser.add_argument('--migrate-uri',
                        help='QEMU migration stream URI (default: tcp:// '
                             'and the host of DEST_URI)')
    parser.add_argument('--tls', action='store_true',
                        help="encrypt the migration stream with QEMU's "
                             "native TLS (VIR_MIGRATE_TLS; as Nova's "
                             "[libvirt] live_migration_with_native_tls): "
                             "both hosts need libvirt's migration "
                             "certificates; a resume uses it too")
    parser.add_argument('--report', metavar='FILE',
                        help='write a JSON report with every sample')
    parser.add_argument('--plot', metavar='FILE',
                        help='write a PNG of remaining data over time')
    parser.add_argument('--config-file', action='append', default=[],
                        help='nova.conf with a [postcopy] section')
    parser.add_argument('--quiet', action='store_true',
                        help='no progress lines')
    parser.add_argument('--no-recovery', action='store_true',
                        help='do not resume a post-copy cut by a network '
                             'failure; only report it')
    parser.add_argument('--resume', action='store_true',
                        help='resume a post-copy migration of DOMAIN that '
                             'failed and was left paused on the source, '
                             'with the arguments of the migration')
    args = parser.parse_args(argv)
    args.argv = list(argv)
    return args


def _option_value(option):
    """An argparse type with the range of ``[postcopy] option``."""
    check = postcopy_opts.option_type(option)

    def parse(text):
        try:
            return check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = option
    return parse


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.register_options(np_conf.CONF)
    config = []
    for path in args.config_file:
        config += ['--config-file', path]
    np_conf.CONF(config, project='nova', default_config_files=[])
    logging.setup(np_conf.CONF, 'nova-postcopy-migrate')
    try:
        conf = np_conf.load()
        setup = prepare(args, conf)
    except (UsageError, exception.NovaPostcopyError) as error:
        print('nova-postcopy-migrate: %s' % error, file=sys.stderr)
        return 2
    return run(args, conf, setup)


def prepare(args, conf):
    """Check everything that can be checked before memory moves."""
    for policy in args.policy or []:
        plugins.policy_class(policy)
    lv = libvirt_api.import_libvirt()
    libvirt_api.EventLoop.ensure()
    try:
        connection = lv.open(args.source_uri)
    except lv.libvirtError as error:
        raise UsageError('cannot connect to the source %s: %s'
                         % (args.source_uri, error.get_error_message()))
    try:
        domain = connection.lookupByName(args.domain)
    except lv.libvirtError:
        names = sorted(d.name() for d in connection.listAllDomains())
        raise UsageError('no domain %r on %s; domains there: %s'
                         % (args.domain, args.source_uri,
                            ', '.join(names) or 'none'))
    state = tuple(domain.state())
    failed = domain_states.POSTCOPY_FAILED
    if args.resume and state != failed:
        raise UsageError('domain %r is not a failed post-copy migration '
                         '(it is %s, expected paused (post-copy failed)); '
                         'nothing to resume'
                         % (args.domain, domain_states.describe(state)))
    if not args.resume and domain.jobInfo()[0] != lv.VIR_DOMAIN_JOB_NONE:
        raise UsageError('domain %r already has a job running (another '
                         'migration?); wait for it or abort it first'
                         % args.domain)
    if not args.resume and state[0] != domain_states.RUNNING:
        raise UsageError('domain %r is not running (it is %s)%s'
                         % (args.domain, domain_states.describe(state),
                            '; to resume a failed post-copy, add --resume'
                            if state == failed else ''))
    host = urllib.parse.urlsplit(args.dest_uri).hostname
    migrate_uri = args.migrate_uri or ('tcp://%s' % host if host else None)
    if not migrate_uri:
        raise UsageError('cannot tell the migration stream address from %s;'
                         ' give --migrate-uri' % args.dest_uri)
    mode = 'forbidden' if args.no_postcopy else args.postcopy_mode
    check_uri, trial, dest_unasked = args.dest_check_uri, True, ''
    if not check_uri and not args.resume and mode != 'forbidden':
        check_uri, dest_unasked = reachable_dest_uri(args.dest_uri)
        # Versions are what recovery needs; a trial QEMU there is asked
        # only when the operator named the destination to check.
        trial = False
        if check_uri:
            LOG.info('%s: asking the destination over %s (this machine '
                     'reaches it; --dest-check-uri to ask elsewhere)',
                     args.domain, check_uri)
    # One connection checks the destination and then serves recovery.
    dest_connection = None
    if check_uri:
        try:
            dest_connection = lv.open(check_uri)
        except lv.libvirtError as error:
            raise UsageError('cannot connect to the destination %s: %s' % (
                check_uri, error.get_error_message()))
    if args.resume:
        plan = negotiate.Plan(True, True, False,
                              conf.postcopy_bandwidth_mibs, (
                                  'resuming a failed post-copy migration',))
    else:
        plan = negotiate.negotiate(
            capabilities.judge(probe.host_facts(connection, local=False,
                                                trial=False)),
            destination_report(dest_connection, trial),
            probe.instance_facts(domain.XMLDesc(0), name=args.domain,
                                 mode=mode),
            bandwidth_mibs=conf.postcopy_bandwidth_mibs)
    LOG.info('%s: plan: %s', args.domain, plan.summary())
    params = {lv.VIR_MIGRATE_PARAM_URI: migrate_uri}
    if args.bandwidth_mibs:
        params[lv.VIR_MIGRATE_PARAM_BANDWIDTH] = args.bandwidth_mibs
    ram_mib = domain.info()[1] / 1024.0
    if args.policy:
        np_conf.CONF.set_override('switch_policies', args.policy,
                                  'postcopy')
    setup = Setup(connection=connection, domain=domain, name=args.domain,
                  connect=lambda: lv.open(args.source_uri),
                  dest_connection=dest_connection, dest_unasked=dest_unasked,
                  argv=args.argv,
                  dest_uri=args.dest_uri, params=params, plan=plan, mode=mode,
                  auto_converge=args.permit_auto_converge, tls=args.tls,
                  budget_s=budget.precopy_budget_s(
                      budget.migration_data_gib(ram_mib),
                      conf.precopy_timeout_per_gib, conf.precopy_timeout_max),
                  max_downtime_ms=args.max_downtime_ms or conf.max_downtime_ms)
    LOG.info('%s: migrating to %s over %s%s, policies [%s], budget %.0f s, '
             'downtime target %d ms', args.domain, args.dest_uri, migrate_uri,
             ' (TLS)' if args.tls else '',
             ', '.join(conf.switch_policies), setup.budget_s,
             setup.max_downtime_ms)
    return setup


def destination_report(connection, trial=True):
    """The destination's report; all unknown when it cannot be asked."""
    if connection is None:
        return capabilities.judge(capabilities.HostFacts(
            hostname='(not checked)'))
    return capabilities.judge(probe.host_facts(connection, local=False,
                                               trial=trial))


class Setup(object):
    """Everything checked before anything moved, for one or two tries."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def job(self, postcopy):
        lv = libvirt_api.import_libvirt()
        flags = lv.VIR_MIGRATE_LIVE | lv.VIR_MIGRATE_PEER2PEER
        if self.tls:
            flags |= lv.VIR_MIGRATE_TLS
        flags, params = negotiate.call_flags(
            lv, flags, self.params, postcopy, self.plan.bandwidth_mibs,
            self.auto_converge)
        return libvirt_job.LibvirtJob(self.connection, self.domain,
                                      self.dest_uri, params, flags,
                                      dest_connection=self.dest_connection,
                                      connect=self.connect)

    def resume_command(self):
        argv = [a for a in self.argv if a not in ('--resume', '--quiet')]
        return 'nova-postcopy-migrate --resume %s' % ' '.join(argv)

    def recovery(self, conf, no_recovery):
        """(factory of the recovery for this migration or None, why not)."""
        why_not = ('disabled by --no-recovery' if no_recovery
                   else recovery.unavailable(conf, self.plan))
        if why_not:
            return None, why_not
        return (lambda job: recovery.from_conf(
            job, conf, clock.WallClock(), self.name,
            'restore the link, then run: %s' % self.resume_command())), ''

    def context(self, postcopy):
        return base.MigrationContext(budget_s=self.budget_s,
                                     max_downtime_ms=self.max_downtime_ms,
                                     postcopy_allowed=postcopy)


def run(args, conf, setup):
    # A service manager's stop is an interrupt too: abort, do not orphan
    # the job.
    signal.signal(signal.SIGTERM, interrupt.terminate)
    name = setup.name
    current = {}
    signal.signal(signal.SIGINT, lambda signum, frame: interrupt.ctrl_c(
        current.get('job'), setup))
    if args.resume:
        return resume(conf, setup)
    postcopy = setup.plan.postcopy
    recover, why_not = setup.recovery(conf, args.no_recovery)
    if postcopy and recover is None:
        hint = ''
        if not (setup.dest_connection or args.no_recovery):
            hint = NO_DEST_CHECK
            if setup.dest_unasked:
                hint = '; %s%s' % (setup.dest_unasked, hint)
        LOG.info('%s: a post-copy cut by a network failure will not be '
                 'resumed: %s%s', name, why_not, hint)
    while True:
        display = report.Display(quiet=args.quiet)
        rules = chain.PolicyChain.from_conf(conf)
        context = setup.context(postcopy)
        job = current['job'] = setup.job(postcopy)
        watcher = monitor.MigrationMonitor(
            rules, context, clock.WallClock(),
            poll_interval=conf.poll_interval, on_poll=display.update,
            record_samples=True, name=name, recovery=recover)
        try:
            job.start()
            outcome = watcher.run(job)
        except KeyboardInterrupt:
            display.finish()
            if job.in_postcopy():
                print(interrupt.LEFT_IN_POSTCOPY % setup.resume_command(),
                      file=sys.stderr)
            else:
                print('interrupted: aborting the migration; the guest stays '
                      'on the source', file=sys.stderr)
                interrupt.abort_until_ended(job, setup.resume_command())
            job.close()
            return 130
        display.finish()
        job.close()
        if not (postcopy and refused_postcopy_before_moving(outcome,
                                                            setup.mode)):
            break
        LOG.info('%s: the destination refused post-copy before any memory '
                 'moved (%s); retrying once as pre-copy', name,
                 outcome.end_reason)
        postcopy = False
    print(report.summary(outcome, name))
    if args.report:
        report.write_json(args.report, report.build(
            outcome, job.completed_stats(),
            {'domain': name, 'source_uri': args.source_uri,
             'dest_uri': args.dest_uri, 'policies': rules.names,
             'budget_s': context.budget_s, 'plan': setup.plan.summary(),
             'postcopy_used': postcopy,
             'dirty_rate_probe': job.probe,
             'error': str(job.error) if job.error else None}))
    if args.plot:
        report.plot(args.plot, outcome, '%s: %s%s' % (
            name, outcome.result, (' (switched at %.1f s by %s)' % (
                outcome.switch_at_s, outcome.switch_policy))
            if outcome.switch_at_s is not None else ''))
    return 0 if outcome.result in ('converged', 'postcopy') else 1


def resume(conf, setup):
    """Resume a failed post-copy left paused (after the deadline)."""
    job = setup.job(True)
    job.attach()
    result = recovery.from_conf(
        job, conf, clock.WallClock(), setup.name,
        'restore the link, then run again: %s' % setup.resume_command(),
        deadline_s=conf.recovery_deadline or 600).run()
    job.close()
    print('%s: %s after %.1f s, %d resume attempt(s)' % (
        setup.name, result.result, result.took_s, len(result.attempts)))
    if not result.succeeded:
        print('  %s\n  next: %s' % (result.hosts, result.next_step))
    return 0 if result.succeeded else 1


def refused_postcopy_before_moving(outcome, mode):
    """Whether the destination's QEMU refused post-copy at Prepare.

    That is its answer when it has no userfaultfd; nothing moved yet, so
    pre-copy can start clean (unless the instance requires post-copy).
    """
    return (outcome.result == 'failed' and not outcome.bytes_sent
            and negotiate.retry_as_precopy(outcome.end_reason, mode))


if __name__ == '__main__':
    sys.exit(main())
