"""What differs between the Nova releases nova-sev supports, in one place.

nova-sev runs in the nova-compute of Nova 31 (2025.1) to Nova 34 (2026.2),
each with the packages its upper constraints pin. Every difference of
those releases that nova-sev's code meets is answered here, with the
release that brought it, so that the rest of nova-sev is written once:

- os-traits before 3.9.0 (the constraints of 2025.1 to 2026.1) has no
  ``HW_CPU_X86_AMD_SEV_SNP``, and the placement of those releases does not
  know the trait: the host does not report it (placement would refuse the
  whole trait update), and a flavor that requires it finds no host there.
  A guest that asks for SEV-SNP is still built as SEV-SNP or refused.
- 2025.1's image properties have no ``hw_mem_encryption_model`` and its
  API refuses the flavor's ``hw:mem_encryption_model``: the image's model
  is read from the instance's system metadata
  (``image_properties_nova_drops``), and SEV-ES is asked for by trait.
- Nova's own ``_get_guest_config`` takes ``old_guest`` since 2026.1 and
  ``finish_migration`` takes ``share_info`` since 2026.2 (``new_kwargs``).
- nova-compute runs on eventlet only in 2025.1; 2025.2 and 2026.1 offer
  native threads (experimental) on request, and 2026.2 runs on them by
  default (``concurrency_mode_threading``, ``DEFAULT_CONCURRENCY``).

Nothing here imports Nova at module level: the functional tests read the
default concurrency mode before Nova's test package decides on it.
"""

from importlib import metadata
from typing import Any

import os_traits

# Nova's major version -> the OpenStack series it belongs to.
SERIES = {31: '2025.1', 32: '2025.2', 33: '2026.1', 34: '2026.2'}
OLDEST, NEWEST = min(SERIES), max(SERIES)


def nova_major() -> int | None:
    """The major version of the installed Nova, None without Nova (the
    host report and the guest owner's tools run without it).
    """
    try:
        return int(metadata.version('nova').split('.')[0])
    except metadata.PackageNotFoundError:
        return None


NOVA_MAJOR = nova_major()
NOVA_SERIES = SERIES.get(NOVA_MAJOR, 'unsupported')

# 2025.1 to 2026.1: os-traits has no SNP trait (it came in os-traits 3.9.0,
# 2026.2). The name is spelt out here, once, so that a flavor's
# ``trait:HW_CPU_X86_AMD_SEV_SNP=required`` is still read as a request for
# SEV-SNP (and so fails closed) where os-traits cannot name it.
SNP_TRAIT_KNOWN = hasattr(os_traits, 'HW_CPU_X86_AMD_SEV_SNP')
HW_CPU_X86_AMD_SEV_SNP = getattr(os_traits, 'HW_CPU_X86_AMD_SEV_SNP',
                                 'HW_CPU_X86_AMD_SEV_SNP')

# The mode nova-compute runs in when the operator asks for none
# (``nova.cmd.compute``): native threads since 2026.2, eventlet before.
DEFAULT_CONCURRENCY = ('threading' if (NOVA_MAJOR or NEWEST) >= 34
                       else 'eventlet')


def concurrency_mode_threading() -> bool:
    """Whether this Nova process runs on native threads."""
    from nova import utils
    # 2025.1 has no threading mode (and no function to ask): eventlet.
    probe = getattr(utils, 'concurrency_mode_threading', None)
    return bool(probe and probe())


def new_kwargs(**kwargs: Any) -> dict[str, Any]:
    """The keyword arguments, of those given, that are set: for parameters
    a newer Nova added to a method it calls us through (``old_guest``,
    2026.1; ``share_info`` of ``finish_migration``, 2026.2). An older Nova
    never passes them, and its method would refuse them.
    """
    return {k: v for k, v in kwargs.items() if v is not None}


def image_properties_nova_drops(instance: Any) -> dict[str, str]:
    """The image properties nova-sev reads that this Nova's image
    properties object drops, from the copy of the image's properties in
    ``instance``'s system metadata.

    2025.1's ``ImageMetaProps`` has no ``hw_mem_encryption_model`` (2025.2
    added it) and drops it: without this, an image asking for SEV-ES or
    SEV-SNP by model would be built as SEV.
    """
    from nova import objects
    if 'hw_mem_encryption_model' in objects.ImageMetaProps.fields:
        return {}
    value = (instance.system_metadata or {}).get(
        'image_hw_mem_encryption_model')
    return {'hw_mem_encryption_model': value} if value else {}


def startup_notes() -> list[str]:
    """What this Nova release lacks of what nova-sev uses, and what
    nova-sev does instead: one sentence each, for nova-compute's log.
    """
    notes = []
    if NOVA_MAJOR not in SERIES:
        notes.append(
            'Nova %s is not a release nova-sev supports (Nova %d, %s, to '
            'Nova %d, %s); it may not load or may build guests wrongly.' % (
                metadata.version('nova'), OLDEST, SERIES[OLDEST], NEWEST,
                SERIES[NEWEST]))
    if not SNP_TRAIT_KNOWN:
        notes.append(
            'os-traits %s has no HW_CPU_X86_AMD_SEV_SNP (os-traits 3.9.0, '
            'Nova 2026.2): this host does not report SEV-SNP to placement, '
            'so flavors requiring that trait find no host; SEV-SNP guests '
            'are still built as SEV-SNP or refused, never plain.'
            % metadata.version('os-traits'))
    return notes
