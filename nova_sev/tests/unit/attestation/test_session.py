"""The guest owner's launch session, and the PSP double that opens it:
its checks in the firmware's order, each with its named status.
"""

import base64
import hashlib
import struct

from cryptography.hazmat.primitives.asymmetric import ec
import testtools

from nova_sev.attestation import measurement
from nova_sev.attestation import secret
from nova_sev.attestation import session
from nova_sev.attestation import sev_cert
from nova_sev import exception
from nova_sev.tests.fixtures import psp
from nova_sev.tests.unit.attestation import sev_data

GODH_SCALAR = 0x1234567890ABCDEF << 200 | 0x5EF
NONCE = bytes(range(16))
WRAP_IV = bytes(range(16, 32))
TEK = bytes(range(32, 48))
TIK = bytes(range(48, 64))

PDH_SCALAR = 0xFEDCBA9876543210 << 150 | 0x17

# The session for the PDH of PDH_SCALAR with the fixed GODH scalar, nonce,
# IV and keys above, policy 0x3: computed once by this module, checked to
# open in the PSP double, and pinned so that any change shows at once.
PINNED_SESSION_SHA256 = (
    'c71a08ac5ae893e7e17ee7bbc1a83d1904ce0cba0b5e3b36f8b0b5e2cd5a2d43')


def _godh_key():
    return ec.derive_private_key(GODH_SCALAR, ec.SECP384R1())


def _pdh(platform):
    return sev_cert.parse_sev_cert(platform.pdh_cert, 'pdh',
                                   sev_cert.USAGE_PDH)


def _status(test, name, call, *args):
    e = test.assertRaises(psp.PspError, call, *args)
    test.assertEqual((psp.STATUS[name], name), (e.status, e.name), str(e))
    return e


class TestOwnerSession(testtools.TestCase):

    def test_godh_certificate_layout(self):
        key = _godh_key().public_key()
        cert = session.godh_certificate(key)
        self.assertEqual(sev_cert.CERT_LEN, len(cert))
        self.assertEqual((1, 0, 0, 0, 0x1003, 0x0003, 2), struct.unpack_from(
            '<IBBHIII', cert))
        numbers = key.public_numbers()
        self.assertEqual(numbers.x, int.from_bytes(cert[0x14:0x5C], 'little'))
        self.assertEqual(numbers.y, int.from_bytes(cert[0x5C:0xA4], 'little'))
        self.assertEqual(bytes(0x414 - 0xA4), cert[0xA4:0x414])
        empty = struct.pack('<II', 0x1000, 0) + bytes(512)
        self.assertEqual(empty + empty, cert[0x414:])
        # It parses as the PDH-usage ECDH certificate the firmware wants.
        parsed = sev_cert.parse_sev_cert(cert, 'godh', sev_cert.USAGE_PDH)
        self.assertEqual((), parsed.signatures)

    def test_pinned_session(self):
        pdh_key = ec.derive_private_key(PDH_SCALAR, ec.SECP384R1())
        # A PDH-usage ECDH certificate of that key (unsigned: only the
        # key matters to the session).
        pdh = sev_cert.parse_sev_cert(
            session.godh_certificate(pdh_key.public_key()), 'pdh',
            sev_cert.USAGE_PDH)
        launch = session.build_session(pdh, 0x3, _godh_key(), NONCE, WRAP_IV,
                                       TEK, TIK)
        self.assertEqual(session.SESSION_LEN, len(launch.session))
        self.assertEqual(NONCE, launch.session[:16])
        self.assertEqual(WRAP_IV, launch.session[48:64])
        self.assertEqual(session.policy_mac(TIK, 3), launch.session[96:])
        self.assertEqual(PINNED_SESSION_SHA256,
                         hashlib.sha256(launch.session).hexdigest())
        self.assertEqual(2780, len(launch.godh_b64))
        self.assertEqual(172, len(launch.session_b64))
        shared = pdh_key.exchange(ec.ECDH(), _godh_key().public_key())
        self.assertEqual((TEK, TIK, session.policy_mac(TIK, 3)),
                         psp.unwrap_session(shared, launch.session))

    def test_real_pdh(self):
        for product in ('naples', 'rome'):
            pdh = sev_cert.parse_sev_cert(
                sev_data.platform(product)['pdh'], product)
            launch = session.build_session(pdh, 0x1, _godh_key(), NONCE,
                                           WRAP_IV, TEK, TIK)
            self.assertEqual(session.SESSION_LEN, len(launch.session))

    def test_opens_in_the_psp_double(self):
        platform = psp.FakePlatform()
        launch = session.build_session(_pdh(platform), 0x3, _godh_key(),
                                       NONCE, WRAP_IV, TEK, TIK)
        guest = platform.launch_start(0x3, launch.godh_cert, launch.session)
        self.assertEqual((TEK, TIK, 'LUPDATE'),
                         (guest.tek, guest.tik, guest.state))

    def test_new_sessions_are_fresh(self):
        pdh = _pdh(psp.FakePlatform())
        one, two = session.new_session(pdh, 1), session.new_session(pdh, 1)
        self.assertNotEqual(one.godh_cert, two.godh_cert)
        self.assertNotEqual(one.session[:16], two.session[:16])
        self.assertNotEqual(one.tek, two.tek)
        self.assertNotEqual(one.tik, two.tik)

    def test_policy_macs_exactly_the_u32(self):
        # sevctl's Policy::from(u32) would MAC 0x07010001 for this one.
        pdh = _pdh(psp.FakePlatform())
        launch = session.new_session(pdh, 0x00170001)
        self.assertEqual(session.policy_mac(launch.tik, 0x00170001),
                         launch.session[96:])

    def test_reserved_policy_bits_refused(self):
        pdh = _pdh(psp.FakePlatform())
        for policy, reason in ((0x40, 'bits 6-15 (0x0040 here)'),
                               (0x8003, '(0x8000 here)'),
                               (1 << 32, 'not a 32-bit number')):
            e = self.assertRaises(exception.InvalidGuestPolicy,
                                  session.new_session, pdh, policy)
            self.assertIn(reason, str(e))

    def test_only_a_pdh(self):
        platform = psp.FakePlatform()
        pek = sev_cert.parse_sev_cert(platform.pek_cert, 'pek')
        e = self.assertRaises(exception.InvalidSevCertificate,
                              session.new_session, pek, 1)
        self.assertIn('the session needs the PDH, this is the PEK', str(e))


class TestLaunchStart(testtools.TestCase):
    """LAUNCH_START's checks, in the firmware's order."""

    def setUp(self):
        super().setUp()
        self.platform = psp.FakePlatform()
        self.launch = session.build_session(
            _pdh(self.platform), 0x3, _godh_key(), NONCE, WRAP_IV, TEK, TIK)

    def start(self, policy=0x3, godh=None, blob=None):
        return self.platform.launch_start(
            policy, self.launch.godh_cert if godh is None else godh,
            self.launch.session if blob is None else blob)

    def _godh(self, offset, fmt, value):
        cert = bytearray(self.launch.godh_cert)
        struct.pack_into(fmt, cert, offset, value)
        return bytes(cert)

    def test_lengths_first(self):
        _status(self, 'INVALID_LENGTH', self.start, 0x3, None,
                self.launch.session[:-1])
        _status(self, 'INVALID_LENGTH', self.start, 0x3,
                self.launch.godh_cert + b'\0')
        # The length comes before the certificate and the MACs.
        _status(self, 'INVALID_LENGTH', self.start, 0x40,
                self._godh(0, '<I', 2), self.launch.session + b'\0')
        _status(self, 'INVALID_LENGTH', self.platform.launch_start, 3,
                self.launch.godh_cert, None)

    def test_godh_certificate(self):
        for offset, fmt, value in ((0, '<I', 2), (8, '<I', 0x1002),
                                   (8, '<I', 0x7777), (0xC, '<I', 0x103),
                                   (0xC, '<I', 0x2), (0x10, '<I', 1),
                                   (0x14, '<B', 0x55)):
            _status(self, 'INVALID_CERTIFICATE', self.start, 0x40,
                    self._godh(offset, fmt, value))

    def test_godh_fields_the_firmware_ignores(self):
        # API version and signature slots: not checked (sev-tool: "the
        # firmware doesn't validate the GODH signature").
        for offset, fmt, value in ((4, '<H', 0x1603), (0x414, '<I', 0x1002),
                                   (0x500, '<I', 1)):
            guest = self.start(godh=self._godh(offset, fmt, value))
            self.assertEqual((TEK, TIK), (guest.tek, guest.tik))

    def test_wrap_mac_then_policy_mac(self):
        e = _status(self, 'BAD_MEASUREMENT', self.start, 0x3, None,
                    sev_data.flip_bit(self.launch.session, 64 * 8))
        self.assertIn('wrap_mac', str(e))
        e = _status(self, 'BAD_MEASUREMENT', self.start, 0x1)
        self.assertIn('policy_mac', str(e))
        # The MACs come before the policy check.
        e = _status(self, 'BAD_MEASUREMENT', self.start, 0x43)

    def test_policy(self):
        platform = self.platform
        for policy in (0x43, 0x8003, (1 << 16) | (56 << 24) | 3,
                       (2 << 16) | 3):
            blob = self._session_for(policy)
            _status(self, 'POLICY_FAILURE', platform.launch_start, policy,
                    self.launch.godh_cert, blob)
        guest = platform.launch_start((1 << 16) | (55 << 24) | 3,
                                      self.launch.godh_cert,
                                      self._session_for((1 << 16) |
                                                        (55 << 24) | 3))
        self.assertEqual('LUPDATE', guest.state)
        no_es = psp.FakePlatform(es=False)
        _status(self, 'UNSUPPORTED', no_es.launch_start, 0x5, None, None)

    def _session_for(self, policy):
        # The owner side refuses reserved bits: MAC them by hand.
        blob = session.session_blob(
            self.platform._pdh_key.exchange(ec.ECDH(), _godh_key(
            ).public_key()), NONCE, WRAP_IV, TEK, TIK, 0)
        return blob[:96] + session.policy_mac(TIK, policy)

    def test_platform_state_and_key_sharing(self):
        first = self.platform.launch_start(0x1, None, None)
        self.assertEqual('WORKING', self.platform.state)
        self.assertEqual(0x1, self.platform.launch_start(
            0x1, None, None, share_with=first).policy)
        _status(self, 'POLICY_FAILURE', self.platform.launch_start, 0x3,
                None, None, self.platform.launch_start(0x3, None, None))
        _status(self, 'POLICY_FAILURE', self.platform.launch_start, 0x5,
                None, None, first)
        self.platform.shutdown()
        _status(self, 'INVALID_PLATFORM_STATE', self.start)
        self.platform.init()
        self.assertEqual('LUPDATE', self.start().state)

    def test_without_a_session_keys_are_zero(self):
        guest = self.platform.launch_start(0x1, None, None)
        self.assertEqual((bytes(16), bytes(16)), (guest.tek, guest.tik))

    def test_another_platform_refuses(self):
        other = psp.FakePlatform(root=self.platform.root)
        _status(self, 'BAD_MEASUREMENT', other.launch_start, 0x3,
                self.launch.godh_cert, self.launch.session)


class TestLaunchFlow(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.platform = psp.FakePlatform()
        launch = session.new_session(_pdh(self.platform), 0x7)
        self.launch = launch
        self.guest = self.platform.launch_start(0x7, launch.godh_cert,
                                                launch.session)

    def test_update_checks(self):
        g = self.guest
        _status(self, 'INVALID_LENGTH', g.launch_update_data, b'')
        _status(self, 'INVALID_LENGTH', g.launch_update_data, b'x' * 15)
        plain = self.platform.launch_start(0x3, None, None)
        _status(self, 'POLICY_FAILURE', plain.launch_update_vmsa,
                bytes(4096))
        _status(self, 'INVALID_LENGTH', g.launch_update_vmsa, bytes(4080))

    def test_measure_secret_finish(self):
        firmware, vmsa = b'F' * 8192, b'V' * 4096
        self.guest.launch_update_from_image(firmware, b'', [vmsa, vmsa])
        _status(self, 'INVALID_GUEST_STATE', self.guest.launch_security_info)
        self.guest.launch_measure()
        self.assertEqual('LSECRET', self.guest.state)
        _status(self, 'INVALID_GUEST_STATE', self.guest.launch_update_data,
                firmware)
        _status(self, 'INVALID_GUEST_STATE', self.guest.launch_measure)
        info = self.guest.launch_security_info()
        self.assertEqual(
            {'sev-api-major': 1, 'sev-api-minor': 55, 'sev-build-id': 21,
             'sev-policy': 0x7}, {k: v for k, v in info.items()
                                  if k != 'sev-measurement'})
        report = measurement.launch_report(
            info['sev-measurement'], 1, 55, 21, 0x7)
        self.assertTrue(measurement.measurement_matches(
            self.launch.tik, report,
            measurement.launch_digest(firmware, b'', vmsa * 2)))
        table = secret.secret_table([(secret.LUKS_KEY_GUID, b'pw')])
        built = secret.build_launch_secret(self.launch.tek, self.launch.tik,
                                           report.mac, table, bytes(16))
        g = self.guest
        _status(self, 'INVALID_LENGTH', g.launch_secret, built.header[:-1],
                built.payload)
        _status(self, 'INVALID_LENGTH', g.launch_secret, built.header,
                built.payload[:-1])
        _status(self, 'INVALID_LENGTH', g.launch_secret, built.header,
                built.payload, len(built.payload) + 16)
        _status(self, 'INVALID_LENGTH', g.launch_secret, built.header,
                bytes(16384 + 16))
        compressed = b'\1' + built.header[1:]
        _status(self, 'BAD_MEASUREMENT', g.launch_secret, compressed,
                built.payload)
        g.launch_secret(built.header, built.payload)
        self.assertEqual(table, g.secret_table)
        g.launch_finish()
        self.assertEqual('RUNNING', g.state)
        _status(self, 'INVALID_GUEST_STATE', g.launch_secret, built.header,
                built.payload)

    def test_compressed_flag_after_the_mac(self):
        self.guest.launch_update_data(b'F' * 16)
        mac = self.guest.launch_measure()[:32]
        iv = bytes(16)
        payload = bytes(16)
        mac_ok = secret.header_mac(self.launch.tik, 1, iv, 16, payload, mac)
        header = struct.pack('<I', 1) + iv + mac_ok
        _status(self, 'UNSUPPORTED', self.guest.launch_secret, header,
                payload)

    def test_security_info_is_base64_of_48(self):
        self.guest.launch_update_data(b'F' * 16)
        measured = self.guest.launch_measure(bytes(16))
        self.assertEqual(48, len(measured))
        self.assertEqual(measured, base64.b64decode(
            self.guest.launch_security_info()['sev-measurement']))


class TestFakePlatform(testtools.TestCase):

    def test_sev_info(self):
        platform = psp.FakePlatform()
        info = platform.get_sev_info()
        self.assertEqual(platform.pdh_cert, base64.b64decode(info['pdh']))
        self.assertEqual(platform.pek_cert + platform.oca_cert +
                         platform.cek_cert,
                         base64.b64decode(info['cert-chain']))
        self.assertEqual(64, len(base64.b64decode(info['cpu0-id'])))
        self.assertEqual((47, 1, 15, 494), (
            info['cbitpos'], info['reduced-phys-bits'], info['max-guests'],
            info['max-es-guests']))
        for cert in (platform.pdh_cert, platform.pek_cert, platform.oca_cert,
                     platform.cek_cert):
            self.assertEqual(2084, len(cert))
            self.assertEqual((1, 55), (cert[4], cert[5]))
