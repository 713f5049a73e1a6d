"""``nova-sev session``: the files it writes, the chain it checks first,
and the hostile inputs it refuses without writing anything.
"""

import base64
import json
import os
import stat
import struct

import fixtures
import testtools

from nova_sev.attestation import secret
from nova_sev.attestation import sev_cert
from nova_sev.cmd import common
from nova_sev.tests.fixtures import psp
from nova_sev.tests.unit.attestation import cli
from nova_sev.tests.unit.attestation import sev_data

SUFFIXES = ('_godh.b64', '_session.b64', '_tek.bin', '_tik.bin')


class SessionTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.name = os.path.join(self.dir, 'guest')

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def session(self, *args):
        return cli.run(self, ['session', '--name', self.name] + list(args))

    def read(self, suffix):
        with open(self.name + suffix, 'rb') as f:
            return f.read()

    def assertNothingWritten(self, before):
        self.assertEqual(sorted(before), sorted(os.listdir(self.dir)))


class TestSession(SessionTestCase):

    def setUp(self):
        super().setUp()
        self.platform = psp.FakePlatform()
        self.pdh = self.write('pdh', self.platform.pdh_cert)
        self.chain = self.write('chain', self.platform.cert_chain)
        self.ask = self.write('ask', self.platform.root.ask)
        self.ark = self.write('ark', self.platform.root.ark)

    def test_writes_what_sevctl_writes(self):
        result = self.session(self.pdh, '3')
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        self.assertIn('Session for policy 0x0003 (NODBG,NOKS) written',
                      result.out)
        self.assertIn('The PDH was NOT verified', result.out)
        godh = base64.b64decode(self.read('_godh.b64'), validate=True)
        blob = base64.b64decode(self.read('_session.b64'), validate=True)
        self.assertEqual((2780, 172), (len(self.read('_godh.b64')),
                                       len(self.read('_session.b64'))))
        self.assertEqual((2084, 128), (len(godh), len(blob)))
        for suffix in ('_tek.bin', '_tik.bin'):
            self.assertEqual(16, len(self.read(suffix)))
            mode = stat.S_IMODE(os.stat(self.name + suffix).st_mode)
            self.assertEqual(0o600, mode)
        guest = self.platform.launch_start(3, godh, blob)
        self.assertEqual((self.read('_tek.bin'), self.read('_tik.bin')),
                         (guest.tek, guest.tik))
        # No temporary file is left beside them.
        self.assertEqual(sorted(['pdh', 'chain', 'ask', 'ark'] + [
            'guest' + s for s in SUFFIXES]), sorted(os.listdir(self.dir)))

    def test_default_name_and_hex_policy(self):
        cwd = os.getcwd()
        self.addCleanup(os.chdir, cwd)
        os.chdir(self.dir)
        result = cli.run(self, ['session', self.pdh, '0x0005'])
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        for suffix in SUFFIXES:
            self.assertTrue(os.path.exists(os.path.join(self.dir,
                                                        'vm' + suffix)))
        with open(os.path.join(self.dir, 'vm_godh.b64'), 'rb') as f:
            godh = base64.b64decode(f.read())
        with open(os.path.join(self.dir, 'vm_session.b64'), 'rb') as f:
            blob = base64.b64decode(f.read())
        self.assertEqual(5, self.platform.launch_start(5, godh, blob).policy)

    def test_base64_pdh_as_libvirt_gives_it(self):
        info = self.platform.get_sev_info()
        pdh = self.write('pdh.b64', info['pdh'].encode() + b'\n')
        chain = self.write('chain.b64', info['cert-chain'].encode())
        result = self.session(pdh, '1', '--cert-chain', chain, '--ask',
                              self.ask, '--ark', self.ark)
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        self.assertIn('PDH verified', result.out)

    def test_json(self):
        result = self.session(self.pdh, '0x1', '--cert-chain', self.chain,
                              '--ask', self.ask, '--ark', self.ark,
                              '--format', 'json')
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        out = json.loads(result.out)
        self.assertEqual({'godh': self.name + '_godh.b64',
                          'session': self.name + '_session.b64',
                          'tek': self.name + '_tek.bin',
                          'tik': self.name + '_tik.bin'}, out['files'])
        self.assertEqual('0x0001', out['policy'])
        self.assertTrue(out['pdh_verified'])
        self.assertEqual('1.55', out['pdh_api_version'])
        result = self.session(self.pdh, '1', '--format', 'json')
        self.assertFalse(json.loads(result.out)['pdh_verified'])
        self.assertIsNone(json.loads(result.out)['root'])

    def test_sevctl_chain_with_the_pdh(self):
        root = self.platform.root
        for name, data in (
                ('sevctl', self.platform.sevctl_chain),
                # sevctl export --full: then ASK | ARK.
                ('full', self.platform.sevctl_chain + root.ask + root.ark)):
            chain = self.write(name, data)
            result = self.session(self.pdh, '1', '--cert-chain', chain,
                                  '--ask', self.ask, '--ark', self.ark)
            self.assertEqual(common.EXIT_OK, result.code, result.err)
        # A full chain whose ASK and ARK are not the trusted root's.
        other = psp.FakeAmdRoot()
        chain = self.write('foreign', self.platform.sevctl_chain +
                           other.ask + other.ark)
        result = self.session(self.pdh, '1', '--cert-chain', chain, '--ask',
                              self.ask, '--ark', self.ark)
        self.assertEqual(common.EXIT_NOT_AUTHENTIC, result.code, result.err)
        self.assertIn('not those of a trusted AMD root', result.err)

    def test_sevctl_test_pdh(self):
        # virtee/sevctl-test: "sevctl session session-test-pdh.cert 3".
        result = self.session(
            sev_data.path('sevctl-test-session-test-pdh.cert'), '3')
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        self.assertEqual(2084, len(base64.b64decode(self.read('_godh.b64'))))

    def test_real_rome_chain_under_the_builtin_root(self):
        good = sev_data.path('sevctl-test-sev-good.chain')
        pdh = self.write('rome-pdh', sev_data.read(
            'sevctl-test-sev-good.chain')[:sev_cert.CERT_LEN])
        result = self.session(pdh, '3', '--cert-chain', good)
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        self.assertIn('PDH verified: PEK, OCA and CEK up to the AMD rome '
                      'root', result.out)

    def test_not_authentic_exits_3_and_writes_nothing(self):
        other = psp.FakePlatform(root=self.platform.root)
        other_pdh = self.write('other-pdh', other.pdh_cert)
        rome_pdh = self.write('rome-pdh', sev_data.platform('rome')['pdh'])
        naples_chain = self.write('naples-chain',
                                  sev_data.cert_chain('naples'))
        foreign_ask = self.write('ask2', psp.FakeAmdRoot().ask)
        before = os.listdir(self.dir)
        for args, reason in (
                # The fake platform is not under AMD's roots.
                ([self.pdh, '1', '--cert-chain', self.chain],
                 'is not signed by the ASK of any trusted AMD root'),
                # Another platform's PDH with this chain.
                ([other_pdh, '1', '--cert-chain', self.chain, '--ask',
                  self.ask, '--ark', self.ark],
                 'the PDH is not signed by the PEK'),
                ([rome_pdh, '1', '--cert-chain', naples_chain],
                 'the PDH is not signed by the PEK'),
                # A root whose ARK did not sign its ASK.
                ([self.pdh, '1', '--cert-chain', self.chain, '--ask',
                  foreign_ask, '--ark', self.ark],
                 'is not signed by the ARK')):
            result = self.session(*args)
            self.assertEqual(common.EXIT_NOT_AUTHENTIC, result.code,
                             result.err)
            self.assertIn('NOT authentic', result.err)
            self.assertIn(reason, result.err)
            self.assertNothingWritten(before)

    def test_one_bit_of_the_pdh_never_gives_a_session(self):
        before = os.listdir(self.dir) + ['flipped']
        for bit in (0x0, 0x40, 0x60, 0x88, 0xA0, 0x100, 0x3FF, 0x400, 0x1000,
                    0x1200, 0x20A0, 0x2100, 0x3000, 0x3200):
            flipped = self.write('flipped', sev_data.flip_bit(
                self.platform.pdh_cert, bit))
            result = self.session(flipped, '3', '--cert-chain', self.chain,
                                  '--ask', self.ask, '--ark', self.ark)
            self.assertIn(result.code, (common.EXIT_ERROR,
                                        common.EXIT_NOT_AUTHENTIC),
                          'bit 0x%x' % bit)
            self.assertNothingWritten(before)


class TestHostileInput(SessionTestCase):
    """Each exits 2 with its reason, and writes nothing."""

    def setUp(self):
        super().setUp()
        self.platform = psp.FakePlatform()
        self.pdh = self.write('pdh', self.platform.pdh_cert)
        self.chain = self.write('chain', self.platform.cert_chain)

    def _cert(self, offset, fmt, value, data=None):
        out = bytearray(data or self.platform.pdh_cert)
        struct.pack_into(fmt, out, offset, value)
        return bytes(out)

    def test_refused_by_name(self):
        p = self.platform
        fifo = os.path.join(self.dir, 'fifo')
        os.mkfifo(fifo)
        cases = [
            ([self.write('short', p.pdh_cert[:-100]), '1'],
             'it is 1984 bytes; an SEV certificate is 2084'),
            ([self.write('long', p.pdh_cert + b'\0'), '1'],
             'it is 2085 bytes'),
            ([self.write('huge', p.pdh_cert * 40), '1'],
             'is larger than 65536 bytes'),
            ([self.write('offcurve', self._cert(0x14, '<I', 7)), '1'],
             'its public key is not a point on P-384'),
            ([self.write('curve', self._cert(0x10, '<I', 1)), '1'],
             'its key is on curve 1'),
            ([self.write('pek', p.pek_cert), '1'],
             'it is a PEK certificate (usage 0x1002) where a PDH belongs'),
            ([self.write('usage', self._cert(8, '<I', 0x1234)), '1'],
             'key usage 0x1234 is not that of a platform key'),
            ([self.write('algo', self._cert(0xC, '<I', 0x2)), '1'],
             'a PDH key cannot have algorithm 0x2'),
            ([self.write('version', self._cert(0, '<I', 2)), '1'],
             'it is neither a raw certificate'),
            ([self.write('slot', self._cert(0x414, '<I', 0x1000)), '1'],
             'a slot is either empty'),
            ([self.write('latin1', 'r\u00e9seau'.encode('latin-1')), '1'],
             'nor base64 text (byte 0xe9 at offset 1)'),
            ([self.write('text', b'not base64!'), '1'],
             'nor base64'),
            ([self.write('empty', b''), '1'], 'it is empty'),
            ([fifo, '1'], 'PDH %s is not a regular file (it is a FIFO)'
             % fifo),
            ([self.dir, '1'], 'is not a regular file (it is a directory)'),
            ([os.path.join(self.dir, 'missing'), '1'], 'cannot read PDH'),
            ([self.pdh, '0x40'], 'bits 6-15 (0x0040 here) are reserved'),
            ([self.pdh, 'three'], "Invalid SEV POLICY 'three'"),
            ([self.pdh, '0x100000000'], 'Invalid SEV POLICY'),
            ([self.pdh, '1', '--cert-chain', self.write(
                'reversed', p.cek_cert + p.oca_cert + p.pek_cert)],
             'it is a CEK certificate (usage 0x1004) where a PEK belongs'),
            ([self.pdh, '1', '--cert-chain', self.write(
                'two', p.pek_cert + p.oca_cert)],
             'it is 4168 bytes; a chain is PEK|OCA|CEK'),
            ([self.pdh, '1', '--cert-chain', self.write(
                'badoca', p.pek_cert + self._cert(0x10, '<I', 9, p.oca_cert)
                + p.cek_cert)], 'certificate 2 of PEK|OCA|CEK'),
            ([self.pdh, '1', '--cert-chain', self.write(
                'binary', b'\x80\x81' * 10)], 'nor base64 text'),
            ([self.pdh, '1', '--cert-chain', fifo], 'it is a FIFO'),
            ([self.pdh, '1', '--cert-chain', self.chain, '--ask',
              self.write('askonly', p.root.ask)],
             '--ask and --ark trust another root together'),
            ([self.pdh, '1', '--ask', self.write('ask', p.root.ask),
              '--ark', self.write('ark', p.root.ark)],
             'give it too'),
            ([self.pdh, '1', '--cert-chain', self.chain, '--ask',
              self.write('arkasask', p.root.ark), '--ark',
              self.write('ark2', p.root.ark)],
             'it is an ARK where the ASK belongs'),
        ]
        before = os.listdir(self.dir)
        for args, reason in cases:
            result = self.session(*args)
            self.assertEqual(common.EXIT_ERROR, result.code,
                             (args, result.err))
            self.assertIn(reason, result.err)
            self.assertNothingWritten(before)

    def test_cannot_write_leaves_nothing(self):
        self.name = os.path.join(self.dir, 'no', 'such', 'dir', 'vm')
        before = os.listdir(self.dir)
        result = self.session(self.pdh, '1')
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('cannot write', result.err)
        self.assertNothingWritten(before)

    def test_partly_writable_leaves_nothing(self):
        # The TIK's name is taken by a directory: the rename of the last
        # file fails after the others are written to temporary files.
        os.mkdir(self.name + '_tik.bin')
        before = os.listdir(self.dir)
        result = self.session(self.pdh, '1')
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('cannot write', result.err)
        self.assertNothingWritten(before)


class TestOwnerStepsChain(SessionTestCase):
    """session -> verify-measurement -> build-secret with --name, no
    renaming, against the PSP double.
    """

    def test_name_reads_the_session_keys(self):
        platform = psp.FakePlatform()
        pdh = self.write('pdh', platform.pdh_cert)
        self.assertEqual(0, self.session(pdh, '0x3').code)
        with open(self.name + '_godh.b64') as f:
            godh = base64.b64decode(f.read())
        with open(self.name + '_session.b64') as f:
            blob = base64.b64decode(f.read())
        guest = platform.launch_start(0x3, godh, blob)
        firmware = self.write('firmware', b'OVMF' * 2048)
        guest.launch_update_data(b'OVMF' * 2048)
        guest.launch_measure()
        info = guest.launch_security_info()
        report = ['--measurement', info['sev-measurement'],
                  '--api-major', str(info['sev-api-major']),
                  '--api-minor', str(info['sev-api-minor']),
                  '--build-id', str(info['sev-build-id']),
                  '--policy', str(info['sev-policy']),
                  '--firmware', firmware]
        result = cli.run(self, ['verify-measurement', '--name', self.name] +
                         report)
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        luks = self.write('luks', b'passphrase')
        header, payload = (os.path.join(self.dir, 'hdr'),
                           os.path.join(self.dir, 'payload'))
        result = cli.run(self, ['build-secret', '--name', self.name,
                                '--luks-key', luks, '--header-out', header,
                                '--payload-out', payload] + report)
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        with open(header) as f:
            hdr = base64.b64decode(f.read())
        with open(payload) as f:
            ct = base64.b64decode(f.read())
        guest.launch_secret(hdr, ct)
        self.assertEqual([(secret.LUKS_KEY_GUID, b'passphrase')],
                         secret.parse_secret_table(guest.secret_table))

    def test_name_conflicts_and_missing_files(self):
        files = self.useFixture(cli.OwnerFiles())
        base = cli.report_args() + ['--firmware', files.path('firmware')]
        for args, reason in (
                (['--name', self.name, '--tk', files.path('tk')],
                 '--tk and --name each give the keys'),
                (['--name', self.name, '--tik', files.path('tik')],
                 '--name and --tik/--tek each give the keys'),
                (['--name', self.name], 'cannot read --name %s_tik.bin'
                 % self.name)):
            result = cli.run(self, ['verify-measurement'] + base + args)
            self.assertEqual(common.EXIT_ERROR, result.code)
            self.assertIn(reason, result.err)
        with open(self.name + '_tik.bin', 'wb') as f:
            f.write(files.path('tik').encode()[:16].ljust(16, b'x'))
        with open(self.name + '_tek.bin', 'wb') as f:
            f.write(b'short')
        result = cli.run(self, ['build-secret', '--name', self.name,
                                '--luks-key', files.path('luks'),
                                '--header-out', files.path('h'),
                                '--payload-out', files.path('p')] + base)
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('The TEK --name %s_tek.bin is 5 bytes' % self.name,
                      result.err)
