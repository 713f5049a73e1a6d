"""Request interpretation: what a flavor and an image ask of an SEV guest."""

import testtools

from nova_sev import exception
from nova_sev.virt import hardware
from nova_sev.virt.hardware import SevMode

SEV = 'trait:HW_CPU_X86_AMD_SEV'
OLD_SEV = 'trait:HW_CPU_AMD_SEV'
SEV_ES = 'trait:HW_CPU_X86_AMD_SEV_ES'


class TestGetSevMode(testtools.TestCase):

    def assertMode(self, mode, extra_specs=None, image_props=None):
        self.assertEqual(mode, hardware.get_sev_mode(extra_specs or {},
                                                     image_props or {}))

    def test_nothing_asked(self):
        self.assertMode(SevMode.NONE)
        self.assertMode(SevMode.NONE, {'hw:cpu_policy': 'dedicated'},
                        {'hw_disk_bus': 'scsi'})

    def test_flavor_traits_both_spellings(self):
        self.assertMode(SevMode.SEV, {SEV: 'required'})
        self.assertMode(SevMode.SEV, {OLD_SEV: 'required'})
        self.assertMode(SevMode.SEV, {SEV: 'required', OLD_SEV: 'required'})

    def test_image_traits_both_spellings(self):
        self.assertMode(SevMode.SEV, image_props={SEV: 'required'})
        self.assertMode(SevMode.SEV, image_props={OLD_SEV: 'required'})

    def test_image_traits_required_list(self):
        self.assertMode(SevMode.SEV, image_props={
            'traits_required': ['HW_CPU_X86_AMD_SEV']})
        self.assertMode(SevMode.SEV_ES, image_props={
            'traits_required': ['HW_CPU_X86_AMD_SEV_ES']})

    def test_mem_encryption_strings_and_bools(self):
        for value in ('true', 'True', '1', 'yes', 'on', True):
            self.assertMode(SevMode.SEV, {'hw:mem_encryption': value})
            self.assertMode(SevMode.SEV,
                            image_props={'hw_mem_encryption': value})
        for value in ('false', 'False', '0', 'no', 'off', False):
            self.assertMode(SevMode.NONE, {'hw:mem_encryption': value})
            self.assertMode(SevMode.NONE,
                            image_props={'hw_mem_encryption': value})

    def test_unparseable_boolean(self):
        e = self.assertRaises(exception.InvalidSevRequest,
                              hardware.get_sev_mode,
                              {'hw:mem_encryption': 'maybe'}, {})
        self.assertIn('hw:mem_encryption', str(e))
        self.assertIn('maybe', str(e))
        self.assertIsInstance(e, exception.SevGuestRefused)

    def test_unknown_trait_value(self):
        e = self.assertRaises(exception.InvalidSevRequest,
                              hardware.get_sev_mode, {SEV: 'preferred'}, {})
        self.assertIn(SEV, str(e))

    def test_forbidden_trait_alone_is_no_sev(self):
        self.assertMode(SevMode.NONE, {SEV: 'forbidden'})
        self.assertMode(SevMode.NONE, image_props={OLD_SEV: 'forbidden'})

    def test_flavor_requires_image_forbids(self):
        e = self.assertRaises(exception.SevRequestConflict,
                              hardware.get_sev_mode,
                              {SEV: 'required'}, {SEV: 'forbidden'})
        msg = str(e)
        self.assertIn('flavor extra spec %s=required' % SEV, msg)
        self.assertIn('image property %s=forbidden' % SEV, msg)

    def test_image_requires_flavor_forbids(self):
        e = self.assertRaises(exception.SevRequestConflict,
                              hardware.get_sev_mode,
                              {'hw:mem_encryption': 'false'},
                              {'hw_mem_encryption': 'true'})
        self.assertIn('hw:mem_encryption=false', str(e))
        self.assertIn('hw_mem_encryption=true', str(e))

    def test_conflict_within_flavor(self):
        self.assertRaises(exception.SevRequestConflict,
                          hardware.get_sev_mode,
                          {SEV: 'required', OLD_SEV: 'forbidden'}, {})
        self.assertRaises(exception.SevRequestConflict,
                          hardware.get_sev_mode,
                          {SEV: 'required', 'hw:mem_encryption': 'no'}, {})

    def test_sev_es_by_trait(self):
        self.assertMode(SevMode.SEV_ES, {SEV_ES: 'required'})
        self.assertMode(SevMode.SEV_ES, {SEV: 'required', SEV_ES: 'required'})
        self.assertMode(SevMode.SEV_ES, image_props={SEV_ES: 'required'})

    def test_sev_es_forbidden_gives_sev(self):
        self.assertMode(SevMode.SEV, {SEV: 'required', SEV_ES: 'forbidden'})

    def test_sev_es_by_model(self):
        self.assertMode(SevMode.SEV_ES, {'hw:mem_encryption': 'true',
                                         'hw:mem_encryption_model':
                                         'amd-sev-es'})
        self.assertMode(SevMode.SEV_ES, {SEV: 'required'},
                        {'hw_mem_encryption_model': 'amd-sev-es'})
        self.assertMode(SevMode.SEV, {'hw:mem_encryption': 'true',
                                      'hw:mem_encryption_model': 'amd-sev'})

    def test_model_without_encryption(self):
        e = self.assertRaises(exception.InvalidSevRequest,
                              hardware.get_sev_mode,
                              {'hw:mem_encryption_model': 'amd-sev-es'}, {})
        self.assertIn('hw:mem_encryption_model', str(e))
        self.assertIn('without memory encryption', str(e))
        self.assertRaises(exception.InvalidSevRequest,
                          hardware.get_sev_mode,
                          {}, {'hw_mem_encryption': 'false',
                               'hw_mem_encryption_model': 'amd-sev'})

    def test_unknown_model(self):
        e = self.assertRaises(exception.InvalidSevRequest,
                              hardware.get_sev_mode,
                              {'hw:mem_encryption': 'true',
                               'hw:mem_encryption_model': 'amd-snp'}, {})
        self.assertIn('amd-snp', str(e))
        self.assertIn('amd-sev-es', str(e))

    def test_model_conflicts(self):
        self.assertRaises(exception.SevRequestConflict,
                          hardware.get_sev_mode,
                          {'hw:mem_encryption': 'true',
                           'hw:mem_encryption_model': 'amd-sev'},
                          {'hw_mem_encryption_model': 'amd-sev-es'})
        self.assertRaises(exception.SevRequestConflict,
                          hardware.get_sev_mode,
                          {SEV_ES: 'forbidden', 'hw:mem_encryption': 'true'},
                          {'hw_mem_encryption_model': 'amd-sev-es'})

    def test_es_trait_against_forbidden_encryption(self):
        e = self.assertRaises(exception.SevRequestConflict,
                              hardware.get_sev_mode,
                              {SEV_ES: 'required'}, {SEV: 'forbidden'})
        self.assertIn(SEV_ES, str(e))

    def test_none_values_ignored(self):
        self.assertMode(SevMode.NONE, {SEV: None},
                        {'hw_mem_encryption': None})

    def test_requested_by(self):
        self.assertEqual(
            'flavor extra spec %s=required, image property '
            'hw_mem_encryption=True' % SEV,
            hardware.sev_requested_by({SEV: 'required'},
                                      {'hw_mem_encryption': True}))
        self.assertEqual('', hardware.sev_requested_by({}, {}))


class TestHelpers(testtools.TestCase):

    def test_machine_type_image_wins(self):
        req = hardware.requested_machine_type(
            {'hw_machine_type': 'pc'}, ['x86_64=q35'])
        self.assertEqual('pc', req.value)
        self.assertEqual('image property hw_machine_type', req.source)

    def test_machine_type_from_conf(self):
        req = hardware.requested_machine_type(
            {}, ['aarch64=virt', 'x86_64=pc-i440fx-7.2'])
        self.assertEqual('pc-i440fx-7.2', req.value)
        self.assertEqual('[libvirt]hw_machine_type', req.source)
        self.assertIsNone(hardware.requested_machine_type({}, None))
        self.assertIsNone(hardware.requested_machine_type(
            {}, ['aarch64=virt']))

    def test_is_q35(self):
        self.assertTrue(hardware.is_q35('q35'))
        self.assertTrue(hardware.is_q35('pc-q35-7.2'))
        self.assertFalse(hardware.is_q35('pc'))
        self.assertFalse(hardware.is_q35('pc-i440fx-7.2'))

    def test_buses(self):
        self.assertEqual('virtio', hardware.requested_disk_bus(
            {'hw_disk_bus': 'VirtIO'}).value)
        self.assertIsNone(hardware.requested_disk_bus({}))
        self.assertEqual('ide', hardware.requested_cdrom_bus(
            {'hw_cdrom_bus': 'ide'}).value)
        self.assertIsNone(hardware.requested_cdrom_bus({'hw_cdrom_bus': ''}))

    def test_huge_pages(self):
        for value in ('large', '2MB', '1GB', '2048'):
            self.assertTrue(hardware.uses_huge_pages(
                {'hw:mem_page_size': value}, {}))
        self.assertTrue(hardware.uses_huge_pages(
            {}, {'hw_mem_page_size': 'large'}))
        for value in ('small', 'any', '4KB', '4'):
            self.assertFalse(hardware.uses_huge_pages(
                {'hw:mem_page_size': value}, {}))
        self.assertFalse(hardware.uses_huge_pages({}, {}))

    def test_pci_passthrough(self):
        req = hardware.requested_pci_passthrough(
            {'pci_passthrough:alias': 'a1:2'})
        self.assertEqual('flavor extra spec pci_passthrough:alias',
                         req.source)
        self.assertIsNone(hardware.requested_pci_passthrough({}))

    def test_vgpus(self):
        self.assertIsNotNone(hardware.requested_vgpus({'resources:VGPU': '1'}))
        self.assertEqual('flavor extra spec resources1:VGPU',
                         hardware.requested_vgpus(
                             {'resources1:VGPU': '1'}).source)
        self.assertIsNone(hardware.requested_vgpus({'resources:VGPU': '0'}))
        self.assertIsNone(hardware.requested_vgpus({'resources:VCPU': '2'}))
        self.assertRaises(exception.InvalidSevRequest,
                          hardware.requested_vgpus, {'resources:VGPU': 'x'})

    def test_video_ram(self):
        self.assertEqual(0, hardware.requested_video_ram_mb({}))
        self.assertEqual(64, hardware.requested_video_ram_mb(
            {'hw_video_ram': '64'}))
        self.assertRaises(exception.InvalidSevRequest,
                          hardware.requested_video_ram_mb,
                          {'hw_video_ram': '-1'})


SEV_SNP = 'trait:HW_CPU_X86_AMD_SEV_SNP'


class TestGetSevModeSnp(testtools.TestCase):
    """Every way of asking for SEV-SNP, and the conflicts that name both
    sides.
    """

    def assertMode(self, mode, extra_specs=None, image_props=None):
        self.assertEqual(mode, hardware.get_sev_mode(extra_specs or {},
                                                     image_props or {}))

    def test_each_way_of_asking(self):
        self.assertMode(SevMode.SEV_SNP, {SEV_SNP: 'required'})
        self.assertMode(SevMode.SEV_SNP, {}, {SEV_SNP: 'required'})
        self.assertMode(SevMode.SEV_SNP, {}, {
            'traits_required': ['HW_CPU_X86_AMD_SEV_SNP']})
        self.assertMode(SevMode.SEV_SNP, {
            'hw:mem_encryption': 'true',
            'hw:mem_encryption_model': 'amd-sev-snp'})
        self.assertMode(SevMode.SEV_SNP, {}, {
            'hw_mem_encryption': True,
            'hw_mem_encryption_model': 'amd-sev-snp'})
        self.assertMode(SevMode.SEV_SNP, {'hw:mem_encryption': 'true'},
                        {'hw_mem_encryption_model': 'AMD-SEV-SNP'})

    def test_snp_forbidden_gives_sev(self):
        self.assertMode(SevMode.SEV, {SEV: 'required',
                                      SEV_SNP: 'forbidden'})

    def test_model_without_encryption(self):
        e = self.assertRaises(exception.InvalidSevRequest,
                              hardware.get_sev_mode,
                              {'hw:mem_encryption_model': 'amd-sev-snp'}, {})
        self.assertIn('hw:mem_encryption=true', str(e))

    def test_es_and_snp_conflict_names_both(self):
        e = self.assertRaises(exception.SevRequestConflict,
                              hardware.get_sev_mode,
                              {SEV_ES: 'required'}, {SEV_SNP: 'required'})
        self.assertIn('flavor extra spec %s=required asks for SEV-ES' %
                      SEV_ES, str(e))
        self.assertIn('image property %s=required asks for SEV-SNP' %
                      SEV_SNP, str(e))

    def test_model_conflicts_name_both(self):
        e = self.assertRaises(exception.SevRequestConflict,
                              hardware.get_sev_mode,
                              {'hw:mem_encryption': 'true',
                               'hw:mem_encryption_model': 'amd-sev-es'},
                              {'hw_mem_encryption_model': 'amd-sev-snp'})
        self.assertIn('hw:mem_encryption_model=amd-sev-es', str(e))
        self.assertIn('hw_mem_encryption_model=amd-sev-snp', str(e))
        e = self.assertRaises(exception.SevRequestConflict,
                              hardware.get_sev_mode,
                              {SEV_SNP: 'required'},
                              {'hw_mem_encryption': 'true',
                               'hw_mem_encryption_model': 'amd-sev'})
        self.assertIn(SEV_SNP, str(e))
        self.assertIn('hw_mem_encryption_model=amd-sev', str(e))

    def test_snp_trait_against_forbidden_encryption(self):
        e = self.assertRaises(exception.SevRequestConflict,
                              hardware.get_sev_mode,
                              {SEV_SNP: 'required'}, {SEV: 'forbidden'})
        self.assertIn(SEV_SNP, str(e))
        self.assertIn(SEV, str(e))

    def test_requested_by(self):
        self.assertEqual(
            'flavor extra spec %s=required' % SEV_SNP,
            hardware.sev_requested_by({SEV_SNP: 'required'}, {}))

    def test_stateless_firmware(self):
        self.assertIsNone(hardware.requested_stateless_firmware({}))
        for value, text in ((True, 'true'), ('false', 'false'),
                            ('True', 'true')):
            request = hardware.requested_stateless_firmware(
                {'hw_firmware_stateless': value})
            self.assertEqual(text, request.value)
            self.assertEqual('image property hw_firmware_stateless',
                             request.source)
        self.assertRaises(exception.InvalidSevRequest,
                          hardware.requested_stateless_firmware,
                          {'hw_firmware_stateless': 'maybe'})

    def test_boots_kernel_directly(self):
        self.assertFalse(hardware.boots_kernel_directly({}))
        self.assertFalse(hardware.boots_kernel_directly(
            {'kernel_id': 'nokernel'}))
        self.assertTrue(hardware.boots_kernel_directly(
            {'kernel_id': '0b8f4e2a-3bd2-4c3c-9b1e-5e0f7c7d2c11'}))


class TestGranularRequestGroups(testtools.TestCase):
    """Nova's numbered and suffixed request groups (``trait1:``,
    ``trait_SEV:``): placement puts a guest that requires an SEV trait in
    any group on an SEV host, so the guest must be SEV there.
    """

    def assertMode(self, mode, extra_specs=None, image_props=None):
        self.assertEqual(mode, hardware.get_sev_mode(extra_specs or {},
                                                     image_props or {}))

    def test_any_group_requiring_sev_is_sev(self):
        for prefix in ('trait1', 'trait2', 'trait_SEV', 'trait-x', 'trait42'):
            for name in hardware.SEV_TRAIT_NAMES:
                self.assertMode(SevMode.SEV, {
                    '%s:%s' % (prefix, name): 'required',
                    'resources%s:VCPU' % prefix[len('trait'):]: '1'})

    def test_any_group_requiring_sev_es_is_sev_es(self):
        self.assertMode(SevMode.SEV_ES,
                        {'trait1:HW_CPU_X86_AMD_SEV_ES': 'required'})
        self.assertMode(SevMode.SEV_ES, {
            'trait_A:HW_CPU_X86_AMD_SEV': 'required',
            'trait_B:HW_CPU_X86_AMD_SEV_ES': 'required'})

    def test_group_forbidding_alone_is_no_sev(self):
        self.assertMode(SevMode.NONE,
                        {'trait1:HW_CPU_X86_AMD_SEV': 'forbidden'})

    def test_one_group_forbids_another_requires(self):
        for specs in ({'trait1:HW_CPU_X86_AMD_SEV': 'forbidden',
                       'trait2:HW_CPU_X86_AMD_SEV': 'required'},
                      {'trait:HW_CPU_X86_AMD_SEV': 'required',
                       'trait_SEV:HW_CPU_AMD_SEV': 'forbidden'},
                      {'trait1:HW_CPU_X86_AMD_SEV': 'forbidden',
                       'hw:mem_encryption': 'true'}):
            e = self.assertRaises(exception.SevRequestConflict,
                                  hardware.get_sev_mode, specs, {})
            for key, value in specs.items():
                self.assertIn('%s=%s' % (key, value), str(e))

    def test_group_against_image(self):
        e = self.assertRaises(exception.SevRequestConflict,
                              hardware.get_sev_mode,
                              {'trait1:HW_CPU_X86_AMD_SEV': 'required'},
                              {'trait:HW_CPU_X86_AMD_SEV': 'forbidden'})
        self.assertIn('flavor extra spec trait1:HW_CPU_X86_AMD_SEV=required',
                      str(e))

    def test_group_value_checked(self):
        e = self.assertRaises(exception.InvalidSevRequest,
                              hardware.get_sev_mode,
                              {'trait1:HW_CPU_X86_AMD_SEV': 'preferred'}, {})
        self.assertIn('trait1:HW_CPU_X86_AMD_SEV', str(e))

    def test_images_have_no_groups(self):
        # Nova builds no request groups from image properties (only
        # traits_required, from "trait:"), so none asks for anything.
        self.assertMode(SevMode.NONE, image_props={
            'trait1:HW_CPU_X86_AMD_SEV': 'required'})

    def test_traits_is_group_s(self):
        # Nova's scheduler reads "traits:" as request group "s".
        self.assertMode(SevMode.SEV, {'traits:HW_CPU_X86_AMD_SEV': 'required',
                                      'resourcess:VCPU': '1'})

    def test_not_a_trait_key(self):
        for key in ('trait1HW_CPU_X86_AMD_SEV',
                    'xtrait1:HW_CPU_X86_AMD_SEV',
                    'trait%s:HW_CPU_X86_AMD_SEV' % ('1' * 65)):
            self.assertMode(SevMode.NONE, {key: 'required'})

    def test_requested_by_names_the_group(self):
        self.assertEqual(
            'flavor extra spec trait_SEV:HW_CPU_X86_AMD_SEV=required',
            hardware.sev_requested_by(
                {'trait_SEV:HW_CPU_X86_AMD_SEV': 'required'}, {}))

    def test_parse_trait_key(self):
        self.assertEqual(('', 'HW_CPU_X86_AMD_SEV'),
                         hardware.parse_trait_key('trait:HW_CPU_X86_AMD_SEV'))
        self.assertEqual(('_SEV', 'X'),
                         hardware.parse_trait_key('trait_SEV:X'))
        self.assertEqual(('1', 'X'), hardware.parse_trait_key('trait1:X'))
        self.assertIsNone(hardware.parse_trait_key('resources1:VCPU'))
        self.assertIsNone(hardware.parse_trait_key('hw:mem_encryption'))

    def test_trait_keys_order(self):
        specs = {'trait2:HW_CPU_X86_AMD_SEV': 'required',
                 'trait:HW_CPU_X86_AMD_SEV': 'required',
                 'trait1:HW_CPU_X86_AMD_SEV': None,
                 'trait_a:HW_CPU_AMD_SEV': 'required'}
        self.assertEqual(
            ['trait:HW_CPU_X86_AMD_SEV', 'trait2:HW_CPU_X86_AMD_SEV'],
            hardware.trait_keys(hardware.FLAVOR, specs,
                                'HW_CPU_X86_AMD_SEV'))
        self.assertEqual(
            ['trait:HW_CPU_X86_AMD_SEV'],
            hardware.trait_keys(hardware.IMAGE, specs, 'HW_CPU_X86_AMD_SEV'))


class TestBoolFromString(testtools.TestCase):

    def test_as_oslo_utils_reads_it(self):
        # Nova reads hw:mem_encryption with oslo.utils' strutils.
        from oslo_utils import strutils
        for value in ('1', 't', 'True', ' yes ', 'ON', 'y', '0', 'f',
                      'False', 'no', 'off', 'N', '', 'maybe', '2', None, 1,
                      0, True, False):
            self.assertEqual(strutils.bool_from_string(value),
                             hardware.bool_from_string(value), value)
            try:
                expected = strutils.bool_from_string(value, strict=True)
            except ValueError:
                self.assertRaises(ValueError, hardware.bool_from_string,
                                  value, strict=True)
            else:
                self.assertEqual(expected, hardware.bool_from_string(
                    value, strict=True))
