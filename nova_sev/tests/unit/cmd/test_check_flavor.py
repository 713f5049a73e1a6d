import json
import os

import testtools

from nova_sev.cmd import check_flavor
from nova_sev.cmd import common
from nova_sev import exception
from nova_sev.tests.unit.cmd import base


class CheckFlavorCommandTestCase(base.CommandTestCase):
    """``nova-sev check-flavor`` as an admin runs it."""

    command = 'check-flavor'

    def setUp(self):
        super().setUp()

    def _file(self, name, data):
        return self.write_file(name, data)

    def _run(self, *args):
        return self.run_command(*args)

    def test_working_flavor_text(self):
        rc = self._run('--extra-spec', 'trait:HW_CPU_X86_AMD_SEV=required')
        self.assertEqual(0, rc)
        out = self.stdout.getvalue()
        self.assertIn('asks for: SEV', out)
        self.assertIn('ADVICE: add resources:MEM_ENCRYPTION_CONTEXT=1', out)
        self.assertIn('result: gives a working SEV guest', out)
        self.assertEqual('', self.stderr.getvalue())

    def test_snp_flavor_text_names_the_mode(self):
        rc = self._run('--extra-spec',
                       'trait:HW_CPU_X86_AMD_SEV_SNP=required')
        self.assertEqual(0, rc)
        self.assertIn('asks for: SEV-SNP\n', self.stdout.getvalue())

    def test_request_group_agrees_with_guest_xml(self):
        rc = self._run('--extra-spec', 'trait1:HW_CPU_X86_AMD_SEV=required',
                       '--extra-spec', 'resources1:VCPU=1')
        self.assertEqual(0, rc)
        out = self.stdout.getvalue()
        self.assertIn('asks for: SEV', out)
        self.assertIn('result: gives a working SEV guest', out)

    def test_request_groups_in_conflict(self):
        rc = self._run('--extra-spec', 'trait1:HW_CPU_X86_AMD_SEV=forbidden',
                       '--extra-spec', 'resources1:VCPU=1',
                       '--extra-spec', 'trait2:HW_CPU_X86_AMD_SEV=required',
                       '--extra-spec', 'resources2:VCPU=1')
        self.assertEqual(1, rc)
        self.assertIn('trait1:HW_CPU_X86_AMD_SEV=forbidden',
                      self.stdout.getvalue())

    def test_new_client_json_files(self):
        flavor = self._file('flavor.json', {
            'name': 'm1.sev', 'ram': 4096, 'vcpus': 2,
            'properties': {'trait:HW_CPU_X86_AMD_SEV': 'required',
                           'resources:MEM_ENCRYPTION_CONTEXT': '1'}})
        image = self._file('image.json', {
            'name': 'focal', 'properties': {'hw_disk_bus': 'scsi',
                                            'hw_scsi_model': 'virtio-scsi'}})
        rc = self._run('--flavor-json', flavor, '--image-json', image,
                       '--format', 'json')
        self.assertEqual(0, rc)
        out = json.loads(self.stdout.getvalue())
        self.assertTrue(out['works'])
        self.assertEqual('sev', out['sev_mode'])
        self.assertEqual('m1.sev', out['flavor'])
        self.assertEqual('focal', out['image'])
        self.assertEqual(4718592, out['guest']['hard_limit_kib'])
        self.assertEqual('0x0033', out['guest']['policy'])
        self.assertEqual(['advice'],
                         [f['level'] for f in out['findings']])

    def test_old_client_property_strings(self):
        flavor = self._file('flavor.json', {
            'name': 'm1.sev', 'ram': 2048,
            'properties': "hw:mem_encryption='true', "
                          "pci_passthrough:alias='nic:1,gpu:2'"})
        image = self._file('image.json', {
            'name': 'old', 'properties': "hw_cdrom_bus='ide'",
            'hw_machine_type': 'pc'})
        rc = self._run('--flavor-json', flavor, '--image-json', image,
                       '--format', 'json')
        self.assertEqual(1, rc)
        out = json.loads(self.stdout.getvalue())
        self.assertEqual({'hw:mem_encryption': 'true',
                          'pci_passthrough:alias': 'nic:1,gpu:2'},
                         out['extra_specs'])
        self.assertEqual({'hw_cdrom_bus': 'ide', 'hw_machine_type': 'pc'},
                         out['image_properties'])
        self.assertFalse(out['works'])
        self.assertIsNone(out['guest'])
        keys = [f['key'] for f in out['findings'] if f['level'] == 'error']
        self.assertEqual(['hw_machine_type', 'pci_passthrough:alias',
                          'hw_cdrom_bus'], keys)
        err = self.stderr.getvalue()
        self.assertEqual(1, len(err.splitlines()))
        self.assertIn('would be refused: SEV guests need the q35', err)

    def test_command_line_wins_over_file(self):
        flavor = self._file('flavor.json', {
            'properties': {'trait:HW_CPU_X86_AMD_SEV': 'require'}})
        rc = self._run('--flavor-json', flavor, '--extra-spec',
                       'trait:HW_CPU_X86_AMD_SEV=required')
        self.assertEqual(0, rc)

    def test_misspelling_refused(self):
        rc = self._run('--extra-spec', 'trait:HW_CPU_X86_AMD_SEV=require',
                       '--image-property', 'hw_disk_bus=virtio')
        self.assertEqual(1, rc)
        out = self.stdout.getvalue()
        self.assertIn("not 'require'", out)
        self.assertIn('virtio-blk', out)
        self.assertIn('REFUSED, 2 problem(s)', out)

    def test_refused_has_no_guest(self):
        # The misspelling alone refuses the pair, though read as meant the
        # guest plan succeeds: no guest is reported for a refused pair.
        rc = self._run('--extra-spec', 'trait:HW_CPU_X86_AMD_SEV=require',
                       '--format', 'json')
        self.assertEqual(1, rc)
        out = json.loads(self.stdout.getvalue())
        self.assertFalse(out['works'])
        self.assertEqual('sev', out['sev_mode'])
        self.assertIsNone(out['guest'])

    def test_config_allows_virtio_blk(self):
        conf = self._file('nova.conf',
                          '[sev]\nallow_virtio_blk_boot_disk = true\n')
        rc = self._run('--extra-spec', 'trait:HW_CPU_X86_AMD_SEV=required',
                       '--image-property', 'hw_disk_bus=virtio',
                       '--config-file', conf)
        self.assertEqual(0, rc)

    def test_config_machine_type(self):
        # nova.conf's [libvirt]hw_machine_type applies where the image sets
        # none; the image's own q35 wins over it.
        conf = self._file('nova.conf', '[libvirt]\nhw_machine_type = '
                          'x86_64=pc-i440fx-7.2\n')
        rc = self._run('--extra-spec', 'trait:HW_CPU_X86_AMD_SEV=required',
                       '--config-file', conf, '--format', 'json')
        self.assertEqual(1, rc)
        self.assertIn('[libvirt]hw_machine_type', self.stdout.getvalue())
        self.stdout.seek(0)
        self.stdout.truncate()
        rc = self._run('--extra-spec', 'trait:HW_CPU_X86_AMD_SEV=required',
                       '--image-property', 'hw_machine_type=q35',
                       '--config-file', conf)
        self.assertEqual(0, rc)

    def test_bad_input(self):
        for args, words in (
                (['--extra-spec', 'novalue'], 'not KEY=VALUE'),
                ([], 'nothing to check'),
                (['--flavor-json', os.path.join(self.tmp, 'nope')],
                 'cannot read --flavor-json'),
                (['--flavor-json', self._file('bad.json', '{')],
                 'is not JSON'),
                (['--image-json', self._file('list.json', '[]')],
                 'not a JSON object'),
                (['--flavor-json', self._file('p.json',
                                              '{"properties": "a=b"}')],
                 "key='value' pairs")):
            self.stderr.seek(0)
            self.stderr.truncate()
            self.assertEqual(2, self._run(*args), args)
            err = self.stderr.getvalue()
            self.assertEqual(1, len(err.splitlines()), err)
            self.assertIn(words, err)
            self.assertNotIn('Traceback', err)


class ShowParsingTestCase(testtools.TestCase):
    """What ``openstack flavor/image show -f json`` print, old and new."""

    def test_property_string(self):
        self.assertEqual(
            {'hw:mem_encryption': 'true', 'trait:HW_CPU_AMD_SEV': 'required',
             'pci_passthrough:alias': 'a:1,b:2'},
            common.parse_property_string(
                "hw:mem_encryption='true', trait:HW_CPU_AMD_SEV='required', "
                "pci_passthrough:alias='a:1,b:2'", 'flavor'))
        self.assertEqual({}, common.parse_property_string('', 'x'))

    def test_flavor_from_show(self):
        self.assertEqual(
            ({'a': 'b'}, 512, 'tiny'),
            check_flavor.flavor_from_show({'name': 'tiny', 'ram': 512,
                                           'properties': {'a': 'b'}}))
        self.assertEqual(({}, 0, None), check_flavor.flavor_from_show(
            {'properties': ''}))
        self.assertRaises(exception.InvalidInput,
                          check_flavor.flavor_from_show, {'ram': 'lots'})

    def test_image_from_show_top_level(self):
        props, name = check_flavor.image_from_show(
            {'name': 'i', 'hw_disk_bus': 'scsi', 'size': 1,
             'properties': {'hw_machine_type': 'q35'}})
        self.assertEqual({'hw_disk_bus': 'scsi', 'hw_machine_type': 'q35'},
                         props)
        self.assertEqual('i', name)

    def test_key_values(self):
        self.assertEqual({'a': 'b=c'}, common.parse_key_values(
            ['a=b=c'], '--extra-spec'))
