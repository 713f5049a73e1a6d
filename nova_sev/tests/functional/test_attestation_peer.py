"""nova-sev's attestation against its peer, libvirt's own implementation.

Debian's ``virt-qemu-sev-validate`` (libvirt 9.0, package
libvirt-clients-qemu) validates SEV launch measurements offline and builds
launch secrets. These tests run it, with the system Python that has its
imports (python3-cryptography, python3-lxml, python3-libvirt), on generated
launches and hold nova-sev to the same verdict every time: valid launches,
and launches changed by one measurement bit, the policy, the firmware
build, the firmware image, the API version, the kernel, initrd or command
line, and the key. Secrets are checked both ways; the peer writes them
without a live domain (``--secret-header``/``--secret-payload`` in its
offline mode), so no fake libvirt is needed for it. Last, the launches
of a real session: ``nova-sev session`` wraps the keys for a PSP double's
PDH, the double measures with the TIK it unwrapped, and the peer accepts
that measurement and builds secrets the double opens.

Nothing here skips: a missing peer is a test error, fixed by
``tools/setup-env.sh --test`` (bindep's test profile installs it).
"""

import base64
import concurrent.futures
import hashlib
import hmac
import os
import random
import subprocess
import uuid

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers import modes
import fixtures
import testtools

from nova_sev.attestation import measurement
from nova_sev.attestation import secret
from nova_sev.cmd import common
from nova_sev.tests.fixtures import psp
from nova_sev.tests.functional import test_session_psp
from nova_sev.tests.unit.attestation import cli

PEER = '/usr/bin/virt-qemu-sev-validate'
SYSTEM_PYTHON = '/usr/bin/python3'
# A real OVMF build (package ovmf) for some of the cases.
REAL_OVMF = '/usr/share/OVMF/OVMF_CODE_4M.fd'
PEER_WORKERS = 2

# Generated cases per test; together at least 200 launches compared with
# the peer.
FIRMWARE_CASES = 90
KERNEL_CASES = 90
SEV_ES_CASES = 40
SECRET_CASES = 12

_peer_checked = False


def require_peer() -> None:
    """Fail (never skip) unless the peer runs with the system Python."""
    global _peer_checked
    if _peer_checked:
        return
    missing = [p for p in (PEER, SYSTEM_PYTHON, REAL_OVMF)
               if not os.path.exists(p)]
    if not missing:
        proc = subprocess.run(
            [SYSTEM_PYTHON, '-c', 'import cryptography, lxml, libvirt'],
            capture_output=True, text=True)
        if proc.returncode != 0:
            missing.append('the peer\'s imports (%s)'
                           % proc.stderr.strip().splitlines()[-1])
    if missing:
        raise AssertionError(
            'the attestation peer cannot run: missing %s. Run '
            '"tools/setup-env.sh --test" (bindep test profile: '
            'libvirt-clients-qemu, ovmf, python3-cryptography, python3-lxml, '
            'python3-libvirt)' % ', '.join(missing))
    _peer_checked = True


def run_peer(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEM_PYTHON, PEER] + args, capture_output=True,
                          text=True, timeout=120,
                          env=dict(os.environ, PYTHONUTF8='1'))


class Launch:
    """One generated launch: the guest owner's files, the numbers the
    host reports, and the measurement the SEV firmware would give.
    """

    def __init__(self, rng: random.Random, directory: str, kernel: bool,
                 sev_es: bool, real_firmware: bool):
        self.dir = directory
        self.tek, self.tik = rng.randbytes(16), rng.randbytes(16)
        self.write('tk', self.tek + self.tik)
        if real_firmware:
            self.firmware_path = REAL_OVMF
            with open(REAL_OVMF, 'rb') as f:
                firmware = f.read()
        else:
            firmware = rng.randbytes(rng.randint(1, 64 * 1024))
            self.firmware_path = self.write('firmware', firmware)
        self.api_major, self.api_minor = rng.randint(0, 255), rng.randint(
            0, 255)
        self.build_id = rng.randint(0, 255)
        self.policy = rng.choice((0x33, 0x3, 0x1, 0x0, 0x31, 0x13))
        self.files = {}
        table = b''
        if kernel:
            kernel_data = rng.randbytes(rng.randint(1, 8192))
            initrd = (rng.randbytes(rng.randint(0, 8192))
                      if rng.random() < 0.7 else None)
            alphabet = 'abcxyz019=_-/. "\'' + ('\u00e9\u4e2d'
                                               if rng.random() < 0.2 else '')
            cmdline = (''.join(rng.choice(alphabet) for _ in range(
                rng.randint(0, 60))) if rng.random() < 0.8 else None)
            self.files['--kernel'] = self.write('kernel', kernel_data)
            if initrd is not None:
                self.files['--initrd'] = self.write('initrd', initrd)
            if cmdline is not None:
                self.files['--cmdline'] = cmdline
            table = measurement.kernel_hashes_table(kernel_data, initrd,
                                                    cmdline)
        vmsa = b''
        if sev_es:
            self.policy |= measurement.POLICY_ES
            num_cpus = rng.randint(1, 4)
            cpu0 = rng.randbytes(4096)
            self.files['--num-cpus'] = str(num_cpus)
            self.files['--vmsa-cpu0'] = self.write('vmsa0', cpu0)
            # Given even for one vCPU: virt-qemu-sev-validate 9.0 fails
            # ("unsupported operand type(s) for *: 'NoneType' and 'int'")
            # without it.
            cpu1 = rng.randbytes(4096)
            self.files['--vmsa-cpu1'] = self.write('vmsa1', cpu1)
            vmsa = measurement.vmsa_pages(num_cpus, cpu0, cpu1)
        # The SEV firmware's side, from the SEV API's formula (written out
        # here rather than taken from nova_sev's measurement module). The
        # hashes table and VMSA pages are nova-sev's: the peer, which
        # builds its own, is what checks them.
        digest = hashlib.sha256(firmware + table + vmsa).digest()
        mnonce = rng.randbytes(16)
        message = (bytes([4, self.api_major, self.api_minor, self.build_id])
                   + self.policy.to_bytes(4, 'little') + digest + mnonce)
        mac = hmac.new(self.tik, message, hashlib.sha256).digest()
        self.measurement = base64.b64encode(mac + mnonce).decode()

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.dir, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def args(self, nova: bool) -> list[str]:
        """The command line for nova-sev or the peer (decimal policy)."""
        args = ['--measurement', self.measurement,
                '--api-major', str(self.api_major),
                '--api-minor', str(self.api_minor),
                '--build-id', str(self.build_id),
                '--policy', hex(self.policy) if nova else str(self.policy),
                '--firmware', self.firmware_path,
                '--tk', os.path.join(self.dir, 'tk')]
        for option, value in self.files.items():
            args += [option, value]
        return args


def _flip_bit(data: bytes, bit: int) -> bytes:
    changed = bytearray(data)
    changed[bit // 8 % len(changed)] ^= 1 << (bit % 8)
    return bytes(changed)


def mutate(launch: Launch, kind: str, rng: random.Random) -> None:
    """Change one thing between the launch and what the checkers get."""
    if kind == 'one-bit':
        raw = base64.b64decode(launch.measurement)
        launch.measurement = base64.b64encode(
            _flip_bit(raw, rng.randrange(len(raw) * 8))).decode()
    elif kind == 'wrong-policy':
        # Any bit but ES: a flipped ES bit changes what is measured, which
        # the SEV-ES cases cover.
        launch.policy ^= 1 << rng.choice([b for b in range(32) if b != 2])
    elif kind == 'wrong-build':
        launch.build_id = (launch.build_id + rng.randint(1, 255)) % 256
    elif kind == 'wrong-api':
        launch.api_minor = (launch.api_minor + 1) % 256
    elif kind == 'wrong-tik':
        tk = bytearray(launch.tek + launch.tik)
        tk[16 + rng.randrange(16)] ^= 1 << rng.randrange(8)
        launch.write('tk', bytes(tk))
    elif kind == 'wrong-firmware':
        with open(launch.firmware_path, 'rb') as f:
            data = f.read()
        launch.firmware_path = launch.write(
            'firmware-changed', _flip_bit(data, rng.randrange(len(data) * 8)))
    elif kind == 'wrong-kernel':
        with open(launch.files['--kernel'], 'rb') as f:
            data = f.read()
        launch.files['--kernel'] = launch.write(
            'kernel-changed', _flip_bit(data, rng.randrange(len(data) * 8)))
    elif kind == 'wrong-cmdline':
        launch.files['--cmdline'] = launch.files.get('--cmdline', '') + ' '
    elif kind == 'wrong-vmsa':
        with open(launch.files['--vmsa-cpu0'], 'rb') as f:
            data = f.read()
        launch.files['--vmsa-cpu0'] = launch.write(
            'vmsa0-changed', _flip_bit(data, rng.randrange(4096 * 8)))
    elif kind == 'wrong-cpus':
        launch.files['--num-cpus'] = str(int(launch.files['--num-cpus']) + 1)
    elif kind != 'valid':
        raise ValueError(kind)


class TestPeerAgreement(testtools.TestCase):
    """Both tools give the same verdict on every generated launch."""

    def setUp(self):
        super().setUp()
        require_peer()

    def _agree(self, seed: int, count: int, kinds: tuple[str, ...],
               kernel: bool, sev_es: bool) -> None:
        rng = random.Random(seed)
        root = self.useFixture(fixtures.TempDir()).path
        cases = []
        for n in range(count):
            directory = os.path.join(root, str(n))
            os.mkdir(directory)
            launch = Launch(rng, directory, kernel, sev_es,
                            real_firmware=(n % 30 == 0))
            kind = kinds[n % len(kinds)]
            mutate(launch, kind, rng)
            cases.append((kind, launch))
        with concurrent.futures.ThreadPoolExecutor(PEER_WORKERS) as pool:
            peers = list(pool.map(
                lambda case: run_peer(case[1].args(nova=False)), cases))
        verdicts = {}
        for (kind, launch), peer in zip(cases, peers):
            ours = cli.run(self, ['verify-measurement'] + launch.args(True))
            expected = common.EXIT_OK if kind == 'valid' else (
                common.EXIT_REFUSED)
            detail = '%s case in %s: peer %d (%s), nova-sev %d (%s%s)' % (
                kind, launch.dir, peer.returncode, peer.stderr.strip() or
                peer.stdout.strip(), ours.code, ours.out.strip(),
                ours.err.strip())
            self.assertEqual(peer.returncode, ours.code, detail)
            self.assertEqual(expected, ours.code, detail)
            verdicts[kind] = verdicts.get(kind, 0) + 1
        self.assertEqual(count, sum(verdicts.values()))
        self.assertEqual(set(kinds), set(verdicts))

    def test_firmware_only(self):
        self._agree(6001, FIRMWARE_CASES,
                    ('valid', 'one-bit', 'valid', 'wrong-policy',
                     'wrong-build', 'wrong-firmware', 'wrong-api',
                     'wrong-tik'), kernel=False, sev_es=False)

    def test_kernel_hashes(self):
        self._agree(6002, KERNEL_CASES,
                    ('valid', 'one-bit', 'wrong-policy', 'wrong-build',
                     'wrong-firmware', 'valid', 'wrong-kernel',
                     'wrong-cmdline'), kernel=True, sev_es=False)

    def test_sev_es(self):
        self._agree(6003, SEV_ES_CASES,
                    ('valid', 'one-bit', 'wrong-policy', 'wrong-vmsa',
                     'wrong-cpus', 'wrong-firmware', 'valid',
                     'wrong-build'), kernel=False, sev_es=True)

    def test_case_count(self):
        self.assertGreaterEqual(
            FIRMWARE_CASES + KERNEL_CASES + SEV_ES_CASES, 200)

    def test_bad_input_both_refuse(self):
        # Usage errors: both exit 2, neither gives a verdict.
        rng = random.Random(6004)
        launch = Launch(rng, self.useFixture(fixtures.TempDir()).path,
                        kernel=False, sev_es=False, real_firmware=False)
        short = launch.write('short-tk', b'x' * 31)
        base = launch.args(nova=True)
        tk = base.index('--tk') + 1
        cases = [
            base[:tk] + [short] + base[tk + 1:],
            base + ['--cmdline', 'no kernel'],
        ]
        for args in cases:
            peer_args = [str(launch.policy) if a == hex(launch.policy) else a
                         for a in args]
            peer = run_peer(peer_args)
            ours = cli.run(self, ['verify-measurement'] + args)
            self.assertEqual(common.EXIT_ERROR, peer.returncode, peer.stderr)
            self.assertEqual(common.EXIT_ERROR, ours.code, ours.err)


_PEER_TABLE_SCRIPT = '''
import importlib.machinery, sys, types, uuid
loader = importlib.machinery.SourceFileLoader('peer', %r)
peer = types.ModuleType('peer')
loader.exec_module(peer)
table = peer.SecretsTable()
for guid, path in zip(sys.argv[1::2], sys.argv[2::2]):
    table.load_secret(guid, path)
sys.stdout.write(table.build().hex())
''' % PEER


class TestPeerSecrets(testtools.TestCase):
    """Launch secrets agree both ways."""

    def setUp(self):
        super().setUp()
        require_peer()
        self.rng = random.Random(6005)

    def _secrets(self, launch: Launch, n: int) -> list[tuple[str, str]]:
        # Sizes vary so that some tables end on a 16-byte boundary.
        sources = []
        for i in range(n):
            name = 'luks-key' if i == 0 and self.rng.random() < 0.5 else str(
                uuid.UUID(bytes=self.rng.randbytes(16)))
            path = launch.write('secret%d' % i,
                                self.rng.randbytes(self.rng.randint(0, 200)))
            sources.append((name, path))
        return sources

    @staticmethod
    def _expected(sources):
        entries = []
        for name, path in sources:
            with open(path, 'rb') as f:
                entries.append((secret.secret_guid(name), f.read()))
        return entries

    def test_nova_sev_secret_opens_under_tek_and_tik(self):
        root = self.useFixture(fixtures.TempDir()).path
        for n in range(SECRET_CASES):
            directory = os.path.join(root, str(n))
            os.mkdir(directory)
            launch = Launch(self.rng, directory, kernel=n % 2 == 0,
                            sev_es=False, real_firmware=False)
            sources = self._secrets(launch, 1 + n % 4)
            out = ['--header-out', launch.write('header', b''),
                   '--payload-out', launch.write('payload', b'')]
            args = sum((['--secret', '%s=%s' % s] for s in sources), [])
            result = cli.run(self, ['build-secret'] + launch.args(True) +
                             args + out)
            self.assertEqual(common.EXIT_OK, result.code, result.err)
            with open(out[1]) as f:
                header = base64.b64decode(f.read(), validate=True)
            with open(out[3]) as f:
                payload = base64.b64decode(f.read(), validate=True)
            # Opened here with cryptography and hmac directly.
            flags, iv, mac = header[:4], header[4:20], header[20:]
            self.assertEqual(bytes(4), flags)
            dec = Cipher(algorithms.AES(launch.tek), modes.CTR(iv)).decryptor()
            table = dec.update(payload) + dec.finalize()
            measured = base64.b64decode(launch.measurement)[:32]
            length = len(payload).to_bytes(4, 'little')
            self.assertEqual(mac, hmac.new(
                launch.tik, b'\x01' + flags + iv + length + length +
                payload + measured, hashlib.sha256).digest())
            # The table is the peer's own SecretsTable for the same secrets
            # (the peer adds a whole block of padding to a table that is
            # already a multiple of 16 bytes; OVMF reads the length field).
            peer = subprocess.run(
                [SYSTEM_PYTHON, '-c', _PEER_TABLE_SCRIPT] + [
                    part for source in sources for part in source],
                capture_output=True, text=True, check=True)
            peer_table = bytes.fromhex(peer.stdout)
            declared = int.from_bytes(table[16:20], 'little')
            self.assertEqual(peer_table[:declared], table[:declared])
            self.assertEqual(bytes(len(table) - declared), table[declared:])
            self.assertEqual(self._expected(sources),
                             secret.parse_secret_table(table))

    def test_peer_secret_checks_with_nova_sev(self):
        root = self.useFixture(fixtures.TempDir()).path
        for n in range(SECRET_CASES):
            directory = os.path.join(root, str(n))
            os.mkdir(directory)
            launch = Launch(self.rng, directory, kernel=n % 3 == 0,
                            sev_es=False, real_firmware=False)
            sources = self._secrets(launch, 1 + n % 3)
            header_path = os.path.join(directory, 'peer-header')
            payload_path = os.path.join(directory, 'peer-payload')
            args = launch.args(nova=False) + [
                '--secret-header', header_path,
                '--secret-payload', payload_path]
            for name, path in sources:
                args += ['--inject-secret', '%s:%s' % (name, path)]
            peer = run_peer(args)
            self.assertEqual(0, peer.returncode, peer.stderr)
            self.assertIn('OK: Injected %d secrets' % len(sources),
                          peer.stdout)
            with open(header_path) as f:
                header = secret.decode_b64(f.read(), 'peer header')
            with open(payload_path) as f:
                payload = secret.decode_b64(f.read(), 'peer payload')
            built = secret.LaunchSecret(header, payload)
            mac = measurement.parse_measurement(launch.measurement)[0]
            self.assertTrue(secret.header_mac_matches(launch.tik, mac, built))
            self.assertFalse(secret.header_mac_matches(
                launch.tik, _flip_bit(mac, n), built))
            self.assertFalse(secret.header_mac_matches(
                launch.tek, mac, built))
            self.assertEqual(self._expected(sources),
                             secret.parse_secret_table(
                                 secret.decrypt_payload(launch.tek, built)))


class TestPeerSession(testtools.TestCase):
    """The peer accepts, offline, the launches of a session ``nova-sev
    session`` made, measured by the PSP double with the session's TIK,
    and its secrets built with the session's TEK and TIK open in the
    double.
    """

    def setUp(self):
        super().setUp()
        require_peer()

    def _launch(self, owner, kernel: bool, sev_es: bool):
        rng = random.Random(6006 + 2 * kernel + sev_es)
        firmware = rng.randbytes(16 * rng.randint(1, 4096))
        args = ['--firmware', owner.write('firmware', firmware),
                '--tik', owner.name + '_tik.bin',
                '--tek', owner.name + '_tek.bin']
        table, vmsas = b'', []
        if kernel:
            kernel_data, initrd = rng.randbytes(5000), rng.randbytes(3000)
            table = measurement.kernel_hashes_table(kernel_data, initrd,
                                                    'console=ttyS0')
            args += ['--kernel', owner.write('kernel', kernel_data),
                     '--initrd', owner.write('initrd', initrd),
                     '--cmdline', 'console=ttyS0']
        if sev_es:
            vmsa = rng.randbytes(4096)
            vmsas = [vmsa] * 3
            path = owner.write('vmsa', vmsa)
            args += ['--num-cpus', '3', '--vmsa-cpu0', path,
                     '--vmsa-cpu1', path]
        guest = owner.platform.launch_start(owner.policy, owner.godh,
                                            owner.session)
        guest.launch_update_from_image(firmware, table, vmsas)
        guest.launch_measure()
        info = guest.launch_security_info()
        args += ['--measurement', info['sev-measurement'],
                 '--api-major', str(info['sev-api-major']),
                 '--api-minor', str(info['sev-api-minor']),
                 '--build-id', str(info['sev-build-id']),
                 '--policy', str(info['sev-policy'])]
        return guest, args

    def test_peer_accepts_the_sessions_launches(self):
        platform = psp.FakePlatform()
        for kernel, policy in ((False, 0x3), (True, 0x1), (False, 0x7),
                               (True, 0x5)):
            owner = self.useFixture(test_session_psp.OwnerSession(
                platform, policy))
            guest, args = self._launch(owner, kernel, bool(policy & 4))
            peer = run_peer(args)
            self.assertEqual(0, peer.returncode, peer.stderr)
            self.assertIn('OK: Looks good to me', peer.stdout)
            # The peer refuses it under another TIK.
            wrong = owner.write('wrong-tik', bytes(16))
            peer = run_peer([wrong if a == owner.name + '_tik.bin' else a
                             for a in args])
            self.assertNotEqual(0, peer.returncode)

    def test_peer_secret_opens_in_the_psp_double(self):
        owner = self.useFixture(test_session_psp.OwnerSession(
            psp.FakePlatform()))
        guest, args = self._launch(owner, kernel=False, sev_es=True)
        luks = owner.write('luks', b'peer passphrase')
        header_path = os.path.join(owner.dir, 'peer-header')
        payload_path = os.path.join(owner.dir, 'peer-payload')
        peer = run_peer(args + ['--inject-secret', 'luks-key:%s' % luks,
                                '--secret-header', header_path,
                                '--secret-payload', payload_path])
        self.assertEqual(0, peer.returncode, peer.stderr)
        with open(header_path) as f:
            header = secret.decode_b64(f.read(), 'peer header')
        with open(payload_path) as f:
            payload = secret.decode_b64(f.read(), 'peer payload')
        guest.launch_secret(header, payload)
        self.assertEqual([(secret.LUKS_KEY_GUID, b'peer passphrase')],
                         secret.parse_secret_table(guest.secret_table))
