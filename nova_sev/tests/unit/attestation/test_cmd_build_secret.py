"""``nova-sev build-secret``: the header and payload it writes, and when
it refuses to write them.
"""

import os
import stat
import uuid

import testtools

from nova_sev.attestation import measurement
from nova_sev.attestation import secret
from nova_sev.cmd import common
from nova_sev.tests.unit.attestation import cli
from nova_sev.tests.unit.attestation import vectors

GUID_A = '11111111-2222-3333-4444-555555555555'


class TestBuildSecret(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.files = self.useFixture(cli.OwnerFiles())
        self.out = ['--header-out', self.files.path('header'),
                    '--payload-out', self.files.path('payload')]

    def build(self, *args):
        return cli.run(self, ['build-secret'] + list(args) + self.out)

    def read_secret(self):
        with open(self.files.path('header')) as f:
            header = f.read()
        with open(self.files.path('payload')) as f:
            payload = f.read()
        return secret.LaunchSecret(secret.decode_b64(header, 'header'),
                                   secret.decode_b64(payload, 'payload'))

    def assertSecretHolds(self, entries, measured):
        built = self.read_secret()
        mac = measurement.parse_measurement(measured)[0]
        self.assertTrue(secret.header_mac_matches(vectors.TIK, mac, built))
        self.assertEqual(entries, secret.parse_secret_table(
            secret.decrypt_payload(vectors.TEK, built)))

    def test_builds_for_a_verified_measurement(self):
        self.files.write('key', b'opaque key')
        result = self.build(*cli.report_args() + [
            '--firmware', self.files.path('firmware'),
            '--tik', self.files.path('tik'), '--tek', self.files.path('tek'),
            '--secret', '%s=%s' % (GUID_A, self.files.path('key')),
            '--luks-key', self.files.path('luks')])
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        self.assertIn('measurement verified', result.out)
        self.assertIn('2 secret(s)', result.out)
        self.assertSecretHolds([(uuid.UUID(GUID_A), b'opaque key'),
                                (secret.LUKS_KEY_GUID, b'passphrase')],
                               vectors.MEASUREMENT_FIRMWARE)
        for name in ('header', 'payload'):
            mode = os.stat(self.files.path(name)).st_mode
            self.assertEqual(0o600, stat.S_IMODE(mode))

    def test_fresh_iv_each_time(self):
        args = cli.report_args() + [
            '--firmware', self.files.path('firmware'),
            '--tk', self.files.path('tk'),
            '--luks-key', self.files.path('luks')]
        self.assertEqual(common.EXIT_OK, self.build(*args).code)
        first = self.read_secret()
        self.assertEqual(common.EXIT_OK, self.build(*args).code)
        second = self.read_secret()
        self.assertNotEqual(first.header[4:20], second.header[4:20])
        self.assertNotEqual(first.payload, second.payload)

    def test_refuses_a_measurement_that_does_not_verify(self):
        result = self.build(*cli.report_args(vectors.MEASUREMENT_KERNEL) + [
            '--firmware', self.files.path('firmware'),
            '--tk', self.files.path('tk'),
            '--luks-key', self.files.path('luks')])
        self.assertEqual(common.EXIT_REFUSED, result.code)
        self.assertIn('does NOT match firmware', result.err)
        self.assertFalse(os.path.exists(self.files.path('header')))
        self.assertFalse(os.path.exists(self.files.path('payload')))

    def test_skip_verify_needs_only_the_measurement(self):
        result = self.build('--measurement', vectors.MEASUREMENT_KERNEL,
                            '--skip-verify', '--tk', self.files.path('tk'),
                            '--secret', 'luks-key=%s'
                            % self.files.path('luks'))
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        self.assertIn('NOT verified (--skip-verify)', result.out)
        self.assertSecretHolds([(secret.LUKS_KEY_GUID, b'passphrase')],
                               vectors.MEASUREMENT_KERNEL)

    def test_bad_input(self):
        luks = self.files.path('luks')
        base = ['--measurement', vectors.MEASUREMENT_FIRMWARE,
                '--skip-verify']
        tk = ['--tk', self.files.path('tk')]
        cases = [
            (base + tk + ['--secret', luks], 'must be GUID=FILE'),
            (base + tk + ['--secret', 'disk=%s' % luks], "'disk' is neither"),
            (base + tk + ['--secret', 'luks-key=%s' % luks,
                          '--luks-key', luks], 'given twice'),
            (base + tk, 'no secret to send'),
            (base + tk + ['--luks-key', '/nonexistent'], 'cannot read'),
            (base + ['--tik', self.files.path('tik'), '--luks-key', luks],
             '--tik FILE and --tek FILE'),
            (['--skip-verify'] + tk + ['--luks-key', luks],
             'missing --measurement'),
        ]
        for args, text in cases:
            result = self.build(*args)
            self.assertEqual(common.EXIT_ERROR, result.code, args)
            self.assertIn(text, result.err)
        self.assertFalse(os.path.exists(self.files.path('header')))
