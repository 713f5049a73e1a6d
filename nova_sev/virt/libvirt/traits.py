"""The SEV traits a compute host reports (spec: "Support a standard trait
which would be automatically detected per compute host").

Both spellings of the SEV trait are reported, so that flavors and images
written with the spec's ``HW_CPU_AMD_SEV`` schedule as well as those with
os-traits' ``HW_CPU_X86_AMD_SEV``. Names come from os-traits only: placement
knows no other.
"""

import os_traits

from nova_sev.virt.libvirt import host
from nova_sev.virt import nova_compat

SEV_TRAITS = frozenset({os_traits.HW_CPU_X86_AMD_SEV,
                        os_traits.HW_CPU_AMD_SEV})
SEV_ES_TRAITS = frozenset({os_traits.HW_CPU_X86_AMD_SEV_ES})
# None where os-traits (and so placement) has no SNP trait (nova_compat).
SEV_SNP_TRAITS = frozenset({nova_compat.HW_CPU_X86_AMD_SEV_SNP}
                           if nova_compat.SNP_TRAIT_KNOWN else ())
ALL_SEV_TRAITS = SEV_TRAITS | SEV_ES_TRAITS | SEV_SNP_TRAITS


def sev_traits(caps: host.SevHostCapabilities) -> frozenset[str]:
    """The SEV traits a host with ``caps`` has."""
    traits = set()
    if caps.sev_usable:
        traits |= SEV_TRAITS
        if caps.sev_es_usable:
            traits |= SEV_ES_TRAITS
        if caps.sev_snp_usable:
            traits |= SEV_SNP_TRAITS
    return frozenset(traits)


def sev_trait_changes(caps: host.SevHostCapabilities,
                      current: set[str] | frozenset[str]
                      ) -> tuple[frozenset[str], frozenset[str]]:
    """Which SEV traits to add to and remove from a provider that has
    ``current``; other traits are never touched.
    """
    wanted = sev_traits(caps)
    have = ALL_SEV_TRAITS & set(current)
    return frozenset(wanted - have), frozenset(have - wanted)
