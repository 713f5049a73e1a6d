"""SEV detection against the host's real libvirt (embedded QEMU driver).

The host-check command runs as the operator runs it, in its own process,
on an embedded-driver root whose QEMU capabilities were really probed; with
``sev=True`` the capability cache claims SEV, as libvirt's own tests do.
"""

import json
import os

import fixtures
import testtools

from nova_sev.tests.fixtures import sev_host
from nova_sev.tests.functional import embedded
from nova_sev.virt.libvirt import host


class HostCheckRealLibvirtTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.params = self.useFixture(fixtures.TempDir()).join('parameters')
        sev_host.write_kvm_amd_params(self.params, sev='1', sev_es='1')

    def _host_check(self, uri, *args):
        proc = embedded.run_cli('host-check', '--connection', uri,
                                '--kvm-amd-params', self.params, *args)
        return proc.returncode, proc.stdout, proc.stderr

    def test_host_without_sev(self):
        qemu = self.useFixture(embedded.EmbeddedQemuFixture(sev=False))
        rc, out, err = self._host_check(qemu.uri, '--format', 'json')
        self.assertEqual(1, rc, err)
        report = json.loads(out)
        self.assertFalse(report['sev']['usable'])
        reasons = report['sev']['reasons']
        # What this machine's CPU is, as libvirt itself names it: CI hosts
        # are Intel, where the vendor comes first and no BIOS advice
        # follows; on an AMD virtual machine (its /proc/cpuinfo says
        # "hypervisor") the hypervisor does; on AMD bare metal without SEV
        # the BIOS is the remedy.
        vendor = report['cpu_vendor']
        self.assertIsNotNone(vendor)
        self.assertEqual(host.read_cpuinfo(), report['virtual_machine'])
        if vendor not in host.SEV_CPU_VENDORS:
            self.assertEqual(2, len(reasons), reasons)
            self.assertIn('made by %s' % vendor, reasons.pop(0))
            self.assertNotIn('BIOS', reasons[0])
        elif report['virtual_machine']:
            self.assertEqual(2, len(reasons), reasons)
            self.assertEqual(host.REASON_VIRTUAL_MACHINE, reasons.pop(0))
            self.assertNotIn('BIOS', reasons[0])
        else:
            self.assertEqual(1, len(reasons), reasons)
            self.assertIn('BIOS', reasons[0])
        self.assertIn("domain capabilities report no SEV", reasons[0])
        self.assertEqual([], report['traits'])
        # The versions the report gives are the ones libvirt itself reads
        # on this host (9.0.0 / 7.2.x on Debian 12, 11.3.0 / 10.0.x on 13).
        versions = embedded.host_versions()
        self.assertEqual('%d.%d.%d' % versions['libvirt'],
                         report['libvirt_version'])
        self.assertEqual('%d.%d.%d' % versions['qemu'],
                         report['qemu_version'])

    def test_virtual_machine_root(self):
        # The same real root, its /proc/cpuinfo that of a virtual machine:
        # on an AMD CPU the hypervisor is the first reason, never the BIOS;
        # another vendor still comes first.
        qemu = self.useFixture(embedded.EmbeddedQemuFixture(sev=False))
        cpuinfo = self.useFixture(fixtures.TempDir()).join('cpuinfo')
        with open(cpuinfo, 'w') as f:
            f.write('processor\t: 0\nflags\t\t: fpu sse2 hypervisor\n')
        rc, out, err = self._host_check(qemu.uri, '--cpuinfo', cpuinfo,
                                        '--format', 'json')
        self.assertEqual(1, rc, err)
        report = json.loads(out)
        self.assertIs(True, report['virtual_machine'])
        reasons = report['sev']['reasons']
        if report['cpu_vendor'] in host.SEV_CPU_VENDORS:
            self.assertEqual(host.REASON_VIRTUAL_MACHINE, reasons[0])
        else:
            self.assertIn('made by %s' % report['cpu_vendor'], reasons[0])
        self.assertNotIn('BIOS', ' '.join(reasons))

    def test_host_with_sev(self):
        qemu = self.useFixture(embedded.EmbeddedQemuFixture(sev=True))
        rc, out, err = self._host_check(qemu.uri, '--format', 'json')
        self.assertEqual(0, rc, err)
        report = json.loads(out)
        self.assertTrue(report['sev']['usable'], report)
        self.assertEqual(47, report['sev']['cbitpos'])
        self.assertEqual(1, report['sev']['reduced_phys_bits'])
        self.assertIn('HW_CPU_X86_AMD_SEV', report['traits'])
        self.assertIn('HW_CPU_AMD_SEV', report['traits'])
        # Debian's OVMF descriptors list amd-sev but not amd-sev-es.
        self.assertFalse(report['sev_es']['usable'])
        self.assertTrue(any('amd-sev-es' in r
                            for r in report['sev_es']['reasons']))
        self.assertTrue(any(f['descriptor'].endswith('60-edk2-x86_64.json')
                            for f in report['firmware']))

    def test_kernel_check_still_required(self):
        qemu = self.useFixture(embedded.EmbeddedQemuFixture(sev=True))
        sev_host.write_kvm_amd_params(self.params, sev='0', sev_es='0')
        rc, out, err = self._host_check(qemu.uri)
        self.assertEqual(1, rc, err)
        self.assertIn('SEV: NOT usable', out)
        self.assertIn('kvm_amd.sev=1', out)

    def test_domcaps_file_from_real_libvirt(self):
        qemu = self.useFixture(embedded.EmbeddedQemuFixture(sev=True))
        result = qemu.call_one('domcaps')
        self.assertTrue(result['ok'], result)
        path = self.useFixture(fixtures.TempDir()).join('domcaps.xml')
        with open(path, 'w') as f:
            f.write(result['result'])
        proc = embedded.run_cli('host-check', '--domcaps', path,
                                '--kvm-amd-params', self.params)
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertIn('cbitpos: 47', proc.stdout)
        self.assertIn('firmware: not checked', proc.stdout)
        self.assertTrue(os.path.exists(path))


class SnpHostCheckRealLibvirtTestCase(testtools.TestCase):
    """host-check on a root with SEV-SNP injected where the installed
    libvirt knows SNP (>= 10.5, read at run time), with a descriptor for
    the stateless OVMF placed in the host's /etc/qemu/firmware for the
    test (removed afterwards; the CI runs as root): every SNP check but
    the ES/SNP ASID slots must pass (libvirt reads those from the CPU).
    Before 10.5 it must say that libvirt is too old.
    """

    def test_snp_host(self):
        params = self.useFixture(fixtures.TempDir()).join('parameters')
        sev_host.write_kvm_amd_params(params, sev='Y', sev_es='Y',
                                      sev_snp='Y')
        qemu = self.useFixture(embedded.EmbeddedQemuFixture(sev=True,
                                                            snp=True))
        version = qemu.call_one('version')
        self.assertTrue(version['ok'], version)
        has_snp = version['result'] >= embedded.LIBVIRT_SNP_VERSION
        self.assertEqual(has_snp, qemu.snp_injected)
        if has_snp:
            self.useFixture(embedded.SnpFirmwareDescriptorFixture())
        proc = embedded.run_cli('host-check', '--connection', qemu.uri,
                                '--kvm-amd-params', params, '--format',
                                'json')
        self.assertEqual(0, proc.returncode, proc.stderr)
        report = json.loads(proc.stdout)
        self.assertTrue(report['sev']['usable'], report)
        self.assertFalse(report['sev_es']['usable'])
        self.assertIn('CVE-2025-48514', report['sev_es']['reasons'][-1])
        snp = report['sev_snp']
        if has_snp:
            # Kernel, libvirt (sev-snp sectype) and firmware pass; libvirt
            # reads the ASID counts from the CPU, which here has no SEV, so
            # the one reason left is the ES/SNP slots.
            self.assertFalse(snp['usable'])
            self.assertEqual(1, len(snp['reasons']), snp)
            self.assertIn('maxESGuests=0', snp['reasons'][0])
            self.assertNotIn('HW_CPU_X86_AMD_SEV_SNP', report['traits'])
            # A set: a test of another worker may have its own copy of
            # the descriptor in /etc/qemu/firmware at the same time.
            self.assertEqual({embedded.STATELESS_OVMF},
                             {f['executable'] for f in snp['firmware']})
        else:
            self.assertFalse(snp['usable'])
            self.assertNotIn('HW_CPU_X86_AMD_SEV_SNP', report['traits'])
            self.assertTrue(any('libvirt or QEMU is too old' in r
                                for r in snp['reasons']), snp)
            # No descriptor here lists amd-sev-snp: host-check says which
            # firmware to install.
            self.assertTrue(any('stateless OVMF' in r
                                for r in snp['reasons']), snp)
