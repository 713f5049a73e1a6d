import os_resource_classes as orc
import os_traits
import testtools

from nova_sev.cmd import flavor_check as fc
from nova_sev.virt.hardware import SevMode
from nova_sev.virt.libvirt import guest_plan

SEV = {'trait:%s' % os_traits.HW_CPU_X86_AMD_SEV: 'required'}
COUNTED = {'resources:%s' % orc.MEM_ENCRYPTION_CONTEXT: '1'}


def _errors(check):
    return [f.message for f in check.errors]


def _levels(check):
    return [f.level for f in check.findings]


class CheckFlavorTestCase(testtools.TestCase):
    """A flavor/image pair judged by the request and guest plan rules."""

    def test_good_flavor_only_advice(self):
        check = fc.check_flavor(SEV, {}, ram_mb=4096)
        self.assertTrue(check.works)
        self.assertEqual(SevMode.SEV, check.mode)
        self.assertEqual([fc.ADVICE, fc.ADVICE], _levels(check))
        self.assertIn('resources:MEM_ENCRYPTION_CONTEXT=1',
                      check.findings[0].message)
        self.assertIn('hw:mem_page_size=large', check.findings[1].message)
        # The guest plan's own numbers: the spec's 4 GiB example.
        self.assertEqual(4718592, check.plan.hard_limit_kib)
        self.assertEqual('q35', check.plan.machine_type)

    def test_no_huge_page_advice_when_a_page_size_is_chosen(self):
        for specs, props in (({'hw:mem_page_size': 'small'}, {}),
                             ({}, {'hw_mem_page_size': '4'})):
            check = fc.check_flavor(dict(SEV, **COUNTED, **specs), props)
            self.assertTrue(check.works, _errors(check))
            self.assertNotIn(fc.ADVICE, _levels(check))

    def test_no_advice_when_counted_and_huge_pages(self):
        check = fc.check_flavor(
            dict(SEV, **COUNTED, **{'hw:mem_page_size': 'large'}), {})
        self.assertTrue(check.works)
        self.assertEqual((), check.findings)
        self.assertIsNone(check.plan.hard_limit_kib)

    def test_hw_mem_encryption_needs_no_resources_advice(self):
        # Nova's scheduler adds MEM_ENCRYPTION_CONTEXT=1 itself then.
        check = fc.check_flavor({'hw:mem_encryption': 'true',
                                 'hw:mem_page_size': '1GB'}, {})
        self.assertTrue(check.works)
        self.assertEqual((), check.findings)

    def test_old_trait_spelling_and_sev_es(self):
        check = fc.check_flavor(
            {'trait:HW_CPU_AMD_SEV': 'required',
             'trait:HW_CPU_X86_AMD_SEV_ES': 'required'}, {})
        self.assertTrue(check.works)
        self.assertEqual(SevMode.SEV_ES, check.mode)
        self.assertEqual(0x37, check.plan.policy)

    def test_lower_case_trait_name(self):
        check = fc.check_flavor({'trait:hw_cpu_x86_amd_sev': 'required'}, {})
        self.assertFalse(check.works)
        [error] = _errors(check)
        self.assertIn("no trait 'hw_cpu_x86_amd_sev'", error)
        self.assertIn('use trait:HW_CPU_X86_AMD_SEV', error)
        # Read as meant, the rest is checked: it would be SEV.
        self.assertEqual(SevMode.SEV, check.mode)

    def test_misspelt_sev_es_trait(self):
        check = fc.check_flavor({'trait:HW_CPU_AMD_SEV_ES': 'required'}, {})
        [error] = _errors(check)
        self.assertIn('use trait:HW_CPU_X86_AMD_SEV_ES', error)
        self.assertEqual(SevMode.SEV_ES, check.mode)

    def test_require_value(self):
        check = fc.check_flavor(
            {'trait:HW_CPU_X86_AMD_SEV': 'require'}, {})
        [error] = _errors(check)
        self.assertIn("not 'require'", error)
        self.assertIn('trait:HW_CPU_X86_AMD_SEV=required', error)
        self.assertEqual(SevMode.SEV, check.mode)

    def test_upper_case_value(self):
        check = fc.check_flavor({'trait:HW_CPU_X86_AMD_SEV': 'Required'}, {})
        [error] = _errors(check)
        self.assertIn('lower case', error)

    def test_meaningless_value(self):
        check = fc.check_flavor({'trait:HW_CPU_X86_AMD_SEV': 'maybe'}, {})
        self.assertIn('either required or forbidden', _errors(check)[0])
        # Without it nothing asks for SEV.
        self.assertEqual(SevMode.NONE, check.mode)
        self.assertIn('neither the flavor nor the image asks for SEV',
                      _errors(check)[1])

    def test_unknown_trait_with_hint(self):
        check = fc.check_flavor(
            dict(SEV, **{'trait:HW_CPU_X86_AVX3': 'required'}), {})
        [error] = _errors(check)
        self.assertIn("no trait 'HW_CPU_X86_AVX3'", error)
        self.assertIn('did you mean HW_CPU_X86_AVX', error)

    def test_known_and_custom_traits_pass(self):
        check = fc.check_flavor(
            dict(SEV, **{'trait:HW_CPU_X86_AMD_SVM': 'required',
                         'trait:CUSTOM_GOLD': 'forbidden'}), {})
        self.assertEqual([], _errors(check))

    def test_ordinary_keys_raise_nothing(self):
        # Nova's own keys, near as some are to the SEV ones, are no typos.
        specs = dict(SEV, **COUNTED, **{
            'hw:cpu_policy': 'dedicated', 'hw:numa_nodes': '1',
            'hw:mem_page_size': 'large', 'hw:numa_mem.0': '4096',
            'quota:disk_read_bytes_sec': '10240',
            'trait:HW_CPU_X86_AVX2': 'required', 'resources:PCPU': '2',
            'resources1:NET_BW_EGR_KILOBIT_PER_SEC': '1000',
            'aggregate_instance_extra_specs:sev': 'true'})
        props = {'hw_firmware_type': 'uefi', 'hw_scsi_model': 'virtio-scsi',
                 'hw_disk_bus': 'scsi', 'hw_video_model': 'virtio',
                 'hw_qemu_guest_agent': 'yes', 'os_distro': 'ubuntu',
                 'hw_vif_model': 'virtio', 'hw_rng_model': 'virtio'}
        check = fc.check_flavor(specs, props)
        self.assertTrue(check.works)
        self.assertEqual((), check.findings)

    def test_snp_works(self):
        # nova-sev builds SEV-SNP guests now: the trait is a request.
        check = fc.check_flavor(
            dict(SEV, **{'trait:HW_CPU_X86_AMD_SEV_SNP': 'required'}), {})
        self.assertEqual([], _errors(check))
        self.assertEqual(SevMode.SEV_SNP, check.mode)
        self.assertTrue(check.works)
        self.assertEqual(0x30000, check.plan.policy)
        self.assertIsNone(check.plan.hard_limit_kib)

    def test_snp_by_model_and_misspelt(self):
        check = fc.check_flavor({'hw:mem_encryption': 'true',
                                 'hw:mem_encryption_model': 'amd-sev-snp'},
                                {})
        self.assertTrue(check.works)
        self.assertEqual(SevMode.SEV_SNP, check.mode)
        check = fc.check_flavor({'trait:HW_CPU_X86_AMD_SEVSNP': 'required'},
                                {})
        [error] = _errors(check)
        self.assertIn('use trait:HW_CPU_X86_AMD_SEV_SNP', error)

    def test_snp_refusals(self):
        check = fc.check_flavor(
            {'trait:HW_CPU_X86_AMD_SEV_SNP': 'required'},
            {'hw_firmware_stateless': 'false'})
        self.assertFalse(check.works)
        [error] = _errors(check)
        self.assertIn('hw_firmware_stateless is false', error)
        check = fc.check_flavor(
            {'trait:HW_CPU_X86_AMD_SEV_SNP': 'required'},
            {'hw_mem_encryption_model': 'amd-sev-es',
             'hw_mem_encryption': 'true'})
        [error] = _errors(check)
        self.assertIn('hw_mem_encryption_model=amd-sev-es', error)
        self.assertIn('trait:HW_CPU_X86_AMD_SEV_SNP=required', error)

    def test_trait_prefix_case(self):
        check = fc.check_flavor({'Trait:HW_CPU_X86_AMD_SEV': 'required'}, {})
        [error] = _errors(check)
        self.assertIn('must be lower case', error)
        self.assertEqual(SevMode.SEV, check.mode)

    def test_trait_in_request_group(self):
        check = fc.check_flavor({'trait1:HW_CPU_X86_AMD_SEV': 'required'},
                                {})
        [error] = _errors(check)
        self.assertIn("request group '1'", error)
        self.assertIn('write trait:HW_CPU_X86_AMD_SEV', error)

    def test_trait_in_request_group_with_resources_works(self):
        # Placement puts the group on the SEV host's root provider, and
        # the guest is SEV (hardware.trait_keys).
        for prefix in ('trait1', 'trait2', 'trait_SEV'):
            group = prefix[len('trait'):]
            check = fc.check_flavor(
                dict(COUNTED, **{'%s:HW_CPU_X86_AMD_SEV' % prefix: 'required',
                                 'resources%s:VCPU' % group: '1',
                                 'hw:mem_page_size': 'large'}), {})
            self.assertTrue(check.works, _errors(check))
            self.assertEqual(SevMode.SEV, check.mode)
            self.assertEqual((), check.findings)

    def test_trait_in_request_group_sev_es(self):
        check = fc.check_flavor({'trait1:HW_CPU_X86_AMD_SEV_ES': 'required',
                                 'resources1:MEMORY_MB': '512'}, {})
        self.assertEqual(SevMode.SEV_ES, check.mode)
        self.assertEqual([], _errors(check))

    def test_request_groups_in_conflict(self):
        check = fc.check_flavor({'trait1:HW_CPU_X86_AMD_SEV': 'forbidden',
                                 'resources1:VCPU': '1',
                                 'trait2:HW_CPU_X86_AMD_SEV': 'required',
                                 'resources2:VCPU': '1'}, {})
        self.assertFalse(check.works)
        [error] = _errors(check)
        self.assertIn('trait1:HW_CPU_X86_AMD_SEV=forbidden', error)
        self.assertIn('trait2:HW_CPU_X86_AMD_SEV=required', error)

    def test_trait_in_resourceless_group_forbidden_is_fine(self):
        check = fc.check_flavor(dict(SEV, **{
            'trait1:HW_CPU_X86_AMD_SEV_ES': 'forbidden'}), {})
        self.assertEqual(SevMode.SEV, check.mode)
        self.assertEqual([], _errors(check))

    def test_trait_in_request_group_of_image(self):
        check = fc.check_flavor({}, {'trait1:HW_CPU_X86_AMD_SEV': 'required'})
        [error] = _errors(check)
        self.assertIn('flavors only', error)
        self.assertIn('write trait:HW_CPU_X86_AMD_SEV', error)
        # Read as meant.
        self.assertEqual(SevMode.SEV, check.mode)

    def test_image_spelling_in_flavor(self):
        check = fc.check_flavor({'hw_mem_encryption': 'true'}, {})
        [error] = _errors(check)
        self.assertIn('image property spelling', error)
        self.assertIn('write hw:mem_encryption=true', error)
        self.assertEqual(SevMode.SEV, check.mode)

    def test_flavor_spelling_in_image(self):
        check = fc.check_flavor({}, {'hw:mem_encryption': 'true'})
        [error] = _errors(check)
        self.assertIn('write hw_mem_encryption=true', error)

    def test_misspelt_key(self):
        check = fc.check_flavor({'hw:mem_encrypton': 'true'}, {})
        [error] = _errors(check)
        self.assertIn('did you mean hw:mem_encryption', error)

    def test_unknown_resource_class(self):
        check = fc.check_flavor(
            dict(SEV, **{'resources:MEM_ENCRYPTION_CONTEXTS': '1'}), {})
        [error] = _errors(check)
        self.assertIn('did you mean MEM_ENCRYPTION_CONTEXT', error)

    def test_more_than_one_asid(self):
        check = fc.check_flavor(
            dict(SEV, **{'resources:MEM_ENCRYPTION_CONTEXT': '2'}), {})
        self.assertTrue(check.works)
        self.assertIn(fc.WARNING, _levels(check))

    def test_conflict(self):
        check = fc.check_flavor(SEV, {'hw_mem_encryption': 'false'})
        self.assertFalse(check.works)
        [error] = _errors(check)
        self.assertIn('hw_mem_encryption=false', error)
        self.assertIn('change or remove one of them', error)

    def test_model_without_encryption(self):
        check = fc.check_flavor({'hw:mem_encryption_model': 'amd-sev'}, {})
        errors = _errors(check)
        self.assertIn('model without memory encryption', errors[0])
        self.assertFalse(check.works)

    def test_every_guest_refusal_reported(self):
        check = fc.check_flavor(
            dict(SEV, **{'pci_passthrough:alias': 'nic:1',
                         'resources:VGPU': '1'}),
            {'hw_machine_type': 'pc-i440fx-7.2', 'hw_disk_bus': 'ide',
             'hw_cdrom_bus': 'ide'})
        self.assertFalse(check.works)
        self.assertIsNone(check.plan)
        errors = ' '.join(_errors(check))
        for word in ('q35', 'hw_disk_bus', 'hw_cdrom_bus',
                     'pci_passthrough:alias', 'resources:VGPU'):
            self.assertIn(word, errors)
        self.assertEqual(5, len(check.errors))

    def test_virtio_blk_boot_disk(self):
        check = fc.check_flavor(SEV, {'hw_disk_bus': 'virtio'})
        [error] = _errors(check)
        self.assertIn('virtio-blk', error)
        self.assertIn('allow_virtio_blk_boot_disk', error)
        allowed = guest_plan.SevGuestOptions(allow_virtio_blk_boot_disk=True)
        self.assertTrue(fc.check_flavor(SEV, {'hw_disk_bus': 'virtio'},
                                        options=allowed).works)

    def test_not_sev(self):
        check = fc.check_flavor({'hw:cpu_policy': 'dedicated'}, {})
        self.assertEqual(SevMode.NONE, check.mode)
        self.assertIn('trait:HW_CPU_X86_AMD_SEV=required', _errors(check)[0])

    def test_suggest_sev_trait(self):
        self.assertEqual('HW_CPU_X86_AMD_SEV_ES',
                         fc.suggest_sev_trait('amd_sev_es'))
        self.assertEqual('HW_CPU_X86_AMD_SEV', fc.suggest_sev_trait('SEV'))
        self.assertEqual('HW_CPU_AMD_SEV',
                         fc.suggest_sev_trait('hw_cpu_amd_sev'))

    def test_meant_trait_value(self):
        for value, meant in (('required', 'required'), ('require', 'required'),
                             ('true', 'required'), ('REQUIRED', 'required'),
                             ('forbiden', 'forbidden'), ('no', 'forbidden'),
                             ('xyzzy', None)):
            self.assertEqual(meant, fc.meant_trait_value(value), value)
