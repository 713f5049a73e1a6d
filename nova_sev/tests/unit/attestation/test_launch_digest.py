"""The launch digest module and ``nova-sev expected-measurement``."""

import hashlib
import json
import os

import fixtures
import testtools

from nova_sev.attestation import launch_digest
from nova_sev.attestation import measurement
from nova_sev.cmd import common
from nova_sev import exception
from nova_sev.tests.unit.attestation import cli
from nova_sev.tests.unit.attestation import ovmf_image
from nova_sev.tests.unit.attestation import vectors


class FirmwareFiles(fixtures.Fixture):

    def _setUp(self):
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.firmware = ovmf_image.build(1, pages=8)
        self.ovmf = self.write('ovmf.fd', self.firmware)
        self.no_hashes = self.write('nohashes.fd', ovmf_image.build(
            2, pages=8, kernel_hashes=False))
        self.kernel = self.write('kernel', vectors.KERNEL)
        self.initrd = self.write('initrd', vectors.INITRD)

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path


class TestCheckInputs(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.files = self.useFixture(FirmwareFiles())

    def refused(self, **kwargs):
        inputs = launch_digest.LaunchInputs(ovmf=self.files.ovmf, **kwargs)
        return self.assertRaises(exception.InvalidLaunchInputs,
                                 launch_digest.check_inputs, inputs)

    def test_sev_needs_no_vcpus(self):
        self.assertEqual(0, launch_digest.check_inputs(
            launch_digest.LaunchInputs(mode='sev', ovmf=self.files.ovmf)))

    def test_vcpu_type_gives_signature(self):
        self.assertEqual(0xa00f11, launch_digest.check_inputs(
            launch_digest.LaunchInputs(mode='snp', ovmf=self.files.ovmf,
                                       vcpus=1, vcpu_type='EPYC-Milan')))
        self.assertEqual(0xa00f11, launch_digest.cpu_signature(25, 1, 1))

    def test_refusals(self):
        self.assertIn('--vcpus', str(self.refused(mode='seves',
                                                  vcpu_type='EPYC')))
        self.assertIn('--vcpus', str(self.refused(mode='snp', vcpus=0,
                                                  vcpu_type='EPYC')))
        self.assertIn('--vcpu-type', str(self.refused(mode='snp', vcpus=1)))
        self.assertIn('not both', str(self.refused(
            mode='snp', vcpus=1, vcpu_type='EPYC', vcpu_sig=1)))
        self.assertIn('--kernel', str(self.refused(mode='sev',
                                                   append='quiet')))
        self.assertIn('SNP input', str(self.refused(
            mode='seves', vcpus=1, vcpu_type='EPYC', guest_features=3)))
        self.assertIn('unknown mode', str(self.refused(mode='tdx')))

    def test_unknown_vcpu_type_lists_the_known(self):
        e = self.assertRaises(exception.InvalidInput,
                              launch_digest.vcpu_signature, 'Skylake')
        self.assertIn('EPYC-Genoa', str(e))
        self.assertIn('--vcpu-sig', str(e))


class TestLaunchDigest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.files = self.useFixture(FirmwareFiles())

    def test_sev_is_sha256_of_firmware_and_hashes_table(self):
        digest = launch_digest.launch_digest(launch_digest.LaunchInputs(
            mode='sev', ovmf=self.files.ovmf, kernel=self.files.kernel,
            initrd=self.files.initrd, append=vectors.CMDLINE))
        table = bytes.fromhex(vectors.HASHES_TABLE_HEX)
        self.assertEqual(hashlib.sha256(self.files.firmware + table).digest(),
                         digest)

    def test_lengths(self):
        for mode in launch_digest.MODES:
            digest = launch_digest.launch_digest(launch_digest.LaunchInputs(
                mode=mode, ovmf=self.files.ovmf, vcpus=2, vcpu_type='EPYC'))
            self.assertEqual(launch_digest.DIGEST_LEN[mode], len(digest))

    def test_firmware_without_hashes_table_refuses_kernel(self):
        for mode in launch_digest.MODES:
            e = self.assertRaises(
                exception.InvalidLaunchInputs, launch_digest.launch_digest,
                launch_digest.LaunchInputs(
                    mode=mode, ovmf=self.files.no_hashes, vcpus=1,
                    vcpu_type='EPYC', kernel=self.files.kernel))
            self.assertIn('kernel hashes', str(e))

    def test_unreadable_and_short_firmware(self):
        e = self.assertRaises(
            exception.InvalidLaunchInputs, launch_digest.launch_digest,
            launch_digest.LaunchInputs(mode='sev', ovmf='/nonexistent'))
        self.assertIn('cannot read /nonexistent', str(e))
        short = self.files.write('short', b'x')
        self.assertRaises(
            exception.InvalidLaunchInputs, launch_digest.launch_digest,
            launch_digest.LaunchInputs(mode='snp', ovmf=short, vcpus=1,
                                       vcpu_type='EPYC'))


class TestExpectedMeasurementCommand(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.files = self.useFixture(FirmwareFiles())

    def run_cmd(self, *args):
        return cli.run(self, ['expected-measurement'] + list(args))

    def test_json(self):
        result = self.run_cmd('--mode', 'snp', '--ovmf', self.files.ovmf,
                              '--vcpus', '4', '--vcpu-type', 'EPYC-Genoa',
                              '--kernel', self.files.kernel, '--append',
                              'quiet', '--guest-features', '0x21',
                              '--format', 'json')
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        data = json.loads(result.out)
        self.assertEqual(96, len(data['digest']))
        self.assertEqual(data['digest'].lower(), data['digest'])
        self.assertEqual('snp', data['mode'])
        self.assertEqual({
            'mode': 'snp', 'ovmf': self.files.ovmf, 'vcpus': 4,
            'vcpu_type': 'EPYC-Genoa', 'vcpu_sig': '0xa10f10',
            'kernel': self.files.kernel, 'initrd': None, 'append': 'quiet',
            'guest_features': '0x21',
            'ovmf_sha384': hashlib.sha384(self.files.firmware).hexdigest(),
        }, data['inputs'])
        self.assertTrue(data['library'].startswith('sev-snp-measure '))

    def test_text(self):
        result = self.run_cmd('--mode', 'sev', '--ovmf', self.files.ovmf)
        self.assertEqual(common.EXIT_OK, result.code)
        first = result.out.splitlines()[0]
        self.assertEqual('Expected sev launch digest: %s' % hashlib.sha256(
            self.files.firmware).hexdigest(), first)
        self.assertNotIn('vcpus', result.out)

    def test_bad_input_is_one_line(self):
        for args in (('--mode', 'seves', '--ovmf', self.files.ovmf),
                     ('--mode', 'snp', '--ovmf', '/nonexistent', '--vcpus',
                      '1', '--vcpu-type', 'EPYC'),
                     ('--mode', 'snp', '--ovmf', self.files.ovmf, '--vcpus',
                      '1', '--vcpu-type', 'Skylake-Server')):
            result = self.run_cmd(*args)
            self.assertEqual(common.EXIT_ERROR, result.code)
            self.assertEqual('', result.out)
            self.assertTrue(result.err.startswith('nova-sev: '))

    def test_without_the_owner_extra_says_how_to_install_it(self):
        # A compute host's environment: sev-snp-measure is the [owner]
        # extra's, not installed with nova-sev.
        self.useFixture(fixtures.MockPatch(
            'nova_sev.attestation.launch_digest._LIBRARY_MISSING',
            ImportError("No module named 'sevsnpmeasure'")))
        result = self.run_cmd('--mode', 'sev', '--ovmf', self.files.ovmf)
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertEqual('', result.out)
        self.assertIn("pip install 'nova-sev[owner]'", result.err)
        self.assertEqual(1, len(result.err.strip().splitlines()))


class TestVerifyMeasurementByVcpuType(testtools.TestCase):
    """SEV-ES verification with the vCPU type in place of VMSA files."""

    def setUp(self):
        super().setUp()
        self.files = self.useFixture(FirmwareFiles())

    def measured(self, vcpus, vcpu_type):
        digest = launch_digest.launch_digest(launch_digest.LaunchInputs(
            mode='seves', ovmf=self.files.ovmf, vcpus=vcpus,
            vcpu_type=vcpu_type, kernel=self.files.kernel,
            append=vectors.CMDLINE))
        report = measurement.LaunchReport(
            mac=b'', mnonce=vectors.MNONCE, api_major=1, api_minor=55,
            build_id=7, policy=0x37)
        mac = measurement.compute_measurement(vectors.TIK, report, digest)
        return measurement.encode_measurement(mac, vectors.MNONCE)

    def verify(self, measured, *extra):
        tik = self.files.write('tik', vectors.TIK)
        return cli.run(self, [
            'verify-measurement', '--measurement', measured,
            '--api-major', '1', '--api-minor', '55', '--build-id', '7',
            '--policy', '0x37', '--firmware', self.files.ovmf,
            '--kernel', self.files.kernel, '--cmdline', vectors.CMDLINE,
            '--tik', tik] + list(extra))

    def test_match(self):
        result = self.verify(self.measured(3, 'EPYC-Milan'), '--num-cpus',
                             '3', '--vcpu-type', 'EPYC-Milan')
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        self.assertIn('3 vCPUs of type EPYC-Milan', result.out)

    def test_signature_instead_of_type(self):
        result = self.verify(self.measured(2, 'EPYC-Milan'), '--num-cpus',
                             '2', '--vcpu-sig', '0xa00f11')
        self.assertEqual(common.EXIT_OK, result.code, result.err)

    def test_other_type_or_count_does_not_match(self):
        measured = self.measured(3, 'EPYC-Milan')
        for extra in (('--num-cpus', '3', '--vcpu-type', 'EPYC-Rome'),
                      ('--num-cpus', '2', '--vcpu-type', 'EPYC-Milan')):
            result = self.verify(measured, *extra)
            self.assertEqual(common.EXIT_REFUSED, result.code)
            self.assertIn('does NOT match', result.out)

    def test_vcpu_type_and_vmsa_files_conflict(self):
        vmsa = self.files.write('vmsa', bytes(4096))
        result = self.verify(self.measured(1, 'EPYC'), '--num-cpus', '1',
                             '--vcpu-type', 'EPYC', '--vmsa-cpu0', vmsa)
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('--vmsa-cpu0', result.err)

    def test_needs_num_cpus(self):
        result = self.verify(self.measured(1, 'EPYC'), '--vcpu-type', 'EPYC')
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('--num-cpus', result.err)
