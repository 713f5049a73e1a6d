import json
import os

from nova_sev.tests.fixtures import sev_host
from nova_sev.tests.unit.cmd import base
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
