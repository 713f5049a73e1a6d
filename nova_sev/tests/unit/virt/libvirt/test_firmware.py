import json
import os

import fixtures
import testtools

from nova_sev.virt.libvirt import firmware as fw


def _descriptor(code, features, machines=('pc-q35-*',), arch='x86_64',
                interface='uefi'):
    return {
        'interface-types': [interface],
        'mapping': {'device': 'flash',
                    'executable': {'filename': code, 'format': 'raw'},
                    'nvram-template': {'filename': code + '.vars',
                                       'format': 'raw'}},
        'targets': [{'architecture': arch, 'machines': list(machines)}],
        'features': list(features),
    }


class FirmwareDescriptorTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.etc = self.useFixture(fixtures.TempDir()).path
        self.share = self.useFixture(fixtures.TempDir()).path

    def _write(self, directory, name, data):
        with open(os.path.join(directory, name), 'w') as f:
            f.write(data if isinstance(data, str) else json.dumps(data))

    def test_order_and_hiding(self):
        self._write(self.share, '60-plain.json',
                    _descriptor('/plain', ['amd-sev']))
        self._write(self.share, '50-secure.json',
                    _descriptor('/secure', ['amd-sev', 'requires-smm']))
        self._write(self.etc, '60-plain.json',
                    _descriptor('/local', ['amd-sev', 'amd-sev-es']))
        self._write(self.share, 'README', 'not a descriptor')
        found = fw.load_descriptors([self.etc, self.share])
        self.assertEqual(['/secure', '/local'],
                         [d.executable for d in found])
        self.assertEqual('/local.vars', found[1].nvram_template)

    def test_broken_file_does_not_hide_others(self):
        self._write(self.share, '10-broken.json', '{"mapping": ')
        self._write(self.share, '20-list.json', '[1, 2]')
        self._write(self.share, '30-ok.json', _descriptor('/ok', []))
        found = fw.load_descriptors([self.share, '/nonexistent'])
        self.assertEqual(['/ok'], [d.executable for d in found])

    def test_select_prefers_no_smm(self):
        descs = [fw.parse_descriptor('a', _descriptor(
                     '/secure', ['amd-sev', 'requires-smm', 'secure-boot'])),
                 fw.parse_descriptor('b', _descriptor('/plain',
                                                      ['amd-sev']))]
        chosen = fw.select_firmware(descs, 'x86_64', 'pc-q35-7.2',
                                    (fw.FEATURE_AMD_SEV,))
        self.assertEqual('/plain', chosen.executable)

    def test_select_by_feature_machine_arch(self):
        descs = [
            fw.parse_descriptor('a', _descriptor('/i440fx', ['amd-sev'],
                                                 machines=('pc-i440fx-*',))),
            fw.parse_descriptor('b', _descriptor('/arm', ['amd-sev'],
                                                 arch='aarch64')),
            fw.parse_descriptor('c', _descriptor('/bios', ['amd-sev'],
                                                 interface='bios')),
            fw.parse_descriptor('d', _descriptor('/nosev', [])),
        ]
        self.assertIsNone(fw.select_firmware(
            descs, 'x86_64', 'pc-q35-7.2', (fw.FEATURE_AMD_SEV,)))
        self.assertEqual('/nosev', fw.select_firmware(
            descs, 'x86_64', 'pc-q35-7.2', ()).executable)


def _memory_descriptor(code, features):
    data = _descriptor(code, features)
    data['mapping'] = {'device': 'memory',
                       'filename': code, 'format': 'raw'}
    return data


class SnpFirmwareTestCase(testtools.TestCase):

    def test_memory_mapping_is_parsed_and_stateless(self):
        desc = fw.parse_descriptor('s', _memory_descriptor(
            '/usr/share/ovmf/OVMF.fd', ['amd-sev-snp']))
        self.assertEqual(fw.DEVICE_MEMORY, desc.device)
        self.assertTrue(fw.is_stateless(desc))
        self.assertFalse(fw.is_stateless(fw.parse_descriptor(
            'f', _descriptor('/code', ['amd-sev-snp']))))

    def test_select_needs_snp_feature_and_no_nvram(self):
        descs = [
            fw.parse_descriptor('a', _descriptor('/flash', ['amd-sev-snp'])),
            fw.parse_descriptor('b', _memory_descriptor('/es', ['amd-sev'])),
            fw.parse_descriptor('c', _memory_descriptor('/snp',
                                                        ['amd-sev-snp'])),
        ]
        self.assertEqual('/snp', fw.select_snp_firmware(
            descs, 'x86_64', 'pc-q35-10.0').executable)
        self.assertIsNone(fw.select_snp_firmware(descs[:2], 'x86_64',
                                                 'pc-q35-10.0'))
        # The SEV selection never takes stateless firmware.
        self.assertIsNone(fw.select_firmware(
            descs[1:], 'x86_64', 'pc-q35-10.0', (fw.FEATURE_AMD_SEV,)))
