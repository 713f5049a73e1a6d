import json
import os

from nova_sev.tests.fixtures import sev_host
from nova_sev.tests.unit.cmd import base
from nova_sev.virt.libvirt import host
from nova_sev.virt import nova_compat


class HostCheckCommandTestCase(base.CommandTestCase):
    """``nova-sev host-check --domcaps`` on files, as an operator runs it."""

    command = 'host-check'

    def setUp(self):
        super().setUp()
        self.params = os.path.join(self.tmp, 'parameters')
        sev_host.write_kvm_amd_params(self.params, sev='1', sev_es='0')

    def _domcaps(self, text):
        return self.write_file('domcaps.xml', text)

    def _run(self, *args):
        return self.run_command(*args)

    def test_usable_json(self):
        rc = self._run('--domcaps', self._domcaps(sev_host.domcaps_xml()),
                       '--kvm-amd-params', self.params, '--format', 'json')
        self.assertEqual(0, rc)
        report = json.loads(self.stdout.getvalue())
        self.assertEqual({'usable': True, 'reasons': [], 'cbitpos': 47,
                          'reduced_phys_bits': 1, 'max_guests': 15},
                         report['sev'])
        self.assertFalse(report['sev_es']['usable'])
        self.assertEqual(494, report['sev_es']['max_guests'])
        self.assertEqual(['HW_CPU_AMD_SEV', 'HW_CPU_X86_AMD_SEV'],
                         report['traits'])
        self.assertIsNone(report['firmware'])

    def test_not_usable_text(self):
        rc = self._run('--domcaps',
                       self._domcaps(sev_host.domcaps_xml(sev=False)),
                       '--kvm-amd-params', self.params)
        self.assertEqual(1, rc)
        out = self.stdout.getvalue()
        self.assertIn('SEV: NOT usable', out)
        self.assertIn("<sev supported='no'/>", out)
        self.assertIn('traits reported to placement: none', out)

    def test_malformed_domcaps(self):
        rc = self._run('--domcaps', self._domcaps('<domainCapabilities>'),
                       '--kvm-amd-params', self.params)
        self.assertEqual(2, rc)
        err = self.stderr.getvalue()
        self.assertEqual(1, len(err.splitlines()))
        self.assertIn('Malformed libvirt XML', err)
        self.assertNotIn('Traceback', err)

    def test_missing_file(self):
        rc = self._run('--domcaps', os.path.join(self.tmp, 'nope.xml'))
        self.assertEqual(2, rc)
        self.assertIn('cannot read --domcaps', self.stderr.getvalue())

    def test_params_dir_missing(self):
        rc = self._run('--domcaps', self._domcaps(sev_host.domcaps_xml()),
                       '--kvm-amd-params', os.path.join(self.tmp, 'nope'))
        self.assertEqual(2, rc)
        self.assertIn('not a directory', self.stderr.getvalue())

    def test_odd_sysfs_value(self):
        sev_host.write_kvm_amd_params(self.params, sev='maybe')
        rc = self._run('--domcaps', self._domcaps(sev_host.domcaps_xml()),
                       '--kvm-amd-params', self.params, '--format', 'json')
        self.assertEqual(1, rc)
        report = json.loads(self.stdout.getvalue())
        self.assertIn("unexpected value 'maybe'", report['sev']['reasons'][0])

    def test_cannot_connect(self):
        rc = self._run('--connection',
                       'qemu+unix:///system?socket=/nonexistent/sock',
                       '--kvm-amd-params', self.params)
        self.assertEqual(2, rc)
        err = self.stderr.getvalue()
        self.assertIn('cannot connect to libvirt', err)
        self.assertEqual(1, len(err.splitlines()))

    def test_config_file_sets_params_dir(self):
        conf = os.path.join(self.tmp, 'nova.conf')
        with open(conf, 'w') as f:
            f.write('[sev]\nkvm_amd_parameters_dir = %s\n' % self.params)
        rc = self._run('--domcaps', self._domcaps(sev_host.domcaps_xml()),
                       '--config-file', conf)
        self.assertEqual(0, rc)

    def test_bad_config_file(self):
        rc = self._run('--domcaps', self._domcaps(sev_host.domcaps_xml()),
                       '--config-file', os.path.join(self.tmp, 'none.conf'))
        self.assertEqual(2, rc)
        self.assertIn('configuration', self.stderr.getvalue())

    def test_snp_json_and_text(self):
        sev_host.write_kvm_amd_params(self.params, sev='1', sev_es='1',
                                      sev_snp='Y')
        snp = self._domcaps(sev_host.domcaps_xml(
            sectypes=sev_host.SNP_SECTYPES))
        rc = self._run('--domcaps', snp, '--kvm-amd-params', self.params,
                       '--format', 'json')
        self.assertEqual(0, rc)
        report = json.loads(self.stdout.getvalue())
        self.assertEqual({'usable': True, 'reasons': [], 'max_guests': 494,
                          'firmware': None}, report['sev_snp'])
        # Where os-traits has the SNP trait (2026.2's constraints on).
        self.assertEqual(nova_compat.SNP_TRAIT_KNOWN,
                         'HW_CPU_X86_AMD_SEV_SNP' in report['traits'])
        self.assertFalse(report['sev_es']['usable'])
        self.assertIn('CVE-2025-48514', report['sev_es']['reasons'][0])

    def test_snp_libvirt_too_old_text(self):
        sev_host.write_kvm_amd_params(self.params, sev='1', sev_es='0',
                                      sev_snp='Y')
        old = self._domcaps(sev_host.domcaps_xml(sectypes=('sev',)))
        rc = self._run('--domcaps', old, '--kvm-amd-params', self.params)
        self.assertEqual(0, rc)
        out = self.stdout.getvalue()
        self.assertIn('SEV-SNP: NOT usable', out)
        self.assertIn('libvirt or QEMU is too old', out)
        self.assertIn('ASID slots: SEV 15, SEV-ES and SEV-SNP 494', out)


# /proc/cpuinfo of an AMD EPYC virtual machine (flags shortened).
VM_CPUINFO = '''processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model name\t: AMD EPYC-Milan Processor
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep hypervisor lahf_lm
'''
BARE_METAL_CPUINFO = VM_CPUINFO.replace(' hypervisor', '')


class HostCheckVirtualMachineTestCase(base.CommandTestCase):
    """An AMD virtual machine whose hypervisor offers no SEV: the reason is
    the hypervisor, not the BIOS.
    """

    command = 'host-check'

    def setUp(self):
        super().setUp()
        self.params = os.path.join(self.tmp, 'parameters')
        sev_host.write_kvm_amd_params(self.params, sev=None, sev_es=None,
                                      sev_snp=None)

    def _report(self, cpuinfo, sev=False, vendor='AMD'):
        domcaps = self.write_file('domcaps.xml', sev_host.domcaps_xml(
            sev=sev, cpu_vendor=vendor))
        rc = self.run_command('--domcaps', domcaps, '--kvm-amd-params',
                              self.params, '--cpuinfo',
                              self.write_file('cpuinfo', cpuinfo),
                              '--format', 'json')
        return rc, json.loads(self.stdout.getvalue())

    def test_virtual_machine_reason_first_without_bios(self):
        rc, report = self._report(VM_CPUINFO)
        self.assertEqual(1, rc)
        self.assertIs(True, report['virtual_machine'])
        reasons = report['sev']['reasons']
        self.assertIn('virtual machine', reasons[0])
        self.assertIn('bare-metal', reasons[0])
        self.assertIn('passes SEV through', reasons[0])
        for part in ('sev', 'sev_es', 'sev_snp'):
            for reason in report[part]['reasons']:
                self.assertNotIn('BIOS', reason)
                self.assertNotIn('mem_encrypt', reason)

    def test_bare_metal_keeps_the_bios_advice(self):
        rc, report = self._report(BARE_METAL_CPUINFO)
        self.assertEqual(1, rc)
        self.assertIs(False, report['virtual_machine'])
        self.assertIn('BIOS', report['sev']['reasons'][0])

    def test_another_vendor_still_comes_first(self):
        rc, report = self._report(VM_CPUINFO, vendor='Intel')
        self.assertIn('made by Intel', report['sev']['reasons'][0])
        self.assertNotIn('virtual machine', ' '.join(report['sev']['reasons']))

    def test_sev_offered_unchanged(self):
        sev_host.write_kvm_amd_params(self.params, sev='1', sev_es='1')
        rc, vm = self._report(VM_CPUINFO, sev=True)
        self.assertEqual(0, rc)
        self.stdout.seek(0)
        self.stdout.truncate()
        rc, metal = self._report(BARE_METAL_CPUINFO, sev=True)
        self.assertEqual(0, rc)
        self.assertEqual(True, vm.pop('virtual_machine'))
        self.assertEqual(False, metal.pop('virtual_machine'))
        self.assertEqual(metal, vm)

    def test_text_names_it(self):
        domcaps = self.write_file('domcaps.xml', sev_host.domcaps_xml(
            sev=False))
        rc = self.run_command('--domcaps', domcaps, '--kvm-amd-params',
                              self.params, '--cpuinfo',
                              self.write_file('cpuinfo', VM_CPUINFO))
        self.assertEqual(1, rc)
        out = self.stdout.getvalue()
        self.assertIn('Virtual machine: yes', out)
        self.assertEqual('  - ' + host.REASON_VIRTUAL_MACHINE,
                         out.split('SEV: NOT usable\n')[1].splitlines()[0])

    def test_without_cpuinfo_the_question_stays_open(self):
        domcaps = self.write_file('domcaps.xml', sev_host.domcaps_xml(
            sev=False))
        rc = self.run_command('--domcaps', domcaps, '--kvm-amd-params',
                              self.params, '--format', 'json')
        self.assertEqual(1, rc)
        self.assertIsNone(json.loads(self.stdout.getvalue())[
            'virtual_machine'])

    def test_unreadable_cpuinfo(self):
        rc = self.run_command('--domcaps', self.write_file(
            'domcaps.xml', sev_host.domcaps_xml()), '--cpuinfo',
            os.path.join(self.tmp, 'missing'))
        self.assertEqual(2, rc)
        self.assertIn('cannot read --cpuinfo', self.stderr.getvalue())


class HostCheckFirmwareDirTestCase(base.CommandTestCase):

    command = 'host-check'

    def test_firmware_of_a_domcaps_file_checked_in_the_dir(self):
        params = os.path.join(self.tmp, 'parameters')
        sev_host.write_kvm_amd_params(params, sev='1', sev_es='1')
        domcaps = self.write_file('domcaps.xml', sev_host.domcaps_xml())
        empty = os.path.join(self.tmp, 'firmware')
        os.mkdir(empty)
        rc = self.run_command('--domcaps', domcaps, '--kvm-amd-params',
                              params, '--firmware-dir', empty,
                              '--format', 'json')
        self.assertEqual(1, rc)
        report = json.loads(self.stdout.getvalue())
        self.assertEqual([], report['firmware'])
        self.assertIn('amd-sev feature', report['sev']['reasons'][0])
