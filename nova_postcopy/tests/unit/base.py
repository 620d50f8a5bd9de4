# SPDX-License-Identifier: Apache-2.0
import io

import fixtures
from oslo_config import fixture as config_fixture
import testtools

from nova_postcopy import conf as np_conf
from nova_postcopy import progress

GIB = 1024 ** 3
MIB = 1024 ** 2


class TestCase(testtools.TestCase):
    def setUp(self):
        super().setUp()
        self.config_fixture = self.useFixture(
            config_fixture.Config(np_conf.CONF))
        np_conf.CONF([], default_config_files=[])
        self.log = self.useFixture(fixtures.FakeLogger(name='nova_postcopy',
                                                       level=20))

    def flags(self, **overrides):
        self.config_fixture.config(group='postcopy', **overrides)

    @property
    def conf(self):
        return np_conf.load()

    def run_main(self, main, *argv):
        """(exit status, stdout, stderr) of a console script's ``main``."""
        out = self.useFixture(fixtures.MonkeyPatch(
            'sys.stdout', io.StringIO())).new_value
        err = self.useFixture(fixtures.MonkeyPatch(
            'sys.stderr', io.StringIO())).new_value
        try:
            code = main(list(argv))
        except SystemExit as exit_:
            code = exit_.code
        return code, out.getvalue(), err.getvalue()

    def load_config(self, text):
        """Load ``[postcopy]`` options from a nova.conf written as text."""
        path = self.useFixture(fixtures.TempDir()).join('nova.conf')
        with open(path, 'w') as handle:
            handle.write('[postcopy]\n' + text + '\n')
        np_conf.CONF(['--config-file', path], default_config_files=[])
        return np_conf.load()


def stats(t, remaining, processed, iteration=1, total=16 * GIB,
          dirty_rate=0, normal_bytes=None, constant=0, **extra):
    """A libvirt jobStats dict with the fields the tracker reads."""
    data = {
        'time_elapsed': int(t * 1000),
        'data_total': total, 'data_processed': int(processed),
        'data_remaining': int(remaining), 'memory_total': total,
        'memory_processed': int(processed),
        'memory_remaining': int(remaining),
        'memory_iteration': iteration,
        'memory_dirty_rate': dirty_rate, 'memory_page_size': 4096,
        'memory_normal_bytes': int(processed if normal_bytes is None
                                   else normal_bytes),
        'memory_constant': constant,
    }
    data.update(extra)
    return data


def feed(tracker, *stats_dicts):
    for item in stats_dicts:
        tracker.update(progress.Sample.from_job_stats(item))
    return tracker


def pass_stream(bandwidth, starts, probe_mibs=None):
    """Stats polled mid-pass and at each boundary of passes.

    Pass i begins with ``starts[i]`` bytes, sent at ``bandwidth`` bytes/s.
    """
    t, processed, iteration = 0.0, 0.0, 1
    extra = ({} if probe_mibs is None
             else {'dirtyrate.megabytes_per_second': probe_mibs})
    total = starts[0]
    out = [stats(t, starts[0], processed, iteration, total=total, **extra)]
    for begins, following in zip(starts, starts[1:]):
        duration = begins / bandwidth
        out.append(stats(t + duration / 2, begins / 2,
                         processed + begins / 2, iteration, total=total,
                         **extra))
        t += duration
        processed += begins
        iteration += 1
        out.append(stats(t, following, processed, iteration, total=total,
                         **extra))
    return out
