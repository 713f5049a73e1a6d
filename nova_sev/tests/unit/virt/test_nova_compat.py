"""What nova-sev makes of the Nova release installed."""

from unittest import mock

import os_traits
import testtools

from nova_sev.virt import nova_compat


class NovaCompatTestCase(testtools.TestCase):

    def test_new_kwargs_only_when_set(self):
        # An older Nova's method has no such parameter: never pass None.
        self.assertEqual({}, nova_compat.new_kwargs(old_guest=None))
        guest = object()
        self.assertEqual({'old_guest': guest},
                         nova_compat.new_kwargs(old_guest=guest))

    def test_series_of_the_installed_nova(self):
        self.assertIn(nova_compat.NOVA_MAJOR, nova_compat.SERIES)
        self.assertEqual(nova_compat.SERIES[nova_compat.NOVA_MAJOR],
                         nova_compat.NOVA_SERIES)

    def test_snp_trait_as_os_traits_has_it(self):
        self.assertEqual('HW_CPU_X86_AMD_SEV_SNP',
                         nova_compat.HW_CPU_X86_AMD_SEV_SNP)
        self.assertEqual(hasattr(os_traits, 'HW_CPU_X86_AMD_SEV_SNP'),
                         nova_compat.SNP_TRAIT_KNOWN)

    def test_startup_notes_say_what_is_missing(self):
        with mock.patch.object(nova_compat, 'SNP_TRAIT_KNOWN', False):
            [note] = nova_compat.startup_notes()
        self.assertIn('HW_CPU_X86_AMD_SEV_SNP', note)
        self.assertIn('never plain', note)
        with mock.patch.object(nova_compat, 'SNP_TRAIT_KNOWN', True):
            self.assertEqual([], nova_compat.startup_notes())
        with mock.patch.object(nova_compat, 'SNP_TRAIT_KNOWN', True), \
                mock.patch.object(nova_compat, 'NOVA_MAJOR', 30):
            [note] = nova_compat.startup_notes()
        self.assertIn('not a release nova-sev supports', note)

    def test_image_model_read_where_nova_drops_it(self):
        from nova import objects
        objects.register_all()
        instance = mock.Mock(system_metadata={
            'image_hw_mem_encryption_model': 'amd-sev-es'})
        dropped = nova_compat.image_properties_nova_drops(instance)
        if 'hw_mem_encryption_model' in objects.ImageMetaProps.fields:
            self.assertEqual({}, dropped)
        else:
            # 2025.1.
            self.assertEqual({'hw_mem_encryption_model': 'amd-sev-es'},
                             dropped)
