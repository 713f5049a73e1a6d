"""``nova-sev verify-measurement``: verdicts, inputs, exit codes."""

import json

import testtools

from nova_sev.cmd import common
from nova_sev.tests.unit.attestation import cli
from nova_sev.tests.unit.attestation import vectors


class TestVerifyMeasurement(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.files = self.useFixture(cli.OwnerFiles())

    def verify(self, *args):
        return cli.run(self, ['verify-measurement'] + list(args))

    def firmware(self):
        return ['--firmware', self.files.path('firmware')]

    def test_match(self):
        result = self.verify(*cli.report_args() + self.firmware() +
                             ['--tk', self.files.path('tk')])
        self.assertEqual(common.EXIT_OK, result.code)
        self.assertEqual(1, len(result.out.splitlines()))
        self.assertTrue(result.out.startswith('Measurement OK: firmware '))
        self.assertIn('policy 0x0033 (NODBG,NOKS,DOMAIN,SEV), SEV API 1.51 '
                      'build 3', result.out)
        self.assertEqual('', result.err)

    def test_separate_tik(self):
        result = self.verify(*cli.report_args() + self.firmware() +
                             ['--tik', self.files.path('tik')])
        self.assertEqual(common.EXIT_OK, result.code)

    def test_kernel_hashes(self):
        kernel = ['--kernel', self.files.path('kernel'),
                  '--initrd', self.files.path('initrd'),
                  '--cmdline', vectors.CMDLINE]
        base = (cli.report_args(vectors.MEASUREMENT_KERNEL) +
                self.firmware() + ['--tk', self.files.path('tk')])
        result = self.verify(*base + kernel)
        self.assertEqual(common.EXIT_OK, result.code)
        self.assertIn("cmdline 'console=ttyS0'", result.out)
        # The same launch without its command line does not match.
        result = self.verify(*base + kernel[:4])
        self.assertEqual(common.EXIT_REFUSED, result.code)
        self.assertIn("cmdline ''", result.out)

    def test_sev_es(self):
        base = (cli.report_args(vectors.MEASUREMENT_SEV_ES_2CPU,
                                vectors.POLICY_SEV_ES) +
                self.firmware() + ['--tk', self.files.path('tk')])
        vmsa = ['--num-cpus', '2', '--vmsa-cpu0', self.files.path('vmsa0'),
                '--vmsa-cpu1', self.files.path('vmsa1')]
        result = self.verify(*base + vmsa)
        self.assertEqual(common.EXIT_OK, result.code)
        self.assertIn('2 VMSA pages', result.out)
        result = self.verify(*base)
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('--num-cpus and --vmsa-cpu0', result.err)
        result = self.verify(*base + vmsa[:4])
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('--vmsa-cpu1', result.err)

    def test_vmsa_without_es_policy_does_not_match(self):
        # A host that drops the ES bit gets "does not match", never
        # "bad input": the guest owner must see the launch is not theirs.
        result = self.verify(*cli.report_args(vectors.MEASUREMENT_SEV_ES_2CPU,
                                              vectors.POLICY_SEV) +
                             self.firmware() +
                             ['--tk', self.files.path('tk'),
                              '--num-cpus', '2',
                              '--vmsa-cpu0', self.files.path('vmsa0')])
        self.assertEqual(common.EXIT_REFUSED, result.code)
        self.assertIn('--num-cpus/--vmsa-cpu0 not measured (policy has no '
                      'ES bit)', result.out)

    def test_mismatch_names_inputs(self):
        result = self.verify(*cli.report_args(vectors.MEASUREMENT_KERNEL) +
                             self.firmware() + ['--tk', self.files.path('tk')])
        self.assertEqual(common.EXIT_REFUSED, result.code)
        self.assertEqual(1, len(result.out.splitlines()))
        self.assertIn('Measurement does NOT match: firmware %s'
                      % self.files.path('firmware'), result.out)
        self.assertIn('Do not trust this guest', result.out)

    def test_wrong_key_or_numbers_do_not_match(self):
        self.files.write('tk2', vectors.TIK + vectors.TEK)
        for args in (['--tk', self.files.path('tk2')],
                     ['--tik', self.files.path('tek')]):
            result = self.verify(*cli.report_args() + self.firmware() + args)
            self.assertEqual(common.EXIT_REFUSED, result.code)
        for option, value in (('--api-major', '2'), ('--api-minor', '50'),
                              ('--build-id', '4'), ('--policy', '0x31')):
            args = cli.report_args()
            args[args.index(option) + 1] = value
            result = self.verify(*args + self.firmware() +
                                 ['--tk', self.files.path('tk')])
            self.assertEqual(common.EXIT_REFUSED, result.code, option)

    def test_launch_digest(self):
        result = self.verify(*cli.report_args() + [
            '--launch-digest', vectors.DIGEST_FIRMWARE,
            '--tk', self.files.path('tk')])
        self.assertEqual(common.EXIT_OK, result.code)
        self.assertIn('launch digest %s' % vectors.DIGEST_FIRMWARE,
                      result.out)
        result = self.verify(*cli.report_args() + [
            '--launch-digest', vectors.DIGEST_FIRMWARE,
            '--kernel', self.files.path('kernel'),
            '--tk', self.files.path('tk')])
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('--launch-digest already covers --kernel', result.err)

    def test_expect_policy(self):
        base = cli.report_args() + self.firmware() + [
            '--tk', self.files.path('tk')]
        result = self.verify(*base + ['--expect-policy', '51'])
        self.assertEqual(common.EXIT_OK, result.code)
        result = self.verify(*base + ['--expect-policy', '0x37'])
        self.assertEqual(common.EXIT_REFUSED, result.code)
        self.assertIn('not the expected 0x0037', result.out)

    def test_server_json(self):
        properties = {'sev_measurement': vectors.MEASUREMENT_FIRMWARE,
                      'sev_api_major': '1', 'sev_api_minor': '51',
                      'sev_build_id': '3', 'sev_policy': '0x33'}
        server = self.files.write('server.json', json.dumps(
            {'id': 'abc', 'name': 'vm', 'properties': properties}))
        base = ['--server-json', server, '--tk', self.files.path('tk')]
        result = self.verify(*base + self.firmware())
        self.assertEqual(common.EXIT_OK, result.code)
        # An option wins over the property.
        result = self.verify(*base + self.firmware() + ['--build-id', '4'])
        self.assertEqual(common.EXIT_REFUSED, result.code)
        self.assertIn('build 4', result.out)
        # python-openstackclient < 6 printed properties as text.
        text = ', '.join("%s='%s'" % kv for kv in properties.items())
        old = self.files.write('old.json', json.dumps({'properties': text}))
        result = self.verify('--server-json', old, '--tk',
                             self.files.path('tk'), *self.firmware())
        self.assertEqual(common.EXIT_OK, result.code)
        # A server without the properties names what is missing.
        del properties['sev_policy'], properties['sev_build_id']
        partial = self.files.write('partial.json', json.dumps(
            {'properties': properties}))
        result = self.verify('--server-json', partial, '--tk',
                             self.files.path('tk'), *self.firmware())
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('missing --build-id (or property sev_build_id in %s), '
                      '--policy' % partial, result.err)

    def test_bad_input_exits_2(self):
        tk = ['--tk', self.files.path('tk')]
        self.files.write('short', b'x' * 15)
        self.files.write('notjson', 'not json')
        self.files.write('noprops', '{"id": 1}')
        cases = [
            (cli.report_args('bad base64!') + self.firmware() + tk,
             'not base64'),
            (cli.report_args('QUJD') + self.firmware() + tk,
             'decodes to 3 bytes'),
            (cli.report_args() + self.firmware() +
             ['--tk', self.files.path('short')], 'is 15 bytes'),
            (cli.report_args() + self.firmware() +
             ['--tik', self.files.path('short')], 'is 15 bytes'),
            (cli.report_args() + ['--firmware', '/nonexistent/OVMF.fd'] + tk,
             'cannot read --firmware /nonexistent/OVMF.fd'),
            (cli.report_args() + self.firmware(), 'give the launch session '
             'keys'),
            (cli.report_args() + self.firmware() + tk +
             ['--tik', self.files.path('tik')], 'not both'),
            (cli.report_args() + tk, 'give --firmware FILE'),
            (cli.report_args() + self.firmware() + tk +
             ['--cmdline', 'x'], 'give --kernel too'),
            (cli.report_args(policy=0x33)[:-1] + ['0x1ffffffff'] +
             self.firmware() + tk, 'Invalid SEV policy'),
            (cli.report_args()[:2] + self.firmware() + tk,
             'missing --api-major, --api-minor, --build-id, --policy'),
            (['--server-json', self.files.path('notjson')] + tk +
             self.firmware(), 'is not JSON'),
            (['--server-json', self.files.path('noprops')] + tk +
             self.firmware(), 'has no "properties"'),
            (cli.report_args() + ['--launch-digest', 'abcd'] + tk,
             'Invalid --launch-digest'),
        ]
        for args, text in cases:
            result = self.verify(*args)
            self.assertEqual(common.EXIT_ERROR, result.code, args)
            self.assertIn(text, result.err)
            self.assertTrue(result.err.startswith('nova-sev: '))
            self.assertEqual('', result.out)
