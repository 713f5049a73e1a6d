"""OVMF's secret table and the LAUNCH_SECRET header and payload."""

import base64
import hashlib
import hmac
import struct
import uuid

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers import modes
import testtools

from nova_sev.attestation import guid_table
from nova_sev.attestation import keys
from nova_sev.attestation import measurement
from nova_sev.attestation import secret
from nova_sev import exception
from nova_sev.tests.unit.attestation import vectors

GUID_A = uuid.UUID('11111111-2222-3333-4444-555555555555')


def _measurement_mac():
    return measurement.parse_measurement(vectors.MEASUREMENT_FIRMWARE)[0]


class TestSecretTable(testtools.TestCase):

    def test_known_answer_and_layout(self):
        table = secret.secret_table(
            [(secret.LUKS_KEY_GUID, vectors.LUKS_PASSPHRASE)])
        self.assertEqual(vectors.SECRET_TABLE_HEX, table.hex())
        self.assertEqual(
            uuid.UUID('1e74f542-71dd-4d66-963e-ef4287ff173b').bytes_le,
            table[:16])
        # Table length 4-byte: 20 header + 20 entry header + 10 data.
        self.assertEqual(50, struct.unpack('<I', table[16:20])[0])
        self.assertEqual(30, struct.unpack('<I', table[36:40])[0])
        self.assertEqual(64, len(table))

    def test_aligned_table_gets_no_padding_block(self):
        # 20 + 20 + 8 = 48 bytes: already a multiple of 16.
        table = secret.secret_table([(GUID_A, b'12345678')])
        self.assertEqual(48, len(table))

    def test_round_trip_keeps_order(self):
        entries = [(GUID_A, b'first'), (secret.LUKS_KEY_GUID, b'second'),
                   (uuid.UUID(int=7), b'')]
        self.assertEqual(entries, secret.parse_secret_table(
            secret.secret_table(entries)))

    def test_refused(self):
        cases = [
            ([], 'no secret'),
            ([(GUID_A, b'a'), (GUID_A, b'b')], 'given twice'),
            ([(GUID_A, b'x' * 4096)], 'OVMF has room for 4096'),
        ]
        for entries, text in cases:
            e = self.assertRaises(exception.InvalidSecret,
                                  secret.secret_table, entries)
            self.assertIn(text, str(e))

    def test_guid_names(self):
        self.assertEqual(secret.LUKS_KEY_GUID, secret.secret_guid('luks-key'))
        self.assertEqual(GUID_A, secret.secret_guid(str(GUID_A).upper()))
        e = self.assertRaises(exception.InvalidSecret, secret.secret_guid,
                              'disk-key')
        self.assertIn('luks-key', str(e))

    def test_malformed_tables(self):
        good = secret.secret_table([(GUID_A, b'abc')])
        cases = [
            (b'', 'does not start with its GUID'),
            (bytes(16) + good[16:], 'does not start with its GUID'),
            (good[:16] + struct.pack('<I', 999) + good[20:], 'does not fit'),
            (good[:16] + struct.pack('<I', 30) + good[20:], 'truncated'),
            (good[:36] + struct.pack('<I', 200) + good[40:], 'beyond'),
        ]
        for data, text in cases:
            e = self.assertRaises(exception.InvalidGuidTable,
                                  secret.parse_secret_table, data)
            self.assertIn(text, str(e))

    def test_pad_to_block(self):
        self.assertEqual(b'', guid_table.pad_to_block(b''))
        self.assertEqual(16, len(guid_table.pad_to_block(b'x')))
        self.assertEqual(32, len(guid_table.pad_to_block(b'x' * 17)))


class TestLaunchSecret(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.table = bytes.fromhex(vectors.SECRET_TABLE_HEX)
        self.built = secret.build_launch_secret(
            vectors.TEK, vectors.TIK, _measurement_mac(), self.table,
            vectors.SECRET_IV)

    def test_known_answer(self):
        self.assertEqual(vectors.SECRET_HEADER_B64, self.built.header_b64)
        self.assertEqual(vectors.SECRET_PAYLOAD_B64, self.built.payload_b64)

    def test_payload_decrypts_under_tek(self):
        # Decrypted here with the cryptography library directly, not with
        # nova_sev's helper.
        dec = Cipher(algorithms.AES(vectors.TEK),
                     modes.CTR(vectors.SECRET_IV)).decryptor()
        plain = dec.update(self.built.payload) + dec.finalize()
        self.assertEqual(self.table, plain)
        self.assertEqual(self.table,
                         secret.decrypt_payload(vectors.TEK, self.built))
        self.assertEqual([(secret.LUKS_KEY_GUID, vectors.LUKS_PASSPHRASE)],
                         secret.parse_secret_table(plain))

    def test_header_layout_and_mac_under_tik(self):
        header = self.built.header
        self.assertEqual(52, len(header))
        self.assertEqual(bytes(4), header[:4])
        self.assertEqual(vectors.SECRET_IV, header[4:20])
        length = struct.pack('<I', len(self.table))
        message = (b'\x01' + bytes(4) + vectors.SECRET_IV + length + length +
                   self.built.payload + _measurement_mac())
        self.assertEqual(
            hmac.new(vectors.TIK, message, hashlib.sha256).digest(),
            header[20:])
        self.assertTrue(secret.header_mac_matches(
            vectors.TIK, _measurement_mac(), self.built))

    def test_tampering_is_detected(self):
        mac = _measurement_mac()
        payload = bytearray(self.built.payload)
        payload[0] ^= 1
        header = bytearray(self.built.header)
        header[5] ^= 0x80
        cases = [
            (vectors.TIK, bytes(32), self.built),
            (vectors.TEK, mac, self.built),
            (vectors.TIK, mac, secret.LaunchSecret(self.built.header,
                                                   bytes(payload))),
            (vectors.TIK, mac, secret.LaunchSecret(bytes(header),
                                                   self.built.payload)),
        ]
        for tik, measured, built in cases:
            self.assertFalse(secret.header_mac_matches(tik, measured, built))

    def test_refused_inputs(self):
        self.assertRaises(exception.InvalidSecret,
                          secret.build_launch_secret, vectors.TEK,
                          vectors.TIK, _measurement_mac(), self.table,
                          b'short iv')
        self.assertRaises(exception.InvalidSecret,
                          secret.build_launch_secret, vectors.TEK,
                          vectors.TIK, b'short', self.table,
                          vectors.SECRET_IV)
        self.assertRaises(exception.InvalidSecret, secret.parse_header,
                          b'x' * 51)
        self.assertRaises(exception.InvalidSecret, secret.decode_b64,
                          'not base64!', 'the header')
        self.assertEqual(self.built.header, secret.decode_b64(
            base64.b64encode(self.built.header), 'the header'))


class TestKeys(testtools.TestCase):

    def test_split_tk_is_tek_then_tik(self):
        transport = keys.split_tk(vectors.TK, 'tk')
        self.assertEqual(vectors.TEK, transport.tek)
        self.assertEqual(vectors.TIK, transport.tik)

    def test_wrong_lengths(self):
        e = self.assertRaises(exception.InvalidTransportKey, keys.split_tk,
                              vectors.TK[:31], '--tk f')
        self.assertIn('is 31 bytes, it must be 32', str(e))
        e = self.assertRaises(exception.InvalidTransportKey, keys.check_key,
                              b'', 'TIK', '--tik f')
        self.assertIn('TIK --tik f is 0 bytes, it must be 16', str(e))
        self.assertEqual(vectors.TIK,
                         keys.check_key(vectors.TIK, 'TIK', 'x'))
