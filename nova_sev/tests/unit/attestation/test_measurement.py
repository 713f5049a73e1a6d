"""Launch digest and measurement: layout, known answers, tampering."""

import hashlib
import hmac
import struct
import uuid

import fixtures
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import testtools

from nova_sev.attestation import measurement
from nova_sev import exception
from nova_sev.tests.unit.attestation import vectors


def _report(measurement_b64, policy=vectors.POLICY_SEV):
    return measurement.launch_report(
        measurement_b64, vectors.API_MAJOR, vectors.API_MINOR,
        vectors.BUILD_ID, policy)


class TestKernelHashesTable(testtools.TestCase):

    def test_known_answer(self):
        table = measurement.kernel_hashes_table(
            vectors.KERNEL, vectors.INITRD, vectors.CMDLINE)
        self.assertEqual(vectors.HASHES_TABLE_HEX, table.hex())

    def test_layout_is_qemus_padded_table(self):
        table = measurement.kernel_hashes_table(b'k', b'i', 'c')
        # 16 + 2 + 3 * (16 + 2 + 32) = 168, rounded up to 176.
        self.assertEqual(176, len(table))
        self.assertEqual(
            uuid.UUID('9438d606-4f22-4cc9-b479-a793d411fd21').bytes_le,
            table[:16])
        self.assertEqual(168, struct.unpack('<H', table[16:18])[0])
        entries = [table[18 + 50 * n:18 + 50 * (n + 1)] for n in range(3)]
        expected = [
            ('97d02dd8-bd20-4c94-aa78-e7714d36ab2a', b'c\0'),
            ('44baf731-3a2f-4bd7-9af1-41e29169781d', b'i'),
            ('4de79437-abd2-427f-b835-d5b172d2045b', b'k'),
        ]
        for entry, (guid, data) in zip(entries, expected):
            self.assertEqual(uuid.UUID(guid).bytes_le, entry[:16])
            self.assertEqual(50, struct.unpack('<H', entry[16:18])[0])
            self.assertEqual(hashlib.sha256(data).digest(), entry[18:])
        self.assertEqual(bytes(8), table[168:])

    def test_absent_initrd_and_cmdline(self):
        # QEMU hashes an absent initrd as empty and an absent command
        # line as the empty string with its NUL.
        self.assertEqual(
            measurement.kernel_hashes_table(b'k', b'', ''),
            measurement.kernel_hashes_table(b'k', None, None))
        self.assertEqual(hashlib.sha256(b'\0').digest(),
                         measurement.cmdline_sha256(None))


class TestLaunchDigest(testtools.TestCase):

    def test_firmware_only(self):
        self.assertEqual(vectors.DIGEST_FIRMWARE,
                         measurement.launch_digest(vectors.FIRMWARE).hex())
        self.assertEqual(hashlib.sha256(vectors.FIRMWARE).hexdigest(),
                         vectors.DIGEST_FIRMWARE)

    def test_with_kernel_hashes(self):
        table = measurement.kernel_hashes_table(
            vectors.KERNEL, vectors.INITRD, vectors.CMDLINE)
        self.assertEqual(
            vectors.DIGEST_KERNEL,
            measurement.launch_digest(vectors.FIRMWARE, table).hex())

    def test_sev_es_appends_vmsa_pages(self):
        pages = measurement.vmsa_pages(2, vectors.VMSA_CPU0,
                                       vectors.VMSA_CPU1)
        self.assertEqual(vectors.VMSA_CPU0 + vectors.VMSA_CPU1, pages)
        self.assertEqual(
            vectors.DIGEST_SEV_ES_2CPU,
            measurement.launch_digest(vectors.FIRMWARE, b'', pages).hex())

    def test_vmsa_pages_repeat_the_other_cpus(self):
        pages = measurement.vmsa_pages(4, vectors.VMSA_CPU0,
                                       vectors.VMSA_CPU1)
        self.assertEqual(vectors.VMSA_CPU0 + vectors.VMSA_CPU1 * 3, pages)
        self.assertEqual(vectors.VMSA_CPU0,
                         measurement.vmsa_pages(1, vectors.VMSA_CPU0, None))

    def test_vmsa_input_refused(self):
        cases = [
            (0, vectors.VMSA_CPU0, None, 'at least one vCPU'),
            (2, vectors.VMSA_CPU0, None, '--vmsa-cpu1'),
            (1, b'short', None, '--vmsa-cpu0 is 5 bytes'),
            (2, vectors.VMSA_CPU0, b'x' * 4097, '--vmsa-cpu1 is 4097 bytes'),
        ]
        for num_cpus, cpu0, cpu1, text in cases:
            e = self.assertRaises(exception.InvalidVmsa,
                                  measurement.vmsa_pages, num_cpus, cpu0,
                                  cpu1)
            self.assertIn(text, str(e))


class TestMeasurement(testtools.TestCase):

    def test_known_answers_verify(self):
        cases = [
            (vectors.MEASUREMENT_FIRMWARE, vectors.DIGEST_FIRMWARE,
             vectors.POLICY_SEV),
            (vectors.MEASUREMENT_KERNEL, vectors.DIGEST_KERNEL,
             vectors.POLICY_SEV),
            (vectors.MEASUREMENT_SEV_ES_2CPU, vectors.DIGEST_SEV_ES_2CPU,
             vectors.POLICY_SEV_ES),
        ]
        for measured, digest, policy in cases:
            report = _report(measured, policy)
            self.assertEqual(vectors.MNONCE, report.mnonce)
            self.assertTrue(measurement.measurement_matches(
                vectors.TIK, report, bytes.fromhex(digest)))
            self.assertEqual(measured, measurement.encode_measurement(
                measurement.compute_measurement(
                    vectors.TIK, report, bytes.fromhex(digest)),
                report.mnonce))

    def test_message_layout(self):
        report = _report(vectors.MEASUREMENT_FIRMWARE, 0x01020304)
        digest = bytes(range(100, 132))
        message = measurement.measurement_message(report, digest)
        self.assertEqual(bytes([4, 1, 51, 3, 4, 3, 2, 1]) + digest +
                         vectors.MNONCE, message)

    def test_every_input_changes_the_verdict(self):
        digest = bytes.fromhex(vectors.DIGEST_FIRMWARE)
        good = _report(vectors.MEASUREMENT_FIRMWARE)
        changed = [
            dict(api_major=2), dict(api_minor=50), dict(build_id=4),
            dict(policy=0x31), dict(policy=0x33 | 0x100),
            dict(mnonce=bytes(16)),
        ]
        for change in changed:
            fields = dict(good.__dict__, **change)
            report = measurement.LaunchReport(**fields)
            self.assertFalse(measurement.measurement_matches(
                vectors.TIK, report, digest), change)
        self.assertFalse(measurement.measurement_matches(
            bytes(16), good, digest))
        for bit in range(0, 256, 7):
            flipped = bytearray(digest)
            flipped[bit // 8] ^= 1 << (bit % 8)
            self.assertFalse(measurement.measurement_matches(
                vectors.TIK, good, bytes(flipped)))

    def test_comparison_is_constant_time(self):
        spy = self.useFixture(fixtures.MockPatch(
            'nova_sev.attestation.measurement.hmac.compare_digest',
            wraps=hmac.compare_digest))
        report = _report(vectors.MEASUREMENT_FIRMWARE)
        self.assertTrue(measurement.measurement_matches(
            vectors.TIK, report, bytes.fromhex(vectors.DIGEST_FIRMWARE)))
        spy.mock.assert_called_once()

    @settings(max_examples=50, deadline=None)
    @given(tik=st.binary(min_size=16, max_size=16),
           firmware=st.binary(max_size=256),
           mnonce=st.binary(min_size=16, max_size=16),
           numbers=st.tuples(st.integers(0, 255), st.integers(0, 255),
                             st.integers(0, 255),
                             st.integers(0, 0xffffffff)),
           bit=st.integers(0, 48 * 8 - 1))
    def test_round_trip_and_one_bit_changes(self, tik, firmware, mnonce,
                                            numbers, bit):
        digest = measurement.launch_digest(firmware)
        base = measurement.LaunchReport(b'', mnonce, *numbers)
        text = measurement.encode_measurement(
            measurement.compute_measurement(tik, base, digest), mnonce)
        self.assertTrue(measurement.measurement_matches(
            tik, measurement.launch_report(text, *numbers), digest))
        raw = bytearray(measurement.parse_measurement(text)[0] + mnonce)
        raw[bit // 8] ^= 1 << (bit % 8)
        flipped = measurement.encode_measurement(bytes(raw[:32]),
                                                 bytes(raw[32:]))
        self.assertFalse(measurement.measurement_matches(
            tik, measurement.launch_report(flipped, *numbers), digest))


class TestParsing(testtools.TestCase):

    def test_measurement_refused(self):
        for text, reason in (('not base64!', 'not base64'),
                             ('QUJD', 'decodes to 3 bytes, not 48'),
                             (12, 'not text'), (None, 'not text')):
            e = self.assertRaises(exception.InvalidMeasurement,
                                  measurement.parse_measurement, text)
            self.assertIn(reason, str(e))
            self.assertIn('--measurement', str(e))
            self.assertIsInstance(e, exception.InvalidInput)

    def test_numbers(self):
        for value, number in (('0x33', 0x33), ('51', 51), (51, 51),
                              ('0X37', 0x37), (' 7 ', 7)):
            self.assertEqual(number, measurement.parse_number(
                value, 'policy', 0xffffffff))
        for value in ('0x1_0000_0000', 'abc', '-1', 256, True, '', None,
                      '0o17'):
            e = self.assertRaises(exception.InvalidLaunchValue,
                                  measurement.parse_number, value,
                                  'build id', 255)
            self.assertIn('build id', str(e))
            self.assertIn('0 to 255', str(e))

    def test_digest(self):
        self.assertEqual(bytes.fromhex(vectors.DIGEST_FIRMWARE),
                         measurement.parse_digest(vectors.DIGEST_FIRMWARE))
        for text in ('abc', vectors.DIGEST_FIRMWARE + '00', 'zz' * 32):
            self.assertRaises(exception.InvalidLaunchDigest,
                              measurement.parse_digest, text)

    def test_describe_policy(self):
        self.assertEqual('0x0033 (NODBG,NOKS,DOMAIN,SEV)',
                         measurement.describe_policy(0x33))
        self.assertEqual('0x0037 (NODBG,NOKS,ES,DOMAIN,SEV)',
                         measurement.describe_policy(0x37))
        self.assertEqual('0x0000 (no flags)',
                         measurement.describe_policy(0))


class TestLaunchProperties(testtools.TestCase):

    def test_libvirt_keys_to_server_properties(self):
        info = {'sev-measurement': vectors.MEASUREMENT_FIRMWARE,
                'sev-api-major': 1, 'sev-api-minor': 51, 'sev-build-id': 3,
                'sev-policy': 0x33, 'unrelated': 'x'}
        self.assertEqual({'sev_measurement': vectors.MEASUREMENT_FIRMWARE,
                          'sev_api_major': 1, 'sev_api_minor': 51,
                          'sev_build_id': 3, 'sev_policy': 0x33},
                         measurement.launch_properties(info))
        self.assertEqual({'sev_measurement': None, 'sev_api_major': None,
                          'sev_api_minor': None, 'sev_build_id': None,
                          'sev_policy': None},
                         measurement.launch_properties({}))
