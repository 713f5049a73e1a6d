"""``nova-sev verify-report`` on reports signed by a test ARK/ASK/VCEK
chain: the valid case, every field changed, every link broken, wrong
roots and versions, the owner's checks, malformed input; and AMD's real
report with the built-in roots.
"""

import datetime
import json
import os

import fixtures
import testtools

from nova_sev.attestation import host_data
from nova_sev.attestation import snp_report
from nova_sev.attestation import snp_verify
from nova_sev.cmd import common
from nova_sev.cmd import verify_report
from nova_sev.tests.unit.attestation import cli
from nova_sev.tests.unit.attestation import snp_chain
from nova_sev.tests.unit.attestation import test_snp_report

INSTANCE = '6f0f5e0a-5a5f-4a0c-8a66-0e7f8d1c2b3a'
EXIT_NOT_AUTHENTIC = verify_report.EXIT_NOT_AUTHENTIC
# Within the validity of every real VCEK of the test data (the earliest
# ends in 2030), so that the real-report tests do not expire.
REAL_AT = '2027-01-01'


class Base(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.chain = snp_chain.Chain()

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def certs(self, chain=None, der=False):
        chain = chain or self.chain
        enc = chain.der if der else chain.pem
        return ['--vcek', self.write('vcek', enc(chain.vcek)),
                '--ask', self.write('ask', enc(chain.ask)),
                '--ark', self.write('ark', enc(chain.ark))]

    def verify(self, report, *args, certs=None):
        argv = ['verify-report', '--report', self.write('report', report)]
        argv += self.certs() if certs is None else certs
        return cli.run(self, argv + list(args))

    def verify_json(self, report, *args, certs=None):
        result = self.verify(report, '--format', 'json', *args, certs=certs)
        return result, json.loads(result.out) if result.out else None

    def report(self, **changes):
        return snp_chain.signed_report(self.chain.vcek_key, **changes)

    def assertFailed(self, result, data, code, names):
        self.assertEqual(code, result.code, result.out)
        self.assertEqual(sorted(names), sorted(data['failed']))
        self.assertEqual(code, data['exit_code'])


class TestValid(Base):

    def test_valid(self):
        fields = snp_chain.report_fields()
        result, data = self.verify_json(
            self.report(),
            '--measurement', fields['measurement'].hex(),
            '--host-data', fields['host_data'].hex(),
            '--report-data', fields['report_data'].hex(),
            '--min-tcb', 'bootloader=3,tee=0,snp=8,microcode=115')
        self.assertEqual(common.EXIT_OK, result.code, result.out)
        self.assertEqual('OK', data['verdict'])
        self.assertEqual([], data['failed'])
        self.assertEqual([
            'ask_signs_vcek', 'ark_signs_ask', 'ark_self_signed',
            'certificate_dates', 'signing_key', 'report_signature',
            'vcek_chip_id', 'vcek_tcb',
            'measurement', 'policy_debug', 'policy_migration_agent',
            'host_data', 'report_data', 'min_tcb'],
            [c['name'] for c in data['checks']])
        # Every field of the report is in the JSON, as it was signed.
        for name, value in fields.items():
            if name.startswith('cpuid_'):
                self.assertIsNone(data['report'][name])
            else:
                self.assertEqual(value.hex() if isinstance(value, bytes)
                                 else value, data['report'][name], name)

    def test_text_is_one_line(self):
        result = self.verify(self.report())
        self.assertEqual(common.EXIT_OK, result.code)
        self.assertEqual(1, len(result.out.splitlines()))
        self.assertTrue(result.out.startswith('SNP report OK: authentic'))
        self.assertEqual('', result.err)

    def test_der_certificates_and_hex_report(self):
        report = self.report()
        result = self.verify(report.hex().encode(),
                             certs=self.certs(der=True))
        self.assertEqual(common.EXIT_OK, result.code, result.out)

    def test_version_3(self):
        result, data = self.verify_json(self.report(
            version=3, cpuid_fam_id=0x19, cpuid_mod_id=1, cpuid_step=1))
        self.assertEqual(common.EXIT_OK, result.code, result.out)
        self.assertEqual(0x19, data['report']['cpuid_fam_id'])

    def test_instance_uuid(self):
        report = self.report(host_data=host_data.instance_host_data(
            INSTANCE))
        self.assertEqual(common.EXIT_OK, self.verify(
            report, '--instance-uuid', INSTANCE).code)
        result, data = self.verify_json(
            report, '--instance-uuid', '00000000-0000-0000-0000-000000000001')
        self.assertFailed(result, data, common.EXIT_REFUSED, ['host_data'])

    def test_short_report_data_is_zero_padded(self):
        nonce = bytes(range(1, 17))
        report = self.report(report_data=nonce + bytes(48))
        self.assertEqual(common.EXIT_OK, self.verify(
            report, '--report-data', nonce.hex()).code)


class TestEveryFieldChanged(Base):
    """A bit changed anywhere in the signed part, after signing."""

    def test_each_field(self):
        report = self.report()
        for name, offset, length, kind in snp_report.LAYOUT:
            if offset >= snp_report.SIGNED_LEN:
                continue
            for bit in (0, 8 * length - 1):
                # In VERSION, bit 0 makes version 3 (still read, so the
                # signature fails); the top bit makes an unknown version.
                raw = bytearray(report)
                raw[offset + bit // 8] ^= 1 << (bit % 8)
                result, data = self.verify_json(bytes(raw))
                if name == 'version' and bit != 0:
                    self.assertEqual(common.EXIT_ERROR, result.code)
                    self.assertIn('report version', result.err)
                    continue
                self.assertEqual(EXIT_NOT_AUTHENTIC, result.code,
                                 (name, bit))
                self.assertIn('report_signature', data['failed'],
                              (name, bit))
                self.assertEqual('NOT AUTHENTIC', data['verdict'])

    def test_signature_changed(self):
        report = self.report()
        for offset in (0x2a0, 0x2a0 + 47, 0x2e8, 0x2e8 + 47):
            raw = bytearray(report)
            raw[offset] ^= 0x01
            result, data = self.verify_json(bytes(raw))
            self.assertFailed(result, data, EXIT_NOT_AUTHENTIC,
                              ['report_signature'])

    def test_signed_by_another_key(self):
        report = snp_chain.signed_report(snp_chain.ec_key('other'))
        result, data = self.verify_json(report)
        self.assertFailed(result, data, EXIT_NOT_AUTHENTIC,
                          ['report_signature'])

    def test_signing_key_and_algorithm(self):
        for changes, failed in (
                ({'key_info': 1 << 2}, ['signing_key']),
                ({'key_info': 7 << 2}, ['signing_key']),
                ({'signature_algo': 2}, ['report_signature'])):
            result, data = self.verify_json(self.report(**changes))
            self.assertFailed(result, data, EXIT_NOT_AUTHENTIC, failed)

    def test_vcek_of_another_chip_or_tcb(self):
        for changes, failed in (
                ({'chip_id': b'\x01' * 64}, ['vcek_chip_id']),
                ({'reported_tcb': snp_chain.tcb_value(dict(
                    snp_chain.TCB, snp=9))}, ['vcek_tcb'])):
            result, data = self.verify_json(self.report(**changes))
            self.assertFailed(result, data, EXIT_NOT_AUTHENTIC, failed)
        # MASK_CHIP_KEY: the chip id is zeros and not compared.
        result = self.verify(self.report(key_info=0x2, chip_id=bytes(64)))
        self.assertEqual(common.EXIT_OK, result.code, result.out)

    def test_wrong_version(self):
        for version in (0, 1, 6, 0x100):
            result = self.verify(self.report(version=version))
            self.assertEqual(common.EXIT_ERROR, result.code)
            self.assertIn('report version %d' % version, result.err)
            self.assertEqual('', result.out)


class TestChain(Base):

    def chain_result(self, chain, expected_failed):
        report = snp_chain.signed_report(chain.vcek_key)
        result, data = self.verify_json(report, certs=self.certs(chain))
        self.assertFailed(result, data, EXIT_NOT_AUTHENTIC, expected_failed)
        return data

    def test_vcek_not_signed_by_ask(self):
        data = self.chain_result(
            snp_chain.Chain(vcek_signer='intruder'),
            ['ask_signs_vcek', 'ark_signs_ask', 'ark_self_signed'])
        self.assertIsNone(data['product'])

    def test_ask_not_signed_by_ark(self):
        self.chain_result(snp_chain.Chain(ask_signer='intruder'),
                          ['ark_signs_ask', 'ark_self_signed'])

    def test_ark_not_self_signed(self):
        self.chain_result(snp_chain.Chain(ark_signer='intruder'),
                          ['ark_self_signed'])

    def test_ask_not_rsa_pss(self):
        self.chain_result(snp_chain.Chain(rsa_pss=False),
                          ['ark_signs_ask', 'ark_self_signed'])

    def test_wrong_root(self):
        # Another root with the same name: its key did not sign the ASK.
        other = snp_chain.Chain(ark='other-ark', ask='other-ask')
        certs = self.certs()
        certs[-1] = self.write('other-ark', other.pem(other.ark))
        result, data = self.verify_json(self.report(), certs=certs)
        self.assertFailed(result, data, EXIT_NOT_AUTHENTIC,
                          ['ark_signs_ask', 'ark_self_signed'])

    def test_test_chain_refused_by_builtin_roots(self):
        certs = self.certs()[:4]   # --vcek and --ask, no --ark
        result, data = self.verify_json(self.report(), certs=certs)
        self.assertFailed(result, data, EXIT_NOT_AUTHENTIC,
                          ['ark_signs_ask', 'ark_self_signed'])
        result, data = self.verify_json(self.report(), certs=certs[:2])
        self.assertFailed(result, data, EXIT_NOT_AUTHENTIC,
                          ['ask_signs_vcek', 'ark_signs_ask',
                           'ark_self_signed'])

    def test_expired_vcek(self):
        chain = snp_chain.Chain(vcek_not_after=datetime.datetime(
            2021, 1, 1, tzinfo=datetime.timezone.utc))
        self.chain_result(chain, ['certificate_dates'])
        report = snp_chain.signed_report(chain.vcek_key)
        result = self.verify(report, '--at', '2020-06-01',
                             certs=self.certs(chain))
        self.assertEqual(common.EXIT_OK, result.code, result.out)

    def test_before_the_certificates(self):
        result, data = self.verify_json(self.report(), '--at', '2019-12-31')
        self.assertFailed(result, data, EXIT_NOT_AUTHENTIC,
                          ['certificate_dates'])

    def test_ark_needs_ask(self):
        certs = self.certs()
        result = self.verify(self.report(), certs=certs[:2] + certs[4:])
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('--ask', result.err)


class TestOwnerChecks(Base):

    def test_each_check_named(self):
        fields = snp_chain.report_fields()
        cases = (
            ({}, ['--measurement', '00' * 48], ['measurement']),
            ({}, ['--host-data', '00' * 32], ['host_data']),
            ({}, ['--report-data', 'ab'], ['report_data']),
            ({}, ['--min-tcb', 'snp=9'], ['min_tcb']),
            ({}, ['--min-tcb', 'microcode=116,bootloader=4'], ['min_tcb']),
            ({'policy': 0x30000 | snp_report.POLICY_DEBUG}, [],
             ['policy_debug']),
            ({'policy': 0x30000 | snp_report.POLICY_MIGRATE_MA}, [],
             ['policy_migration_agent']),
            ({'policy': 0x30000 | snp_report.POLICY_DEBUG |
              snp_report.POLICY_MIGRATE_MA},
             ['--measurement', '00' * 48, '--host-data',
              fields['host_data'].hex()],
             ['measurement', 'policy_debug', 'policy_migration_agent']),
        )
        for changes, args, failed in cases:
            result, data = self.verify_json(self.report(**changes), *args)
            self.assertFailed(result, data, common.EXIT_REFUSED, failed)
            line = self.verify(self.report(**changes), *args)
            self.assertEqual(1, len(line.out.splitlines()))
            self.assertTrue(line.out.startswith('SNP report REFUSED: '))
            for name in failed:
                self.assertIn(name, line.out)

    def test_allowed_policy(self):
        report = self.report(policy=0x30000 | snp_report.POLICY_DEBUG |
                             snp_report.POLICY_MIGRATE_MA)
        result = self.verify(report, '--allow-debug',
                             '--allow-migration-agent')
        self.assertEqual(common.EXIT_OK, result.code, result.out)

    def test_not_authentic_wins_over_refused(self):
        raw = bytearray(self.report())
        raw[0x90] ^= 1
        result, data = self.verify_json(bytes(raw), '--host-data',
                                        '00' * 32)
        self.assertFailed(result, data, EXIT_NOT_AUTHENTIC,
                          ['report_signature', 'host_data'])


class TestMalformed(Base):
    """One line on stderr, exit 2, never a traceback (cli.run asserts)."""

    def assertError(self, result, *words):
        self.assertEqual(common.EXIT_ERROR, result.code, result.out)
        self.assertEqual('', result.out)
        self.assertEqual(1, len(result.err.splitlines()))
        for word in words:
            self.assertIn(word, result.err)

    def test_report(self):
        good = self.report()
        for data in (good[:100], good + b'\0', b'', good.hex()[:-2].encode(),
                     b'zz' * 1184):
            self.assertError(self.verify(data), '--report', '1184')

    def test_certificates(self):
        for bad in (b'-----BEGIN CERTIFICATE-----\nAAAA\n'
                    b'-----END CERTIFICATE-----\n', b'\x30\x03\x02\x01',
                    b'', b'not a certificate'):
            for index in (1, 3, 5):
                certs = self.certs()
                certs[index] = self.write('bad', bad)
                self.assertError(self.verify(self.report(), certs=certs),
                                 certs[index - 1])

    def test_vcek_not_p384(self):
        for curve_chain in (snp_chain.Chain(vcek='p256',
                                            vcek_curve='secp256r1'),):
            result = self.verify(self.report(), certs=self.certs(
                curve_chain))
            self.assertError(result, 'secp256r1', 'P-384')
        certs = self.certs()
        certs[1] = self.write('rsa-vcek', self.chain.pem(self.chain.ask))
        self.assertError(self.verify(self.report(), certs=certs), 'RSA',
                         'P-384')

    def test_options(self):
        for args, words in (
                (['--measurement', 'abc'], ['--measurement']),
                (['--host-data', '00' * 33], ['--host-data']),
                (['--report-data', '00' * 65], ['--report-data']),
                (['--min-tcb', 'snp'], ['--min-tcb']),
                (['--min-tcb', 'gpu=1'], ['--min-tcb']),
                (['--instance-uuid', 'nope'], ['--instance-uuid']),
                (['--at', 'yesterday'], ['--at'])):
            self.assertError(self.verify(self.report(), *args), *words)

    def test_missing_file(self):
        result = self.verify(self.report(), certs=[
            '--vcek', os.path.join(self.dir, 'nonexistent')])
        self.assertError(result, 'cannot read --vcek')


class TestRealReport(Base):
    """AMD's real Milan report and VCEK, the built-in roots."""

    def real(self, *args, report=None):
        report = report or test_snp_report.data_file('report_milan.hex')
        vcek = os.path.join(test_snp_report.DATA, 'vcek_milan.der')
        return self.verify_json(report, '--at', REAL_AT, *args,
                                certs=['--vcek', vcek])

    def test_verifies(self):
        result, data = self.real(
            '--measurement', '7a1e5c266c0108dbc9bb94fa926951320940915d0aafb'
            '42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f',
            '--host-data', '00' * 32,
            '--min-tcb', 'bootloader=3,tee=0,snp=8,microcode=115')
        self.assertEqual(common.EXIT_OK, result.code, result.out)
        self.assertEqual('milan', data['product'])

    def test_with_amds_cert_chain_as_ask(self):
        chain = os.path.join(test_snp_report.DATA, 'cert_chain_milan')
        result, data = self.real('--ask', chain, '--product', 'milan')
        self.assertEqual(common.EXIT_OK, result.code, result.out)

    def test_wrong_product(self):
        for product in ('genoa', 'turin'):
            result, data = self.real('--product', product)
            self.assertFailed(result, data, EXIT_NOT_AUTHENTIC,
                              ['ask_signs_vcek', 'ark_signs_ask',
                               'ark_self_signed'])

    def test_turin_version_5(self):
        vcek = os.path.join(test_snp_report.DATA, 'ms-turin-vcek.pem')
        result, data = self.verify_json(
            test_snp_report.data_file('ms-turin-report.bin'),
            '--min-tcb', 'fmc=1,snp=4', '--at', REAL_AT,
            certs=['--vcek', vcek])
        self.assertEqual(common.EXIT_OK, result.code, result.out)
        self.assertEqual('turin', data['product'])
        self.assertEqual(5, data['report']['version'])
        result, data = self.verify_json(
            test_snp_report.data_file('ms-turin-report.bin'),
            '--min-tcb', 'fmc=2', '--at', REAL_AT, certs=['--vcek', vcek])
        self.assertFailed(result, data, common.EXIT_REFUSED, ['min_tcb'])

    def test_real_vcek_out_of_its_dates(self):
        result, data = self.real('--at', '2031-01-01')
        self.assertFailed(result, data, EXIT_NOT_AUTHENTIC,
                          ['certificate_dates'])

    def test_changed_bit(self):
        raw = bytearray(bytes.fromhex(test_snp_report.data_file(
            'report_milan.hex').decode()))
        raw[21] ^= 0x80
        result, data = self.real(report=bytes(raw))
        self.assertFailed(result, data, EXIT_NOT_AUTHENTIC,
                          ['report_signature'])


class TestProductRoots(testtools.TestCase):

    def test_builtin_products(self):
        roots = snp_verify.builtin_roots()
        self.assertEqual(set(snp_verify.PRODUCTS), set(roots.arks))
        self.assertEqual(set(snp_verify.PRODUCTS), set(roots.asks))
