import os_traits
import testtools

from nova_sev.virt.libvirt import host
from nova_sev.virt.libvirt import traits
from nova_sev.virt import nova_compat

# The SNP trait an SNP host reports: none where os-traits cannot name it
# (the constraints of 2025.1 to 2026.1).
SNP_REPORTED = ({nova_compat.HW_CPU_X86_AMD_SEV_SNP}
                if nova_compat.SNP_TRAIT_KNOWN else set())


def _caps(sev, sev_es=False):
    return host.SevHostCapabilities(sev_usable=sev, sev_es_usable=sev_es)


class SevTraitsTestCase(testtools.TestCase):

    def test_names_are_os_traits(self):
        known = set(os_traits.get_traits())
        self.assertEqual(set(), traits.ALL_SEV_TRAITS - known)

    def test_sev_host_reports_both_spellings(self):
        self.assertEqual({os_traits.HW_CPU_X86_AMD_SEV,
                          os_traits.HW_CPU_AMD_SEV},
                         traits.sev_traits(_caps(True)))

    def test_sev_es_host(self):
        self.assertEqual({os_traits.HW_CPU_X86_AMD_SEV,
                          os_traits.HW_CPU_AMD_SEV,
                          os_traits.HW_CPU_X86_AMD_SEV_ES},
                         traits.sev_traits(_caps(True, True)))

    def test_no_sev(self):
        self.assertEqual(frozenset(), traits.sev_traits(_caps(False)))
        # SEV-ES without SEV cannot be offered.
        self.assertEqual(frozenset(), traits.sev_traits(_caps(False, True)))

    def test_changes_add(self):
        add, remove = traits.sev_trait_changes(
            _caps(True), {os_traits.HW_CPU_X86_AVX2})
        self.assertEqual(traits.SEV_TRAITS, add)
        self.assertEqual(frozenset(), remove)

    def test_changes_remove_only_sev_traits(self):
        current = {os_traits.HW_CPU_X86_AVX2, os_traits.HW_CPU_AMD_SEV,
                   os_traits.HW_CPU_X86_AMD_SEV_ES, 'CUSTOM_SEV'}
        add, remove = traits.sev_trait_changes(_caps(False), current)
        self.assertEqual(frozenset(), add)
        self.assertEqual({os_traits.HW_CPU_AMD_SEV,
                          os_traits.HW_CPU_X86_AMD_SEV_ES}, remove)

    def test_changes_steady_state(self):
        self.assertEqual((frozenset(), frozenset()),
                         traits.sev_trait_changes(_caps(True),
                                                  traits.SEV_TRAITS))


class SevSnpTraitsTestCase(testtools.TestCase):

    def _caps(self, snp, sev=True):
        return host.SevHostCapabilities(sev_usable=sev, sev_es_usable=False,
                                        sev_snp_usable=snp)

    def test_snp_host(self):
        # Before 2026.2, os-traits (and placement) has no SNP trait.
        self.assertEqual({os_traits.HW_CPU_X86_AMD_SEV,
                          os_traits.HW_CPU_AMD_SEV} | SNP_REPORTED,
                         traits.sev_traits(self._caps(True)))
        self.assertEqual(frozenset(),
                         traits.sev_traits(self._caps(True, sev=False)))

    def test_snp_trait_added_and_taken_away(self):
        add, remove = traits.sev_trait_changes(
            self._caps(True), {os_traits.HW_CPU_X86_AMD_SEV,
                               os_traits.HW_CPU_AMD_SEV})
        self.assertEqual(SNP_REPORTED, add)
        self.assertEqual(frozenset(), remove)
        add, remove = traits.sev_trait_changes(
            self._caps(False), {os_traits.HW_CPU_X86_AMD_SEV,
                                os_traits.HW_CPU_AMD_SEV,
                                nova_compat.HW_CPU_X86_AMD_SEV_SNP,
                                'CUSTOM_OTHER'})
        self.assertEqual(frozenset(), add)
        # A trait this os-traits cannot name is left as it is.
        self.assertEqual(SNP_REPORTED, remove)
