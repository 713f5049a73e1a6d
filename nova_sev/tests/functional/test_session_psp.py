"""The guest owner's four steps against the PSP double: ``nova-sev
session`` run as its own process, LAUNCH_START, LAUNCH_MEASURE checked by
``verify-measurement``, and a ``build-secret`` secret opened by
LAUNCH_SECRET. Each step fails closed when one bit of what crosses the
host changes: the session, the GODH, the PDH, the policy, the
measurement, the secret header and payload.
"""

import base64
import os
import subprocess
import sys

import fixtures
import testtools

from nova_sev.attestation import secret
from nova_sev.cmd import common
from nova_sev.tests.fixtures import psp
from nova_sev.tests.unit.attestation import cli
from nova_sev.tests.unit.attestation import sev_data

POLICY = 0x0007
FIRMWARE = bytes(range(256)) * 64
VMSA = b'\x5a' * 4096
# GODH bytes the firmware reads (sev_cert_sanity_check and the ECDH):
# version, usage, algorithm, curve, and the 48 used bytes of qx and qy.
GODH_CHECKED = ([(0x0, 4), (0x8, 4), (0xC, 4), (0x10, 4), (0x14, 48),
                 (0x5C, 48)])
# And bytes it does not: the API version, reserved, the unused top of
# the coordinates, the rest of the key union and the signature slots.
GODH_IGNORED = (0x4, 0x6, 0x14 + 60, 0x200, 0x414, 0x500, 0x61C, 0x800)


def nova_sev_process(args: list[str]) -> subprocess.CompletedProcess:
    """``nova-sev ARGS`` in a process of its own."""
    return subprocess.run([sys.executable, '-m', 'nova_sev.cmd.sev'] + args,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONUTF8='1'))


class OwnerSession(fixtures.Fixture):
    """A platform, and the session ``nova-sev session`` made for it after
    verifying its chain under the platform's test root.
    """

    def __init__(self, platform: psp.FakePlatform, policy: int = POLICY):
        self.platform = platform
        self.policy = policy

    def _setUp(self):
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.name = os.path.join(self.dir, 'guest')
        p = self.platform
        self.pdh = self.write('pdh', p.pdh_cert)
        self.args = ['--cert-chain', self.write('chain', p.cert_chain),
                     '--ask', self.write('ask', p.root.ask),
                     '--ark', self.write('ark', p.root.ark)]
        self.result = nova_sev_process(['session', '--name', self.name] +
                                       self.args + [self.pdh,
                                                    hex(self.policy)])
        if self.result.returncode != 0:
            raise AssertionError(self.result.stderr)
        self.godh = base64.b64decode(self.read('_godh.b64'), validate=True)
        self.session = base64.b64decode(self.read('_session.b64'),
                                        validate=True)
        self.tek, self.tik = self.read('_tek.bin'), self.read('_tik.bin')

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.dir, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def read(self, suffix: str) -> bytes:
        with open(self.name + suffix, 'rb') as f:
            return f.read()


def _bits(offset: int, length: int) -> range:
    return range(offset * 8, (offset + length) * 8)


class TestRoundTrip(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.platform = psp.FakePlatform()
        self.owner = self.useFixture(OwnerSession(self.platform))

    def start(self, policy=POLICY, godh=None, session=None):
        return self.platform.launch_start(
            policy, self.owner.godh if godh is None else godh,
            self.owner.session if session is None else session)

    def measured_guest(self):
        guest = self.start()
        guest.launch_update_from_image(FIRMWARE, b'', [VMSA, VMSA])
        guest.launch_measure()
        return guest

    def report_args(self, guest, measured=None):
        info = guest.launch_security_info()
        firmware = self.owner.write('firmware', FIRMWARE)
        vmsa = self.owner.write('vmsa', VMSA)
        return ['--measurement', measured or info['sev-measurement'],
                '--api-major', str(info['sev-api-major']),
                '--api-minor', str(info['sev-api-minor']),
                '--build-id', str(info['sev-build-id']),
                '--policy', hex(info['sev-policy']),
                '--firmware', firmware, '--num-cpus', '2',
                '--vmsa-cpu0', vmsa, '--vmsa-cpu1', vmsa,
                '--name', self.owner.name]

    def test_said_verified(self):
        self.assertIn('PDH verified', self.owner.result.stdout)

    def test_session_opens_to_the_files_keys(self):
        guest = self.start()
        self.assertEqual((self.owner.tek, self.owner.tik),
                         (guest.tek, guest.tik))

    def test_one_bit_of_the_session(self):
        for bit in _bits(0, len(self.owner.session)):
            e = self.assertRaises(psp.PspError, self.start, POLICY, None,
                                  sev_data.flip_bit(self.owner.session, bit))
            self.assertEqual('BAD_MEASUREMENT', e.name, 'bit %d' % bit)

    def test_one_bit_of_the_godh(self):
        for offset, length in GODH_CHECKED:
            for bit in _bits(offset, length):
                e = self.assertRaises(psp.PspError, self.start, POLICY,
                                      sev_data.flip_bit(self.owner.godh,
                                                        bit))
                self.assertIn(e.name, ('INVALID_CERTIFICATE',
                                       'BAD_MEASUREMENT'), 'bit %d' % bit)
        # What the firmware does not read changes nothing it derives:
        # the session still opens, to the same keys.
        for offset in GODH_IGNORED:
            guest = self.start(godh=sev_data.flip_bit(self.owner.godh,
                                                      offset * 8))
            self.assertEqual(self.owner.tik, guest.tik)

    def test_one_bit_of_the_policy(self):
        for bit in range(32):
            e = self.assertRaises(psp.PspError, self.start,
                                  POLICY ^ (1 << bit))
            self.assertEqual('BAD_MEASUREMENT', e.name, 'bit %d' % bit)

    def test_one_bit_of_the_pdh(self):
        # Flipped where the chain check notices: the signed body, the
        # signature, the unused bytes.
        for bit in (0x10 * 8, 0x30 * 8 + 3, 0x420 * 8 + 5, 0x700 * 8):
            flipped = self.owner.write('pdh-flipped', sev_data.flip_bit(
                self.platform.pdh_cert, bit))
            name = os.path.join(self.owner.dir, 'flipped')
            result = nova_sev_process(['session', '--name', name] +
                                      self.owner.args + [flipped, '7'])
            self.assertIn(result.returncode, (common.EXIT_ERROR,
                                              common.EXIT_NOT_AUTHENTIC),
                          result.stdout)
            self.assertFalse([f for f in os.listdir(self.owner.dir)
                              if f.startswith('flipped')])

    def test_another_platform_does_not_open_it(self):
        other = psp.FakePlatform(root=self.platform.root)
        e = self.assertRaises(psp.PspError, other.launch_start, POLICY,
                              self.owner.godh, self.owner.session)
        self.assertEqual('BAD_MEASUREMENT', e.name)

    def test_measurement_verifies(self):
        guest = self.measured_guest()
        result = cli.run(self, ['verify-measurement'] +
                         self.report_args(guest))
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        raw = base64.b64decode(guest.launch_security_info()[
            'sev-measurement'])
        for bit in range(0, 48 * 8, 7):
            flipped = base64.b64encode(sev_data.flip_bit(raw, bit)).decode()
            result = cli.run(self, ['verify-measurement'] +
                             self.report_args(guest, flipped))
            self.assertEqual(common.EXIT_REFUSED, result.code,
                             'bit %d' % bit)

    def test_secret_decrypts_to_the_owners_table(self):
        guest = self.measured_guest()
        luks = self.owner.write('luks', b'correct horse battery staple')
        header_path = os.path.join(self.owner.dir, 'header')
        payload_path = os.path.join(self.owner.dir, 'payload')
        result = cli.run(self, ['build-secret', '--luks-key', luks,
                                '--header-out', header_path,
                                '--payload-out', payload_path] +
                         self.report_args(guest))
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        with open(header_path) as f:
            header = base64.b64decode(f.read())
        with open(payload_path) as f:
            payload = base64.b64decode(f.read())
        for bit in _bits(0, len(header)):
            e = self.assertRaises(psp.PspError, guest.launch_secret,
                                  sev_data.flip_bit(header, bit), payload)
            self.assertEqual('BAD_MEASUREMENT', e.name, 'bit %d' % bit)
        for bit in _bits(0, len(payload)):
            e = self.assertRaises(psp.PspError, guest.launch_secret, header,
                                  sev_data.flip_bit(payload, bit))
            self.assertEqual('BAD_MEASUREMENT', e.name, 'bit %d' % bit)
        self.assertIsNone(guest.secret_table)
        guest.launch_secret(header, payload)
        self.assertEqual(
            [(secret.LUKS_KEY_GUID, b'correct horse battery staple')],
            secret.parse_secret_table(guest.secret_table))
        guest.launch_finish()
        self.assertEqual('RUNNING', guest.state)

    def test_secret_for_another_launch_refused(self):
        # A secret built for one launch's measurement does not open in a
        # second launch of the same session (a new mnonce, a new M).
        first = self.measured_guest()
        luks = self.owner.write('luks', b'k')
        out = [os.path.join(self.owner.dir, n) for n in ('h', 'p')]
        result = cli.run(self, ['build-secret', '--luks-key', luks,
                                '--header-out', out[0],
                                '--payload-out', out[1]] +
                         self.report_args(first))
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        second = self.measured_guest()
        with open(out[0]) as f:
            header = base64.b64decode(f.read())
        with open(out[1]) as f:
            payload = base64.b64decode(f.read())
        e = self.assertRaises(psp.PspError, second.launch_secret, header,
                              payload)
        self.assertEqual('BAD_MEASUREMENT', e.name)
