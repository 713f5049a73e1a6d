"""nova-sev's expected launch measurement against the ``sev-snp-measure``
command, run as a separate process.

``nova-sev expected-measurement`` uses the same library; what these tests
hold is that nova-sev hands it the inputs as the command does (option
names, defaults, vCPU signatures, kernel hashes) on generated cases across
modes, vCPU counts, vCPU types, kernel hashes on and off and firmware
files: Debian's OVMF builds found on this machine, and synthetic images
that declare the SEV hashes table (Debian's have none, see ovmf_image).

The command's cases run in batches: one process executes the command's
own console entry point once per case, so that 200 cases do not cost 200
interpreter starts; a few cases also run the installed script one by one,
which shows the batch runner and the script agree.
"""

import glob
import json
import os
import random
import shutil
import subprocess
import sys

import fixtures
import testtools

from nova_sev.attestation import launch_digest
from nova_sev.attestation import measurement
from nova_sev.tests.unit.attestation import cli
from nova_sev.tests.unit.attestation import ovmf_image

DEBIAN_OVMF = '/usr/share/ovmf/OVMF.fd'
# Other OVMF builds of Debian's ovmf package, where this release has them.
OTHER_OVMF_GLOBS = ('/usr/share/OVMF/OVMF_CODE*.fd',)
SYNTHETIC_FIRMWARE = 4
CASES = 240

# Runs the sev-snp-measure console script's entry point once per line of
# stdin (a JSON argv), printing one JSON line per case: exit code, stdout,
# stderr.
BATCH_RUNNER = r'''
import contextlib, importlib.metadata, io, json, sys
(entry,) = importlib.metadata.entry_points(
    group='console_scripts', name='sev-snp-measure')
main = entry.load()
for line in sys.stdin:
    argv = json.loads(line)
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ['sev-snp-measure'] + argv
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main()
        except SystemExit as e:
            code = e.code
    print(json.dumps({'code': code, 'out': out.getvalue(),
                      'err': err.getvalue()}), flush=True)
'''


def peer_command() -> str:
    """The installed ``sev-snp-measure`` script; an error, never a skip,
    when it is missing (``tools/setup-env.sh`` installs it with nova-sev).
    """
    path = os.path.join(os.path.dirname(sys.executable), 'sev-snp-measure')
    if not os.path.exists(path):
        path = shutil.which('sev-snp-measure')
    if not path:
        raise AssertionError('sev-snp-measure is not installed: run '
                             'tools/setup-env.sh (requirements.txt)')
    return path


def run_batch(argvs: list[list[str]]) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, '-c', BATCH_RUNNER],
        input=''.join(json.dumps(a) + '\n' for a in argvs),
        capture_output=True, text=True, timeout=600, check=True)
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(argvs), proc.stderr
    return results


def firmware_files() -> list[str]:
    """Debian's OVMF.fd (required) and the other OVMF builds present."""
    if not os.path.exists(DEBIAN_OVMF):
        raise AssertionError('%s is missing: install the ovmf package '
                             '(bindep test profile)' % DEBIAN_OVMF)
    found = [DEBIAN_OVMF]
    for pattern in OTHER_OVMF_GLOBS:
        found.extend(sorted(glob.glob(pattern)))
    return found


class Case:
    """One launch: the options both tools take."""

    def __init__(self, rng: random.Random, firmware: str,
                 hashes_firmware: bool, directory: str, number: int):
        self.mode = rng.choice(launch_digest.MODES)
        self.argv = ['--mode', self.mode, '--ovmf', firmware]
        if self.mode != launch_digest.MODE_SEV or rng.random() < 0.3:
            self.argv += ['--vcpus', str(rng.choice(
                (1, 2, 3, 4, 8, rng.randint(1, 64))))]
            self.argv += ['--vcpu-type',
                          rng.choice(launch_digest.vcpu_type_names())]
        # Kernel hashes mostly where the firmware can measure them; a few
        # elsewhere, where both must refuse.
        if rng.random() < (0.8 if hashes_firmware else 0.05):
            kernel = os.path.join(directory, 'kernel%d' % number)
            with open(kernel, 'wb') as f:
                f.write(rng.randbytes(rng.randint(1, 16384)))
            self.argv += ['--kernel', kernel]
            if rng.random() < 0.6:
                initrd = os.path.join(directory, 'initrd%d' % number)
                with open(initrd, 'wb') as f:
                    f.write(rng.randbytes(rng.randint(0, 16384)))
                self.argv += ['--initrd', initrd]
            if rng.random() < 0.7:
                alphabet = 'abc xyz=019/._-' + (
                    '\u00e9\u4e2d' if rng.random() < 0.2 else '')
                # One argument with "=": a command line may start with
                # "-", which argparse would take for an option (Python
                # 3.13 also when it holds a space).
                self.argv.append('--append=' + ''.join(
                    rng.choice(alphabet)
                    for _ in range(rng.randint(1, 80))))
        if self.mode == launch_digest.MODE_SNP and rng.random() < 0.4:
            self.argv += ['--guest-features',
                          hex(rng.choice((0x1, 0x21, 0x3, 0x1 | (
                              rng.getrandbits(16) << 1))))]


class TestAgainstSevSnpMeasure(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.rng = random.Random(20261202)
        self.firmware = [(path, False) for path in firmware_files()]
        for seed in range(SYNTHETIC_FIRMWARE):
            path = os.path.join(self.dir, 'amdsev%d.fd' % seed)
            with open(path, 'wb') as f:
                f.write(ovmf_image.build(seed, pages=16 + 8 * seed))
            self.firmware.append((path, True))

    def ours(self, argv):
        return cli.run(self, ['expected-measurement', '--format', 'json'] +
                       argv)

    def assertAgree(self, argv, peer):
        result = self.ours(argv)
        if peer['code'] == 0:
            self.assertEqual(0, result.code, (argv, result.err))
            self.assertEqual(peer['out'].strip(),
                             json.loads(result.out)['digest'], argv)
        else:
            # Both refuse: the command with 1 (or 2 from its parser),
            # nova-sev with its bad-input code and one line.
            self.assertEqual(2, result.code, (argv, peer, result.out))
            self.assertEqual('', result.out)

    def test_generated_cases(self):
        cases = []
        for number in range(CASES):
            # Every firmware file is used; synthetic ones more, as only
            # they measure kernels.
            firmware, hashes = self.firmware[number % len(self.firmware)] \
                if number % 2 else self.rng.choice(
                    [f for f in self.firmware if f[1]])
            cases.append(Case(self.rng, firmware, hashes, self.dir, number))
        peers = run_batch([c.argv for c in cases])
        seen = set()
        leading_dash = False
        for case, peer in zip(cases, peers):
            self.assertAgree(case.argv, peer)
            seen.add((case.mode, '--kernel' in case.argv, peer['code']))
            appended = [a for a in case.argv if a.startswith('--append=')]
            leading_dash |= any(a.startswith('--append=-') for a in appended)
        # The generated cases cover every mode with and without kernel
        # hashes, each measured (exit 0).
        for mode in launch_digest.MODES:
            for kernel in (False, True):
                self.assertIn((mode, kernel, 0), seen)
        # A command line that starts with "-" is among them.
        self.assertTrue(leading_dash)

    def test_batch_runner_is_the_command(self):
        cases = [Case(self.rng, *self.firmware[n % len(self.firmware)],
                      self.dir, n) for n in range(6)]
        peers = run_batch([c.argv for c in cases])
        for case, peer in zip(cases, peers):
            proc = subprocess.run([peer_command()] + case.argv,
                                  capture_output=True, text=True,
                                  timeout=120)
            self.assertEqual((peer['code'], peer['out']),
                             (proc.returncode, proc.stdout))

    def test_every_vcpu_type(self):
        argvs = [['--mode', mode, '--ovmf', DEBIAN_OVMF, '--vcpus', '2',
                  '--vcpu-type', name]
                 for mode in (launch_digest.MODE_SEV_ES,
                              launch_digest.MODE_SNP)
                 for name in launch_digest.vcpu_type_names()]
        for argv, peer in zip(argvs, run_batch(argvs)):
            self.assertEqual(0, peer['code'], peer['err'])
            self.assertAgree(argv, peer)


def _flip(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


class TestBitFlips(testtools.TestCase):
    """One bit of any input changes the digest."""

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.rng = random.Random(55766)
        self.firmware = ovmf_image.build(7, pages=16)
        self.kernel = self.rng.randbytes(3000)
        self.initrd = self.rng.randbytes(2000)
        self.append = 'console=ttyS0 root=/dev/sda1'

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def inputs(self, mode, **changes):
        values = dict(
            mode=mode, ovmf=self.write('fw', changes.pop(
                'firmware', self.firmware)),
            vcpus=4, vcpu_type='EPYC-Milan',
            kernel=self.write('kernel', changes.pop('kernel', self.kernel)),
            initrd=self.write('initrd', changes.pop('initrd', self.initrd)),
            append=self.append)
        values.update(changes)
        if mode != launch_digest.MODE_SNP:
            values.pop('guest_features', None)
        return launch_digest.LaunchInputs(**values)

    def digest(self, mode, **changes):
        try:
            return launch_digest.launch_digest(self.inputs(mode, **changes))
        except Exception as e:
            # A flip that makes the firmware unreadable changes the result
            # too: from a digest to a refusal.
            return 'refused: %s' % type(e).__name__

    def test_flips(self):
        for mode in launch_digest.MODES:
            base = self.digest(mode)
            self.assertIsInstance(base, bytes)
            changed = []
            for _ in range(20):
                changed.append(('firmware', self.digest(mode, firmware=_flip(
                    self.firmware, self.rng.randrange(
                        8 * len(self.firmware))))))
            for _ in range(5):
                changed.append(('kernel', self.digest(mode, kernel=_flip(
                    self.kernel, self.rng.randrange(8 * len(self.kernel))))))
                changed.append(('initrd', self.digest(mode, initrd=_flip(
                    self.initrd, self.rng.randrange(8 * len(self.initrd))))))
                position = self.rng.randrange(len(self.append))
                changed.append(('append', self.digest(mode, append=(
                    self.append[:position] +
                    chr(ord(self.append[position]) ^ 1) +
                    self.append[position + 1:]))))
            if mode != launch_digest.MODE_SEV:
                changed.append(('vcpus', self.digest(mode, vcpus=5)))
                changed.append(('vcpus', self.digest(mode, vcpus=3)))
                sig = launch_digest.vcpu_signature('EPYC-Milan')
                for bit in range(32):
                    changed.append(('vcpu_sig', self.digest(
                        mode, vcpu_type=None, vcpu_sig=sig ^ (1 << bit))))
            if mode == launch_digest.MODE_SNP:
                for bit in range(1, 64):
                    changed.append(('guest_features', self.digest(
                        mode, guest_features=1 | (1 << bit))))
            for what, digest in changed:
                self.assertNotEqual(base, digest, (mode, what))


class TestOwnSevCodeIsTheLibrary(testtools.TestCase):
    """nova-sev's own SEV digest (part 1, used by verify-measurement with
    VMSA files) gives the library's digest on the same inputs.
    """

    def test_same_digest(self):
        rng = random.Random(4711)
        directory = self.useFixture(fixtures.TempDir()).path
        from sevsnpmeasure import ovmf as snp_ovmf
        from sevsnpmeasure import sev_mode
        from sevsnpmeasure import vmsa as snp_vmsa
        for number in range(40):
            hashes = number % 4 != 0
            firmware = (ovmf_image.build(100 + number, pages=8) if hashes
                        else open(DEBIAN_OVMF, 'rb').read())
            fw_path = os.path.join(directory, 'fw%d' % number)
            with open(fw_path, 'wb') as f:
                f.write(firmware)
            kernel = initrd = cmdline = None
            table = b''
            if hashes:
                kernel = rng.randbytes(rng.randint(1, 5000))
                initrd = rng.choice((None, rng.randbytes(100)))
                cmdline = rng.choice((None, '', 'ro quiet \u00e9'))
                table = measurement.kernel_hashes_table(kernel, initrd,
                                                        cmdline)
            paths = {}
            for name, data in (('kernel', kernel), ('initrd', initrd)):
                if data is not None:
                    paths[name] = os.path.join(directory, '%s%d' % (
                        name, number))
                    with open(paths[name], 'wb') as f:
                        f.write(data)
            vcpus = rng.randint(1, 8)
            vcpu_type = rng.choice(launch_digest.vcpu_type_names())
            common = dict(ovmf=fw_path, kernel=paths.get('kernel'),
                          initrd=paths.get('initrd'), append=cmdline)
            self.assertEqual(
                measurement.launch_digest(firmware, table),
                launch_digest.launch_digest(launch_digest.LaunchInputs(
                    mode='sev', **common)))
            # SEV-ES with the VMSA files the library builds for the type.
            pages = list(snp_vmsa.VMSA(
                sev_mode.SevMode.SEV_ES,
                snp_ovmf.OVMF(fw_path).sev_es_reset_eip(),
                launch_digest.vcpu_signature(vcpu_type), 0).pages(vcpus))
            self.assertEqual(
                measurement.launch_digest(firmware, table,
                                          measurement.vmsa_pages(
                                              vcpus, pages[0],
                                              pages[-1])),
                launch_digest.launch_digest(launch_digest.LaunchInputs(
                    mode='seves', vcpus=vcpus, vcpu_type=vcpu_type,
                    **common)))
