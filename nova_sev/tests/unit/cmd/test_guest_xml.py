"""``nova-sev guest-xml``: exit codes, messages and output, on files."""

import io
import json
import os
from unittest import mock

from lxml import etree

from nova_sev.cmd import sev
from nova_sev.tests.fixtures import sev_host
from nova_sev.tests.unit.cmd import base

DATA = os.path.join(os.path.dirname(__file__), '..', '..', 'data')
SEV_TRAIT = 'trait:HW_CPU_X86_AMD_SEV=required'


def descriptor_json(features):
    return json.dumps({
        'interface-types': ['uefi'],
        'mapping': {
            'device': 'flash',
            'executable': {'filename': '/usr/share/OVMF/OVMF_CODE_4M.fd'},
            'nvram-template': {'filename': '/usr/share/OVMF/OVMF_VARS_4M.fd'},
        },
        'targets': [{'architecture': 'x86_64',
                     'machines': ['pc-i440fx-*', 'pc-q35-*']}],
        'features': list(features)})


class GuestXmlCommandTestCase(base.CommandTestCase):

    command = 'guest-xml'

    def setUp(self):
        super().setUp()
        self.params = os.path.join(self.tmp, 'parameters')
        sev_host.write_kvm_amd_params(self.params, sev='1', sev_es='0')
        self.fw_dir = os.path.join(self.tmp, 'firmware')
        self._write('firmware/60-edk2-x86_64.json',
                    descriptor_json(['acpi-s3', 'amd-sev']))
        self.domcaps = self._write('domcaps.xml', sev_host.domcaps_xml())
        with open(os.path.join(DATA, 'nova-guest-q35.xml')) as f:
            self.domain_text = f.read()
        self.domain = self._write('domain.xml', self.domain_text)
        self.conf = self._conf()

    def _write(self, name, text):
        return self.write_file(name, text)

    def _conf(self, sev_lines='', libvirt_lines=''):
        return self._write('nova.conf', '[sev]\nfirmware_descriptor_dirs = '
                           '%s\n%s\n[libvirt]\n%s\n' % (
                               self.fw_dir, sev_lines, libvirt_lines))

    def _run(self, *args, domain=None, domcaps=None, conf=None):
        argv = ['guest-xml', '--domain', domain or self.domain,
                '--domcaps', domcaps or self.domcaps,
                '--kvm-amd-params', self.params,
                '--config-file', conf or self.conf] + list(args)
        return sev.main(argv)

    def assertOneLine(self, text, *fragments):
        self.assertEqual(1, len(text.strip().splitlines()), text)
        self.assertTrue(text.startswith('nova-sev: '), text)
        self.assertNotIn('Traceback', text)
        for fragment in fragments:
            self.assertIn(fragment, text)

    def test_sev_domain_printed(self):
        rc = self._run('--extra-spec', SEV_TRAIT)
        self.assertEqual(0, rc, self.stderr.getvalue())
        root = etree.fromstring(self.stdout.getvalue())
        self.assertEqual('0x0033', root.findtext('launchSecurity/policy'))
        self.assertEqual('47', root.findtext('launchSecurity/cbitpos'))
        self.assertEqual('4718592', root.findtext('memtune/hard_limit'))
        self.assertEqual('/usr/share/OVMF/OVMF_CODE_4M.fd',
                         root.findtext('os/loader'))
        self.assertOneLine(self.stderr.getvalue(), 'SEV guest',
                           'policy 0x0033', '60-edk2-x86_64.json')

    def test_both_trait_spellings_and_mem_encryption(self):
        for args in (('--extra-spec', 'trait:HW_CPU_AMD_SEV=required'),
                     ('--image-property', 'hw_mem_encryption=True'),
                     ('--extra-spec', 'hw:mem_encryption=yes')):
            self.stdout.seek(0)
            self.stdout.truncate()
            self.assertEqual(0, self._run(*args), args)
            self.assertIn('<launchSecurity type="sev">',
                          self.stdout.getvalue())

    def test_request_groups_ask_for_sev(self):
        # Placement puts these flavors on SEV hosts: the guest is SEV.
        for prefix in ('trait1', 'trait2', 'trait_SEV'):
            self.stdout.seek(0)
            self.stdout.truncate()
            rc = self._run(
                '--extra-spec', '%s:HW_CPU_X86_AMD_SEV=required' % prefix,
                '--extra-spec', 'resources%s:VCPU=1' % prefix[len('trait'):])
            self.assertEqual(0, rc, prefix)
            root = etree.fromstring(self.stdout.getvalue())
            self.assertEqual(1, len(root.findall('launchSecurity')), prefix)

    def test_refused_request_groups_in_conflict(self):
        rc = self._run('--extra-spec', 'trait1:HW_CPU_X86_AMD_SEV=forbidden',
                       '--extra-spec', 'trait2:HW_CPU_X86_AMD_SEV=required')
        self.assertEqual(1, rc)
        self.assertEqual('', self.stdout.getvalue())
        self.assertOneLine(self.stderr.getvalue(),
                           'trait1:HW_CPU_X86_AMD_SEV=forbidden',
                           'trait2:HW_CPU_X86_AMD_SEV=required')

    def test_no_sev_prints_unchanged(self):
        rc = self._run('--extra-spec', 'hw:cpu_policy=dedicated')
        self.assertEqual(0, rc)
        self.assertEqual(self.domain_text, self.stdout.getvalue())
        self.assertOneLine(self.stderr.getvalue(), 'not requested',
                           'unchanged')

    def test_no_sev_needs_no_host(self):
        rc = self._run(domcaps=os.path.join(self.tmp, 'missing.xml'))
        self.assertEqual(0, rc)
        self.assertEqual(self.domain_text, self.stdout.getvalue())

    def test_refused_host_not_capable(self):
        domcaps = self._write('nosev.xml', sev_host.domcaps_xml(sev=False))
        rc = self._run('--extra-spec', SEV_TRAIT, domcaps=domcaps)
        self.assertEqual(1, rc)
        self.assertEqual('', self.stdout.getvalue())
        self.assertOneLine(self.stderr.getvalue(), "<sev supported='no'/>",
                           'nova-sev host-check')

    def test_refused_sev_es(self):
        rc = self._run('--extra-spec', 'trait:HW_CPU_X86_AMD_SEV_ES=required')
        self.assertEqual(1, rc)
        self.assertOneLine(self.stderr.getvalue(), 'SEV-ES', 'sev_es')

    def test_refused_conflict(self):
        rc = self._run('--extra-spec', SEV_TRAIT, '--image-property',
                       'trait:HW_CPU_X86_AMD_SEV=forbidden')
        self.assertEqual(1, rc)
        self.assertOneLine(self.stderr.getvalue(),
                           'flavor extra spec trait:HW_CPU_X86_AMD_SEV',
                           'image property trait:HW_CPU_X86_AMD_SEV')

    def test_refused_machine_type_from_conf(self):
        conf = self._conf(libvirt_lines='hw_machine_type = x86_64=pc')
        rc = self._run('--extra-spec', SEV_TRAIT, conf=conf)
        self.assertEqual(1, rc)
        self.assertOneLine(self.stderr.getvalue(),
                           '[libvirt]hw_machine_type')

    def test_refused_machine_type_from_image(self):
        rc = self._run('--extra-spec', SEV_TRAIT, '--image-property',
                       'hw_machine_type=pc-i440fx-7.2')
        self.assertEqual(1, rc)
        self.assertOneLine(self.stderr.getvalue(), 'hw_machine_type')

    def test_refused_virtio_blk_then_allowed(self):
        args = ('--extra-spec', SEV_TRAIT, '--image-property',
                'hw_disk_bus=virtio')
        self.assertEqual(1, self._run(*args))
        self.assertOneLine(self.stderr.getvalue(),
                           '[sev]allow_virtio_blk_boot_disk')
        conf = self._conf(sev_lines='allow_virtio_blk_boot_disk = true')
        self.assertEqual(0, self._run(*args, conf=conf))
        root = etree.fromstring(self.stdout.getvalue())
        self.assertEqual('virtio', root.find('devices/disk/target').get('bus'))

    def test_refused_policy(self):
        conf = self._conf(sev_lines='policy = 0x30')
        self.assertEqual(1, self._run('--extra-spec', SEV_TRAIT, conf=conf))
        self.assertOneLine(self.stderr.getvalue(),
                           '[sev]allow_insecure_policy')

    def test_refused_firmware(self):
        self._write('firmware/60-edk2-x86_64.json',
                    descriptor_json(['acpi-s3']))
        self.assertEqual(1, self._run('--extra-spec', SEV_TRAIT))
        self.assertOneLine(self.stderr.getvalue(), 'amd-sev')

    def test_refused_pci(self):
        self.assertEqual(1, self._run('--extra-spec', SEV_TRAIT,
                                      '--extra-spec',
                                      'pci_passthrough:alias=gpu:1'))
        self.assertOneLine(self.stderr.getvalue(), 'pci_passthrough:alias')

    def test_refused_bad_boolean(self):
        self.assertEqual(1, self._run('--extra-spec',
                                      'hw:mem_encryption=sure'))
        self.assertOneLine(self.stderr.getvalue(), 'hw:mem_encryption')

    def test_malformed_domain(self):
        domain = self._write('bad.xml', '<domain type="kvm">')
        self.assertEqual(2, self._run('--extra-spec', SEV_TRAIT,
                                      domain=domain))
        self.assertOneLine(self.stderr.getvalue(), 'Malformed libvirt XML')

    def test_unreadable_domain(self):
        self.assertEqual(2, self._run(
            domain=os.path.join(self.tmp, 'missing.xml')))
        self.assertOneLine(self.stderr.getvalue(), 'cannot read --domain')

    def test_malformed_domcaps(self):
        domcaps = self._write('bad-caps.xml', '<domainCapabilities>')
        self.assertEqual(2, self._run('--extra-spec', SEV_TRAIT,
                                      domcaps=domcaps))
        self.assertOneLine(self.stderr.getvalue())

    def test_bad_pair(self):
        self.assertEqual(2, self._run('--extra-spec', 'hw:mem_encryption'))
        self.assertOneLine(self.stderr.getvalue(), '--extra-spec',
                           'KEY=VALUE')

    def test_bad_kvm_amd_dir(self):
        rc = sev.main(['guest-xml', '--domain', self.domain,
                       '--kvm-amd-params', os.path.join(self.tmp, 'nope')])
        self.assertEqual(2, rc)
        self.assertOneLine(self.stderr.getvalue(), '--kvm-amd-params')


def snp_descriptor_json():
    return json.dumps({
        'interface-types': ['uefi'],
        'mapping': {'device': 'memory',
                    'filename': '/usr/share/ovmf/OVMF.fd'},
        'targets': [{'architecture': 'x86_64', 'machines': ['pc-q35-*']}],
        'features': ['amd-sev-snp']})


class GuestXmlSnpTestCase(base.CommandTestCase):
    """``guest-xml`` for SEV-SNP guests, on files."""

    command = 'guest-xml'
    # The same files and runner as the SEV tests, without their tests.
    _write = GuestXmlCommandTestCase._write
    _conf = GuestXmlCommandTestCase._conf
    _run = GuestXmlCommandTestCase._run
    assertOneLine = GuestXmlCommandTestCase.assertOneLine

    def setUp(self):
        super().setUp()
        self.params = os.path.join(self.tmp, 'parameters')
        self.fw_dir = os.path.join(self.tmp, 'firmware')
        self._write('firmware/60-edk2-x86_64.json',
                    descriptor_json(['acpi-s3', 'amd-sev']))
        self.domcaps = self._write('domcaps.xml', sev_host.domcaps_xml())
        with open(os.path.join(DATA, 'nova-guest-q35.xml')) as f:
            self.domain = self._write('domain.xml', f.read())
        self.conf = self._conf()
        sev_host.write_kvm_amd_params(self.params, sev='1', sev_es='0',
                                      sev_snp='Y')
        self._write('firmware/30-ovmf-sev-snp.json', snp_descriptor_json())
        self.snp_domcaps = self._write('snp-domcaps.xml', sev_host.domcaps_xml(
            sectypes=sev_host.SNP_SECTYPES))

    def test_snp_domain_printed(self):
        rc = self._run('--extra-spec', 'trait:HW_CPU_X86_AMD_SEV_SNP=required',
                       domcaps=self.snp_domcaps)
        self.assertEqual(0, rc, self.stderr.getvalue())
        self.assertOneLine(self.stderr.getvalue(),
                           'SEV-SNP guest: policy 0x00030000',
                           '30-ovmf-sev-snp.json (stateless)',
                           'memory not locked (guest_memfd)')
        root = etree.fromstring(self.stdout.getvalue())
        lsec = root.find('launchSecurity')
        self.assertEqual('sev-snp', lsec.get('type'))
        self.assertEqual('/usr/share/ovmf/OVMF.fd', root.findtext('os/loader'))
        self.assertIsNone(root.find('memoryBacking/locked'))

    def test_snp_refused_by_old_libvirt(self):
        rc = self._run('--image-property', 'hw_mem_encryption=true',
                       '--image-property',
                       'hw_mem_encryption_model=amd-sev-snp')
        self.assertEqual(1, rc)
        self.assertEqual('', self.stdout.getvalue())
        self.assertOneLine(self.stderr.getvalue(), 'SEV-SNP was requested',
                           'hw_mem_encryption_model=amd-sev-snp',
                           'libvirt or QEMU is too old')


class GuestXmlFirmwareDirTestCase(base.CommandTestCase):
    """``--firmware-dir``: another host's descriptors for a --domcaps file,
    instead of this machine's ([sev]firmware_descriptor_dirs).
    """

    command = 'guest-xml'
    _write = GuestXmlCommandTestCase._write
    assertOneLine = GuestXmlCommandTestCase.assertOneLine

    def setUp(self):
        super().setUp()
        self.params = os.path.join(self.tmp, 'parameters')
        sev_host.write_kvm_amd_params(self.params, sev='1', sev_es='0',
                                      sev_snp='Y')
        # This machine: no SNP firmware. The other host: an SNP build.
        self.fw_dir = os.path.join(self.tmp, 'firmware')
        self._write('firmware/60-edk2-x86_64.json',
                    descriptor_json(['acpi-s3', 'amd-sev']))
        self.other_dir = os.path.join(self.tmp, 'other-firmware')
        self._write('other-firmware/30-ovmf-sev-snp.json',
                    snp_descriptor_json())
        self._write('other-firmware/60-edk2-x86_64.json',
                    descriptor_json(['acpi-s3', 'amd-sev']))
        self.conf = GuestXmlCommandTestCase._conf(self)
        self.domcaps = self._write('snp-domcaps.xml', sev_host.domcaps_xml(
            sectypes=sev_host.SNP_SECTYPES))
        with open(os.path.join(DATA, 'nova-guest-q35.xml')) as f:
            self.domain = self._write('domain.xml', f.read())

    def _run(self, *args):
        return sev.main(['guest-xml', '--domain', self.domain,
                         '--domcaps', self.domcaps,
                         '--kvm-amd-params', self.params,
                         '--config-file', self.conf,
                         '--extra-spec',
                         'trait:HW_CPU_X86_AMD_SEV_SNP=required'] +
                        list(args))

    def test_this_machines_firmware_without_it(self):
        rc = self._run()
        self.assertEqual(1, rc)
        self.assertOneLine(self.stderr.getvalue(), 'amd-sev-snp')

    def test_the_other_hosts_firmware_with_it(self):
        rc = self._run('--firmware-dir', self.other_dir)
        self.assertEqual(0, rc, self.stderr.getvalue())
        self.assertOneLine(self.stderr.getvalue(), 'SEV-SNP guest',
                           'other-firmware/30-ovmf-sev-snp.json')

    def test_first_directory_wins(self):
        self._write('first/30-ovmf-sev-snp.json', descriptor_json(['amd-sev']))
        rc = self._run('--firmware-dir', os.path.join(self.tmp, 'first'),
                       '--firmware-dir', self.other_dir)
        self.assertEqual(1, rc)
        self.assertOneLine(self.stderr.getvalue(), 'amd-sev-snp')

    def test_not_a_directory(self):
        rc = self._run('--firmware-dir', self.domcaps)
        self.assertEqual(2, rc)
        self.assertOneLine(self.stderr.getvalue(), '--firmware-dir',
                           'is not a directory')

    def test_help_says_what_happens(self):
        out = io.StringIO()
        with mock.patch('sys.stdout', out):
            self.assertRaises(SystemExit, sev.main, ['guest-xml', '--help'])
        text = ' '.join(out.getvalue().split())
        self.assertNotIn('not checked', text)
        self.assertIn("chosen among this machine's descriptors", text)
        self.assertIn('--firmware-dir DIR', text)
