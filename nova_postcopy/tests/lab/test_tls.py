# SPDX-License-Identifier: Apache-2.0
"""Migrations over QEMU's native TLS (``--tls``, VIR_MIGRATE_TLS).

The lab gives each host a certificate from a CA of its own
(``tools/lab/lab``: ``migrate_tls_x509_cert_dir``, client certificates
verified). Without the destination's certificate the same migration fails
before anything moves: the stream really is TLS.
"""

import os

from nova_postcopy.tests.lab import base

LAB = os.environ.get('NOVA_POSTCOPY_LAB', '/var/tmp/nova-postcopy-lab')
SERVER_CERT = os.path.join(LAB, 'hosts', 'B', 'etc', 'pki',
                           'server-cert.pem')


class TestTLS(base.LabTestCase):

    def test_busy_guest_switched_to_postcopy_over_tls(self):
        name = self.busy_guest()
        code, report, output = self.migrate(name, '--tls')
        self.assertEqual(0, code, output)
        self.assertIn('(TLS)', output)
        self.assertEqual('postcopy', report['result'])
        self.assertTrue(report['switched'])
        self.assertHealthyOn('B', name)

    def test_without_the_destinations_certificate_nothing_moves(self):
        os.rename(SERVER_CERT, SERVER_CERT + '.away')
        self.addCleanup(os.rename, SERVER_CERT + '.away', SERVER_CERT)
        name = self.quiet_guest()
        code, report, output = self.migrate(name, '--tls')
        self.assertNotEqual(0, code, output)
        self.assertIn('server-cert.pem', output)
        self.assertIn('server-cert.pem', report['end_reason'])
        self.assertEqual(0, report['bytes_sent'])
        self.assertHealthyOn('A', name)
