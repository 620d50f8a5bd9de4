# SPDX-License-Identifier: Apache-2.0
"""``nova-postcopy-migrate``: live-migrate a libvirt domain with the engine.

Pre-copy, peer to peer, with the configured switch policies asked on every
poll; the switch to post-copy when one decides; the end taken from libvirt's
events. Ctrl-C during pre-copy aborts the migration and leaves the guest
running on the source.
"""

import argparse
import signal
import sys
import urllib.parse

from oslo_log import log as logging

from nova_postcopy import budget
from nova_postcopy import clock
from nova_postcopy import conf as np_conf
from nova_postcopy import exception
from nova_postcopy import libvirt_job
from nova_postcopy import monitor
from nova_postcopy import plugins
from nova_postcopy.policies import base
from nova_postcopy.policies import chain
from nova_postcopy import report

LOG = logging.getLogger(__name__)


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
    parser.add_argument('--no-postcopy', action='store_true',
                        help='pre-copy only; the budget ends it')
    parser.add_argument('--bandwidth-mibs', type=int, default=0,
                        help='cap the pre-copy bandwidth, MiB/s')
    parser.add_argument('--max-downtime-ms', type=int,
                        help='downtime target (default: [postcopy] '
                             'max_downtime_ms)')
    parser.add_argument('--migrate-uri',
                        help='QEMU migration stream URI (default: tcp:// '
                             'and the host of DEST_URI)')
    parser.add_argument('--report', metavar='FILE',
                        help='write a JSON report with every sample')
    parser.add_argument('--plot', metavar='FILE',
                        help='write a PNG of remaining data over time')
    parser.add_argument('--config-file', action='append', default=[],
                        help='nova.conf with a [postcopy] section')
    parser.add_argument('--quiet', action='store_true',
                        help='no progress lines')
    return parser.parse_args(argv)


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
        job, context, rules, name = prepare(args, conf)
    except (UsageError, exception.NovaPostcopyError) as error:
        print('nova-postcopy-migrate: %s' % error, file=sys.stderr)
        return 2
    return run(args, conf, job, context, rules, name)


def prepare(args, conf):
    """Check everything that can be checked before memory moves."""
    for policy in args.policy or []:
        if policy not in plugins.available_policies():
            raise UsageError('unknown switch policy %r; available: %s'
                             % (policy,
                                ', '.join(plugins.available_policies())))
    lv = libvirt_job.import_libvirt()
    libvirt_job.EventLoop.ensure()
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
    if domain.jobInfo()[0] != lv.VIR_DOMAIN_JOB_NONE:
        raise UsageError('domain %r already has a job running (another '
                         'migration?); wait for it or abort it first'
                         % args.domain)
    if domain.state()[0] != lv.VIR_DOMAIN_RUNNING:
        raise UsageError('domain %r is not running (state %s)'
                         % (args.domain, domain.state()))
    host = urllib.parse.urlsplit(args.dest_uri).hostname
    migrate_uri = args.migrate_uri or ('tcp://%s' % host if host else None)
    if not migrate_uri:
        raise UsageError('cannot tell the migration stream address from %s;'
                         ' give --migrate-uri' % args.dest_uri)
    postcopy = not args.no_postcopy
    flags = lv.VIR_MIGRATE_LIVE | lv.VIR_MIGRATE_PEER2PEER
    params = {lv.VIR_MIGRATE_PARAM_URI: migrate_uri}
    if postcopy:
        flags |= lv.VIR_MIGRATE_POSTCOPY
        if conf.postcopy_bandwidth_mibs:
            params[lv.VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY] = (
                conf.postcopy_bandwidth_mibs)
    if args.bandwidth_mibs:
        params[lv.VIR_MIGRATE_PARAM_BANDWIDTH] = args.bandwidth_mibs
    ram_mib = domain.info()[1] / 1024.0
    context = base.MigrationContext(
        budget_s=budget.precopy_budget_s(
            budget.migration_data_gib(ram_mib),
            conf.precopy_timeout_per_gib, conf.precopy_timeout_max),
        max_downtime_ms=args.max_downtime_ms or conf.max_downtime_ms,
        postcopy_allowed=postcopy)
    if args.policy:
        np_conf.CONF.set_override('switch_policies', args.policy,
                                  'postcopy')
    rules = chain.PolicyChain.from_conf(conf)
    job = libvirt_job.LibvirtJob(connection, domain, args.dest_uri, params,
                                 flags)
    LOG.info('%s: migrating to %s over %s, post-copy %s, policies [%s], '
             'budget %.0f s, downtime target %d ms', args.domain,
             args.dest_uri, migrate_uri,
             'allowed' if postcopy else 'not allowed', ', '.join(rules.names),
             context.budget_s, context.max_downtime_ms)
    return job, context, rules, args.domain


def run(args, conf, job, context, rules, name):
    # A service manager's stop is an interrupt too: abort, do not orphan
    # the job.
    signal.signal(signal.SIGTERM, _interrupt)
    display = _Display(quiet=args.quiet)
    watcher = monitor.MigrationMonitor(
        rules, context, clock.WallClock(), poll_interval=conf.poll_interval,
        on_poll=display.update, record_samples=True, name=name)
    job.start()
    try:
        outcome = watcher.run(job)
    except KeyboardInterrupt:
        display.finish()
        print('interrupted: aborting the migration; the guest stays on the '
              'source', file=sys.stderr)
        try:
            job.abort()
        except Exception as error:  # noqa: H201 - any failure is reported
            print('abort failed: %s' % error, file=sys.stderr)
        job.wait(60)
        job.close()
        return 130
    display.finish()
    job.close()
    tracker = display.tracker
    print(summary(outcome, name))
    if args.report:
        report.write_json(args.report, report.build(
            outcome, tracker, job.completed_stats(),
            {'domain': name, 'source_uri': args.source_uri,
             'dest_uri': args.dest_uri, 'policies': rules.names,
             'budget_s': context.budget_s,
             'dirty_rate_probe': job.probe,
             'error': str(job.error) if job.error else None}))
    if args.plot and tracker is not None:
        report.plot(args.plot, outcome, tracker, '%s: %s%s' % (
            name, outcome.result, (' (switched at %.1f s by %s)' % (
                outcome.switch_at_s, outcome.switch_policy))
            if outcome.switch_at_s is not None else ''))
    return 0 if outcome.result in ('converged', 'postcopy') else 1


def _interrupt(signum, frame):
    raise KeyboardInterrupt()


def summary(outcome, name):
    lines = ['%s: %s in %.1f s' % (name, outcome.result, outcome.total_s)]
    if outcome.switch_at_s is not None:
        lines.append('  switched to post-copy at %.1f s by %s: %s' % (
            outcome.switch_at_s, outcome.switch_policy,
            outcome.switch_reason))
        lines.append('  post-copy took %.1f s, %d page requests' % (
            outcome.postcopy_s, outcome.postcopy_requests))
    if outcome.end_reason:
        lines.append('  %s' % outcome.end_reason)
    downtime = ('%.0f ms' % outcome.downtime_ms
                if outcome.downtime_ms is not None else 'not reported')
    lines.append('  downtime %s, %d passes, %.0f MiB sent' % (
        downtime, outcome.passes, outcome.bytes_sent / 1024 ** 2))
    return '\n'.join(lines)


class _Display:
    """A progress bar on a terminal, a line every few seconds in a log."""

    def __init__(self, quiet=False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = -1e9
        self.tracker = None

    def update(self, tracker, decision):
        self.tracker = tracker
        if self.quiet or tracker.sample is None:
            return
        line = report.progress_line(tracker, decision)
        if self.tty:
            sample = tracker.sample
            done = 1 - sample.data_remaining / max(sample.data_total, 1)
            bar = '#' * int(20 * done)
            sys.stderr.write('\r[%-20s] %s' % (bar, line[:110]))
            sys.stderr.flush()
        elif tracker.elapsed_s - self.last >= 2.0:
            self.last = tracker.elapsed_s
            print(line, file=sys.stderr)

    def finish(self):
        if self.tty and not self.quiet:
            sys.stderr.write('\n')


if __name__ == '__main__':
    sys.exit(main())
