"""The SNP attestation report layout, the per-instance HOST_DATA and
AMD's real certificates and report.
"""

import os
import uuid

import testtools

from nova_sev.attestation import host_data
from nova_sev.attestation import snp_report
from nova_sev.attestation import snp_verify
from nova_sev import exception
from nova_sev.tests.unit.attestation import snp_chain

DATA = os.path.join(os.path.dirname(__file__), '..', '..', 'data', 'snp')


def data_file(name: str) -> bytes:
    with open(os.path.join(DATA, name), 'rb') as f:
        return f.read()


class TestLayout(testtools.TestCase):

    def test_layout_covers_every_byte_once(self):
        offset = 0
        for name, start, length, _kind in snp_report.LAYOUT:
            self.assertEqual(offset, start, name)
            offset += length
        self.assertEqual(snp_report.REPORT_LEN, offset)

    def test_every_field_round_trips(self):
        for version in (2, 3, 4, 5):
            fields = snp_chain.report_fields(
                version=version, cpuid_fam_id=0x19, cpuid_mod_id=0x11,
                cpuid_step=1, launch_mit_vector=0x3f,
                current_mit_vector=0x1f)
            report = snp_report.parse_report(bytes(
                snp_chain.unsigned_report(fields)))
            for name, value in fields.items():
                if (version == 2 and name.startswith('cpuid_') or
                        version < 5 and name.endswith('_mit_vector')):
                    # Reserved in the older versions: not read.
                    self.assertIsNone(report.fields[name])
                else:
                    self.assertEqual(value, report.fields[name], name)

    def test_key_info_and_signature(self):
        raw = snp_chain.unsigned_report(snp_chain.report_fields(
            key_info=0b00111))
        raw[0x2a0] = 0x01
        raw[0x2e8 + 71] = 0x80
        report = snp_report.parse_report(bytes(raw))
        self.assertTrue(report.author_key_en)
        self.assertTrue(report.mask_chip_key)
        self.assertEqual(1, report.signing_key)
        self.assertEqual((1, 0x80 << (8 * 71)), report.signature_rs)
        self.assertEqual(bytes(raw[:0x2a0]), report.signed)

    def test_decoded(self):
        report = snp_report.parse_report(bytes(snp_chain.unsigned_report(
            snp_chain.report_fields(policy=0x1f0000 | 0x0102))))
        out = snp_report.to_dict(report)
        self.assertEqual(snp_chain.TCB, out['reported_tcb_decoded'])
        self.assertEqual(['SMT', 'RESERVED1', 'MIGRATE_MA', 'DEBUG',
                          'SINGLE_SOCKET'], out['policy_flags'])
        self.assertEqual('1.2', out['policy_abi'])
        self.assertEqual(['SMT_EN', 'ECC_EN'], out['platform_flags'])
        self.assertEqual('VCEK', out['signing_key'])

    def test_turin_tcb_layout(self):
        levels = {'fmc': 1, 'bootloader': 2, 'tee': 3, 'snp': 4,
                  'microcode': 5}
        value = snp_chain.tcb_value(levels, snp_report.TCB_FIELDS_TURIN)
        report = snp_report.parse_report(bytes(snp_chain.unsigned_report(
            snp_chain.report_fields(version=3, cpuid_fam_id=0x1a,
                                    reported_tcb=value))))
        self.assertEqual(levels, snp_report.to_dict(report)[
            'reported_tcb_decoded'])

    def test_wrong_length_and_version(self):
        good = bytes(snp_chain.unsigned_report(snp_chain.report_fields()))
        for data in (good[:-1], good + b'\0', b''):
            e = self.assertRaises(exception.InvalidAttestationReport,
                                  snp_report.parse_report, data)
            self.assertIn('1184', str(e))
        for version in (0, 1, 6, 0xffffffff):
            data = bytes(snp_chain.unsigned_report(snp_chain.report_fields(
                version=version)))
            e = self.assertRaises(exception.InvalidAttestationReport,
                                  snp_report.parse_report, data)
            self.assertIn('report version %d' % version, str(e))


class TestHostData(testtools.TestCase):

    def test_binding(self):
        instance = '0b6c6d34-9ef3-4c8c-9f19-6e3a1e0c2b7a'
        value = host_data.instance_host_data(instance)
        self.assertEqual(32, len(value))
        import hashlib
        self.assertEqual(hashlib.sha256(
            b'nova-sev-host-data-v1:' + instance.encode()).digest(), value)
        # Any spelling of the same UUID binds the same instance.
        self.assertEqual(value, host_data.instance_host_data(
            instance.upper().replace('-', '')))
        self.assertNotEqual(value, host_data.instance_host_data(
            str(uuid.uuid4())))
        self.assertRaises(ValueError, host_data.instance_host_data, 'x')


class TestAmdCertificates(testtools.TestCase):
    """AMD's published ARK and ASK certificates (built in) and a real
    report of a Milan chip with its VCEK (virtee's sev test data).
    """

    def setUp(self):
        super().setUp()
        self.roots = snp_verify.builtin_roots()

    def test_each_product_verifies(self):
        for product in snp_verify.PRODUCTS:
            ark, ask = self.roots.arks[product], self.roots.asks[product]
            self.assertIsNone(snp_verify.signed_by(ark, ark), product)
            self.assertIsNone(snp_verify.signed_by(ask, ark), product)

    def test_wrong_product_refused(self):
        for product in snp_verify.PRODUCTS:
            for other in snp_verify.PRODUCTS:
                if other != product:
                    self.assertIsNotNone(snp_verify.signed_by(
                        self.roots.asks[product], self.roots.arks[other]))
                    self.assertIsNotNone(snp_verify.signed_by(
                        self.roots.arks[product], self.roots.arks[other]))

    def test_builtin_roots_are_amds_cert_chains(self):
        for product in ('milan', 'turin'):
            ask, ark = snp_verify.load_certificates(
                data_file('cert_chain_' + product), product)
            self.assertEqual(self.roots.asks[product], ask)
            self.assertEqual(self.roots.arks[product], ark)

    def test_real_vceks_chain(self):
        for product in ('milan', 'turin'):
            vcek = snp_verify.load_certificates(
                data_file('vcek_%s.der' % product), product)[0]
            checks, found = snp_verify.chain_checks(vcek, None, self.roots)
            self.assertEqual(product, found)
            self.assertTrue(all(c.ok for c in checks), checks)
            # The other products' roots refuse it.
            for other in snp_verify.PRODUCTS:
                if other != product:
                    alone = snp_verify.Roots(
                        {other: self.roots.arks[other]},
                        {other: self.roots.asks[other]})
                    checks, found = snp_verify.chain_checks(vcek, None,
                                                            alone)
                    self.assertIsNone(found)
                    self.assertFalse(all(c.ok for c in checks))

    def test_real_reports_of_each_product(self):
        # Microsoft's test data: Milan and Genoa version 3, Turin version 5.
        for product, version in (('milan', 3), ('genoa', 3), ('turin', 5)):
            report = snp_report.parse_report(data_file(
                'ms-%s-report.bin' % product))
            vcek = snp_verify.load_certificates(data_file(
                'ms-%s-vcek.pem' % product), product)[0]
            self.assertEqual(version, report.version)
            checks, found = snp_verify.chain_checks(vcek, None, self.roots)
            self.assertEqual(product, found)
            checks += snp_verify.report_checks(report, vcek)
            self.assertTrue(all(c.ok for c in checks), (product, checks))
            self.assertEqual(product == 'turin',
                             snp_verify.vcek_is_turin(vcek))
        turin = snp_report.parse_report(data_file('ms-turin-report.bin'))
        self.assertEqual({'fmc': 1, 'bootloader': 1, 'tee': 1, 'snp': 4,
                          'microcode': 81},
                         snp_report.to_dict(turin)['reported_tcb_decoded'])

    def test_real_report_verifies(self):
        report = snp_report.parse_report(bytes.fromhex(
            data_file('report_milan.hex').decode()))
        vcek = snp_verify.load_certificates(data_file('vcek_milan.der'),
                                            'vcek')[0]
        checks = snp_verify.report_checks(report, vcek)
        self.assertEqual(['signing_key', 'report_signature', 'vcek_chip_id',
                          'vcek_tcb'], [c.name for c in checks])
        self.assertTrue(all(c.ok for c in checks), checks)
        self.assertEqual(2, report.version)
        self.assertEqual(0x30000, report.policy)
        self.assertFalse(snp_verify.vcek_is_turin(vcek))
        # One flipped bit in the signed part, and it no longer verifies.
        raw = bytearray(report.raw)
        raw[21] ^= 0x80
        checks = snp_verify.report_checks(
            snp_report.parse_report(bytes(raw)), vcek)
        self.assertFalse(checks[1].ok)
