"""The public SEV vectors, held against both sides: the guest owner's code
(``nova_sev.attestation``) and the PSP double (``tests/fixtures/psp``),
whose crypto is written separately.

virtee/sev (commit 9cf2adb) ``src/session/key.rs`` and
``src/session/mod.rs``: the KDF, the key wrap and its MAC, the policy MAC
and a measurement. virtee/sevctl (commit 8b47f3a)
``tests/measurementbuild.rs`` and ``tests/secretbuild.rs``, with their
input files in ``nova_sev/tests/data/sev/sevctl/``.
"""

import base64
import hashlib
import uuid

import testtools

from nova_sev.attestation import measurement
from nova_sev.attestation import secret
from nova_sev.attestation import session
from nova_sev.tests.fixtures import psp
from nova_sev.tests.unit.attestation import sev_data

# virtee/sev src/session/key.rs and mod.rs.
KDF_ZERO = 'ab4d269fcc62bedb4511d56c386ce706'
HMAC_ZERO = 'aa7855e13839dd767cd5da7c1ff5036540c9264b7a803029315e55375287b4af'
WRAP_TK_ZERO = (
    '2137bc7f9bb8bd7c3e55a576a15d3454b3856b8ba27afadf46dcfee9f02c02c4')
WRAP_MAC_ZERO = (
    '3176c0752738bd9d5e86689534020f528c088f16238826b000b327dee6aeed7d')
VERIFY_TIK = '66320db73158a35a255d051758e95ed4'
VERIFY_MNONCE = '4fbe0bedbad6c86ae8f68971d103e554'
VERIFY_MEASURE = (
    '6faab2daae389bcd3405a05d6cafe33c0414f7bedd0bae19ba5f38b7fd1664ea')

# virtee/sevctl tests/measurementbuild.rs.
SEVCTL_NONCE = 'wxP6tRHCFrFQWxsuqZA8QA=='
SEVCTL_DIGEST = 'xkvRAfyaSizgonxAjZIAkR8TmolUabBKQKb6KJCDDSM='
SEVCTL_BY_DIGEST = (
    'lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI7DE/q1EcIWsVBbGy6pkDxA')
SEVCTL_FIRMWARE = (
    'oMDewIouJSpbpNRHj7Mk3p08H2dPZQdsZMU14qIymBnDE/q1EcIWsVBbGy6pkDxA')
SEVCTL_KERNEL = (
    'h3auYbWQnVW7EGLWN4Hf9SN0oEYMPU2sK4bLnefWPwvDE/q1EcIWsVBbGy6pkDxA')
SEVCTL_CMDLINE = 'foo bar baz fake kernel=cmdline'
SEVCTL_SEV_ES = (
    '/o0nzDKE5XgtVnUZWPhUea/WZYrTKLExR7KCwuMdbActvpWfXTFk21KMZIAAhQny')
OVMF = 'sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9'

# virtee/sevctl tests/secretbuild.rs.
SECRET_BLOB = (
    'TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS')
SECRET_IV = 'rFR07U3TLH2YnsUj2SVZ7A=='
SECRET1_GUID = uuid.UUID('736869e5-84f0-4973-92ec-06879ce3da0b')
SECRET2_GUID = uuid.UUID('736869e5-aaaa-4973-92ec-06879ce3da0b')
SECRET1_HEADER = (
    'AAAAAKxUdO1N0yx9mJ7FI9klWey8FSzeYQ4X8K71VzNKLU/KQsIsQxLjtbhaPUewqshX5Q==')
SECRET1_PAYLOAD = (
    '0U3e5PcXv0UW+H4tSBFKOdCYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinD'
    'a+lVfCCwD/2w5cPA==')
SECRET12_HEADER = (
    'AAAAAKxUdO1N0yx9mJ7FI9klWeyZ3r0dOEKHUOhIRqzGYYvTJgdMtBPL1nK6GD9aGET7Ng==')
SECRET12_PAYLOAD = (
    '0U3e5PcXv0UW+H4tSBFKObWYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinD'
    'a+lVfCC+WWs332lpLNUX1ZI3YK7vYgtys4X+uGxEIlkIQ90v8/w8ZFmQMe')


def _b64(text):
    return base64.b64decode(text)


def _sevctl_launch(api=(1, 40, 40), policy=0x03, nonce=SEVCTL_NONCE):
    return dict(tik=sev_data.read('sevctl/measurement-tik1.bin'),
                api=api, policy=policy, nonce=_b64(nonce))


def _vmsas():
    return ([sev_data.read('sevctl/vmsa0.bin')] +
            [sev_data.read('sevctl/vmsa1.bin')] * 3)


def _kernel_table():
    return measurement.kernel_hashes_table(
        sev_data.read('sevctl/measurement-vmlinuz-fake'),
        sev_data.read('sevctl/measurement-initrd-fake'), SEVCTL_CMDLINE)


class TestOwnerSide(testtools.TestCase):
    """nova_sev.attestation against the public vectors."""

    def test_kdf(self):
        self.assertEqual(KDF_ZERO, session.kdf(
            bytes(16), session.LABEL_MASTER, bytes(16)).hex())

    def test_wrap_and_macs(self):
        # virtee/sev's shortcut: a 16-byte zero "shared secret", zero
        # nonce, IV, TEK, TIK and policy.
        blob = session.session_blob(bytes(16), bytes(16), bytes(16),
                                    bytes(16), bytes(16), 0)
        self.assertEqual(bytes(16), blob[:16])
        self.assertEqual(WRAP_TK_ZERO, blob[16:48].hex())
        self.assertEqual(bytes(16), blob[48:64])
        self.assertEqual(WRAP_MAC_ZERO, blob[64:96].hex())
        self.assertEqual(HMAC_ZERO, blob[96:].hex())
        self.assertEqual(HMAC_ZERO, session.policy_mac(bytes(16), 0).hex())

    def test_virtee_measurement(self):
        report = measurement.LaunchReport(
            mac=bytes.fromhex(VERIFY_MEASURE),
            mnonce=bytes.fromhex(VERIFY_MNONCE), api_major=0, api_minor=0x12,
            build_id=0x0f, policy=0)
        self.assertTrue(measurement.measurement_matches(
            bytes.fromhex(VERIFY_TIK), report, hashlib.sha256().digest()))

    def _matches(self, expected, digest, api=(1, 40, 40), policy=0x03):
        mac, mnonce = measurement.parse_measurement(expected)
        report = measurement.LaunchReport(mac, mnonce, *api, policy=policy)
        return measurement.measurement_matches(
            sev_data.read('sevctl/measurement-tik1.bin'), report, digest)

    def test_sevctl_measurements(self):
        firmware = sev_data.read(OVMF)
        self.assertTrue(self._matches(SEVCTL_BY_DIGEST, _b64(SEVCTL_DIGEST)))
        self.assertTrue(self._matches(
            SEVCTL_FIRMWARE, measurement.launch_digest(firmware)))
        self.assertTrue(self._matches(SEVCTL_KERNEL, measurement.launch_digest(
            firmware, _kernel_table())))
        self.assertTrue(self._matches(
            SEVCTL_SEV_ES, measurement.launch_digest(
                firmware, b'', b''.join(_vmsas())), api=(1, 49, 6),
            policy=0x05))

    def test_sevctl_secrets(self):
        mac = _b64(SECRET_BLOB)[:32]
        tek = sev_data.read('sevctl/secret-tek1.bin')
        tik = sev_data.read('sevctl/secret-tik1.bin')
        one = (SECRET1_GUID, sev_data.read('sevctl/secret-secret1.txt'))
        two = (SECRET2_GUID, sev_data.read('sevctl/secret-secret2.txt'))
        for entries, header, payload in (
                ([one], SECRET1_HEADER, SECRET1_PAYLOAD),
                ([one, two], SECRET12_HEADER, SECRET12_PAYLOAD)):
            built = secret.build_launch_secret(
                tek, tik, mac, secret.secret_table(entries), _b64(SECRET_IV))
            self.assertEqual(header, built.header_b64)
            self.assertEqual(payload, built.payload_b64)


class TestPspSide(testtools.TestCase):
    """The PSP double against the same vectors."""

    def test_kdf(self):
        self.assertEqual(KDF_ZERO, psp._nist_kdf(
            bytes(16), b'sev-master-secret', bytes(16)).hex())

    def test_unwrap(self):
        blob = (bytes(16) + bytes.fromhex(WRAP_TK_ZERO) + bytes(16) +
                bytes.fromhex(WRAP_MAC_ZERO) + bytes.fromhex(HMAC_ZERO))
        tek, tik, policy_mac = psp.unwrap_session(bytes(16), blob)
        self.assertEqual((bytes(16), bytes(16)), (tek, tik))
        self.assertEqual(HMAC_ZERO, policy_mac.hex())
        bad = sev_data.flip_bit(blob, 64 * 8)
        e = self.assertRaises(psp.PspError, psp.unwrap_session, bytes(16),
                              bad)
        self.assertEqual((0x0B, 'BAD_MEASUREMENT'), (e.status, e.name))

    def _guest(self, tik, api, policy):
        platform = psp.FakePlatform(api_major=api[0], api_minor=api[1],
                                    build_id=api[2])
        return psp.PspGuest(platform, policy, bytes(16), tik)

    def test_virtee_measurement(self):
        guest = self._guest(bytes.fromhex(VERIFY_TIK), (0, 0x12, 0x0f), 0)
        measured = guest.launch_measure(bytes.fromhex(VERIFY_MNONCE))
        self.assertEqual(VERIFY_MEASURE + VERIFY_MNONCE, measured.hex())

    def test_sevctl_measurements(self):
        tik = sev_data.read('sevctl/measurement-tik1.bin')
        firmware = sev_data.read(OVMF)
        for expected, table, vmsas, api, policy in (
                (SEVCTL_FIRMWARE, b'', (), (1, 40, 40), 0x03),
                (SEVCTL_KERNEL, _kernel_table(), (), (1, 40, 40), 0x03),
                (SEVCTL_SEV_ES, b'', _vmsas(), (1, 49, 6), 0x05)):
            guest = self._guest(tik, api, policy)
            guest.launch_update_from_image(firmware, table, vmsas)
            measured = guest.launch_measure(_b64(expected)[32:])
            self.assertEqual(expected, base64.b64encode(measured).decode())
            self.assertEqual(expected,
                             guest.launch_security_info()['sev-measurement'])

    def test_sevctl_secrets(self):
        tek = sev_data.read('sevctl/secret-tek1.bin')
        tik = sev_data.read('sevctl/secret-tik1.bin')
        for header, payload, entries in (
                (SECRET1_HEADER, SECRET1_PAYLOAD, 1),
                (SECRET12_HEADER, SECRET12_PAYLOAD, 2)):
            guest = psp.PspGuest(psp.FakePlatform(), 0x03, tek, tik)
            # In LSECRET after the launch sevctl measured.
            guest._measurement = _b64(SECRET_BLOB)[:32]
            guest.state = 'LSECRET'
            guest.launch_secret(_b64(header), _b64(payload))
            table = secret.parse_secret_table(guest.secret_table)
            self.assertEqual(entries, len(table))
            self.assertEqual((SECRET1_GUID, b'MY-LUKS-PASSPHRASE'), table[0])
