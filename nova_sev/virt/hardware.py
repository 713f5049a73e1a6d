"""What a flavor and an image ask of an SEV guest (spec: "Proposed change",
design.md §2-3).

Pure functions of the flavor's extra specs and the image's properties as
Glance stores them (``trait:HW_CPU_X86_AMD_SEV=required``,
``hw_mem_encryption='true'``...), in the manner of Nova's
``nova.virt.hardware``: each answers one question, and a conflict between
flavor and image raises a specific exception naming both sides and the key
to change. No Nova import: the Nova driver and ``nova-sev guest-xml`` call
the same functions.
"""

import collections.abc
import dataclasses
import enum
import re
from typing import Any

import os_resource_classes as orc
import os_traits

from nova_sev.attestation import server_metadata
from nova_sev import exception
from nova_sev.virt import nova_compat

Mapping = collections.abc.Mapping

FLAVOR = 'flavor extra spec'
IMAGE = 'image property'

TRAIT_PREFIX = 'trait:'
TRAIT_REQUIRED = 'required'
TRAIT_FORBIDDEN = 'forbidden'

# Either spelling asks for SEV (design.md §2): os-traits' current name and
# the spec's older one.
SEV_TRAIT_NAMES = (os_traits.HW_CPU_X86_AMD_SEV, os_traits.HW_CPU_AMD_SEV)
SEV_ES_TRAIT_NAME = os_traits.HW_CPU_X86_AMD_SEV_ES
SEV_SNP_TRAIT_NAME = nova_compat.HW_CPU_X86_AMD_SEV_SNP

FLAVOR_MEM_ENCRYPTION = 'hw:mem_encryption'
FLAVOR_MEM_ENCRYPTION_MODEL = 'hw:mem_encryption_model'
IMAGE_MEM_ENCRYPTION = 'hw_mem_encryption'
IMAGE_MEM_ENCRYPTION_MODEL = 'hw_mem_encryption_model'
# Nova's ImageMetaProps carries image traits in this list instead.
IMAGE_TRAITS_REQUIRED = 'traits_required'

MODEL_AMD_SEV = 'amd-sev'
MODEL_AMD_SEV_ES = 'amd-sev-es'
MODEL_AMD_SEV_SNP = 'amd-sev-snp'
MODELS = (MODEL_AMD_SEV, MODEL_AMD_SEV_ES, MODEL_AMD_SEV_SNP)

IMAGE_MACHINE_TYPE = 'hw_machine_type'
CONF_MACHINE_TYPE = '[libvirt]hw_machine_type'
IMAGE_DISK_BUS = 'hw_disk_bus'
IMAGE_CDROM_BUS = 'hw_cdrom_bus'
FLAVOR_MEM_PAGE_SIZE = 'hw:mem_page_size'
IMAGE_MEM_PAGE_SIZE = 'hw_mem_page_size'
FLAVOR_PCI_ALIAS = 'pci_passthrough:alias'
IMAGE_VIDEO_RAM = 'hw_video_ram'
IMAGE_FIRMWARE_STATELESS = 'hw_firmware_stateless'
IMAGE_KERNEL_ID = 'kernel_id'
# Nova's image value for "no kernel of its own" (compute API).
NO_KERNEL = 'nokernel'
IMAGE_ARCHITECTURE = 'hw_architecture'
IMAGE_FIRMWARE_TYPE = 'hw_firmware_type'
IMAGE_SCSI_MODEL = 'hw_scsi_model'
# nova-sev's own keys (server_metadata names them for both sides of the
# attestation): a stricter policy, and the owner's opt-in.
FLAVOR_SEV_POLICY = server_metadata.FLAVOR_POLICY_SPEC
IMAGE_SEV_POLICY = server_metadata.IMAGE_POLICY_PROPERTY
IMAGE_ATTEST = server_metadata.IMAGE_ATTEST_PROPERTY

# Every image property the rules of nova-sev read, under Nova's
# ImageMetaProps names (which carry image traits in traits_required).
IMAGE_PROPERTIES = (
    IMAGE_MEM_ENCRYPTION, IMAGE_MEM_ENCRYPTION_MODEL, IMAGE_TRAITS_REQUIRED,
    IMAGE_MACHINE_TYPE, IMAGE_DISK_BUS, IMAGE_CDROM_BUS, IMAGE_MEM_PAGE_SIZE,
    IMAGE_VIDEO_RAM, IMAGE_ARCHITECTURE, IMAGE_FIRMWARE_TYPE,
    IMAGE_SCSI_MODEL, IMAGE_FIRMWARE_STATELESS)
# nova-sev's image properties, which Nova's ImageMetaProps drops: the Nova
# driver reads them from the instance's system_metadata (image_<name>).
IMAGE_OWN_PROPERTIES = (IMAGE_SEV_POLICY, IMAGE_ATTEST)

# Page sizes that mean "not huge pages" (Nova's MEMPAGES_SMALL, and 4 KiB
# written out); "any" lets Nova choose, so it promises nothing.
_SMALL_PAGE_SIZES = ('small', 'any', '4', '4k', '4kb', '4096', '4096b')
_RESOURCES_KEY = re.compile(r'^resources[A-Za-z0-9_-]*:(?P<rc>.+)$')
# Nova's granular request groups (nova.scheduler.utils.ResourceRequest):
# "trait<suffix>:<name>", the suffix 1-64 of [a-zA-Z0-9_-] (trait1:,
# trait_SEV:); no suffix is the unsuffixed group.
_TRAIT_KEY = re.compile(
    r'^trait(?P<group>[a-zA-Z0-9_-]{1,64})?:(?P<name>.+)$')


class SevMode(str, enum.Enum):
    """The memory encryption a guest asked for."""

    NONE = 'none'
    SEV = 'sev'
    SEV_ES = 'sev-es'
    SEV_SNP = 'sev-snp'


@dataclasses.dataclass(frozen=True)
class _Stance:
    """One source's answer to one question, and the key that gave it."""

    wanted: bool
    source: str
    key: str
    value: Any

    def describe(self) -> str:
        return '%s %s=%s' % (self.source, self.key, self.value)


# The spellings of oslo_utils.strutils.bool_from_string, with which Nova
# reads these keys; strutils itself costs a command 40 ms of regular
# expressions at import.
TRUE_STRINGS = ('1', 't', 'true', 'on', 'y', 'yes')
FALSE_STRINGS = ('0', 'f', 'false', 'off', 'n', 'no')


def bool_from_string(value: Any, strict: bool = False) -> bool:
    """``value`` as a boolean, as oslo.utils' strutils reads it: anything
    not spelled true counts as false, or ValueError when ``strict``.
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_STRINGS:
        return True
    if text in FALSE_STRINGS or not strict:
        return False
    raise ValueError('unrecognized boolean %r' % value)


def _parse_bool(source: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    try:
        return bool_from_string(value, strict=True)
    except ValueError:
        raise exception.InvalidSevRequest(
            source=source, key=key, value=value,
            reason='not a boolean; use true or false')


def _trait_stance(source: str, key: str, value: Any) -> _Stance | None:
    text = str(value).strip().lower()
    if text == TRAIT_REQUIRED:
        return _Stance(True, source, key, value)
    if text == TRAIT_FORBIDDEN:
        return _Stance(False, source, key, value)
    raise exception.InvalidSevRequest(
        source=source, key=key, value=value,
        reason='a trait is either required or forbidden')


def parse_trait_key(key: str) -> tuple[str, str] | None:
    """The request group suffix ('' for the unsuffixed group) and the trait
    that a ``trait[<suffix>]:<name>`` flavor extra spec names, read as
    Nova's scheduler reads it; None for any other key.
    """
    match = _TRAIT_KEY.match(key)
    if match is None:
        return None
    return match.group('group') or '', match.group('name')


def trait_keys(source: str, props: Mapping[str, Any], name: str
               ) -> list[str]:
    """The keys of ``props`` that require or forbid trait ``name``.

    A flavor may do so in any of Nova's request groups, and a requirement
    in any group gets the guest placed on a host with the trait, so all
    count: ``trait:<name>`` first, then ``trait1:<name>``,
    ``trait_SEV:<name>``... in their order. An image has only
    ``trait:<name>``: Nova reads no request groups from image properties.
    """
    keys = []
    if props.get(TRAIT_PREFIX + name) is not None:
        keys.append(TRAIT_PREFIX + name)
    if source == FLAVOR:
        for key, value in props.items():
            group, trait = parse_trait_key(key) or ('', None)
            if group and trait == name and value is not None:
                keys.append(key)
    return keys


def _conflict(first: _Stance, second: _Stance, subject: str
              ) -> exception.SevRequestConflict:
    def wants(stance):
        return ('asks for %s' if stance.wanted else 'forbids %s') % subject
    return exception.SevRequestConflict(
        first=first.describe(), first_wants=wants(first),
        second=second.describe(), second_wants=wants(second))


def _merge(stances: list[_Stance], subject: str) -> _Stance | None:
    """The one answer of ``stances``; SevRequestConflict if they differ."""
    for stance in stances[1:]:
        if stance.wanted != stances[0].wanted:
            raise _conflict(stances[0], stance, subject)
    return stances[0] if stances else None


@dataclasses.dataclass
class _SourceStances:
    """One source's answers: encryption, SEV-ES, SEV-SNP, and its model."""

    enc: list[_Stance]
    es: list[_Stance]
    snp: list[_Stance]
    model: _Stance | None


def _source_stances(source: str, props: Mapping[str, Any],
                    enc_key: str, model_key: str) -> _SourceStances:
    """The encryption, SEV-ES and SEV-SNP answers of one source, plus its
    model.
    """
    enc: list[_Stance] = []
    es: list[_Stance] = []
    snp: list[_Stance] = []
    by_mode = {SEV_ES_TRAIT_NAME: es, SEV_SNP_TRAIT_NAME: snp}
    for name in SEV_TRAIT_NAMES:
        for key in trait_keys(source, props, name):
            enc.append(_trait_stance(source, key, props[key]))
    for name, stances in by_mode.items():
        for key in trait_keys(source, props, name):
            stance = _trait_stance(source, key, props[key])
            stances.append(stance)
            if stance.wanted:
                # Requiring SEV-ES or SEV-SNP requires SEV.
                enc.append(stance)
    if source == IMAGE:
        for name in props.get(IMAGE_TRAITS_REQUIRED) or ():
            if name in SEV_TRAIT_NAMES + tuple(by_mode):
                stance = _Stance(True, source, IMAGE_TRAITS_REQUIRED, name)
                enc.append(stance)
                if name in by_mode:
                    by_mode[name].append(stance)
    if props.get(enc_key) is not None:
        enc.append(_Stance(_parse_bool(source, enc_key, props[enc_key]),
                           source, enc_key, props[enc_key]))
    model = None
    if props.get(model_key) is not None:
        raw = props[model_key]
        text = str(raw).strip().lower()
        if text not in MODELS:
            raise exception.InvalidSevRequest(
                source=source, key=model_key, value=raw,
                reason='unknown memory encryption model; use %s' %
                ' or '.join(MODELS))
        model = _Stance(True, source, model_key, raw)
        es.append(_Stance(text == MODEL_AMD_SEV_ES, source, model_key, raw))
        snp.append(_Stance(text == MODEL_AMD_SEV_SNP, source, model_key,
                           raw))
    return _SourceStances(enc, es, snp, model)


def _flavor_image_stances(extra_specs: Mapping[str, str],
                          image_props: Mapping[str, Any]
                          ) -> tuple[_SourceStances, _SourceStances]:
    return (_source_stances(FLAVOR, extra_specs or {}, FLAVOR_MEM_ENCRYPTION,
                            FLAVOR_MEM_ENCRYPTION_MODEL),
            _source_stances(IMAGE, image_props or {}, IMAGE_MEM_ENCRYPTION,
                            IMAGE_MEM_ENCRYPTION_MODEL))


def get_sev_mode(extra_specs: Mapping[str, str],
                 image_props: Mapping[str, Any]) -> SevMode:
    """Whether the flavor and image ask for no SEV, SEV, SEV-ES or SEV-SNP.

    SEV is asked for by ``trait:HW_CPU_X86_AMD_SEV=required``,
    ``trait:HW_CPU_AMD_SEV=required`` or ``hw:mem_encryption`` /
    ``hw_mem_encryption`` true; SEV-ES by
    ``trait:HW_CPU_X86_AMD_SEV_ES=required`` or the encryption model
    ``amd-sev-es``; SEV-SNP by ``trait:HW_CPU_X86_AMD_SEV_SNP=required`` or
    the model ``amd-sev-snp``. A flavor's trait may be in any request group
    (``trait1:``, ``trait_SEV:``: ``trait_keys``). Raises
    SevRequestConflict when one key requires what another forbids (within
    a source, across request groups, or across flavor and image) or asks
    for SEV-ES where another asks for SEV-SNP, and
    InvalidSevRequest for a value that cannot be read or a model given
    without encryption.
    """
    return _sev_mode(*_flavor_image_stances(extra_specs, image_props))


def _sev_mode(flavor: _SourceStances, image: _SourceStances) -> SevMode:
    enc = _merge(flavor.enc + image.enc, 'memory encryption (SEV)')
    es = _merge(flavor.es + image.es, 'SEV-ES')
    snp = _merge(flavor.snp + image.snp, 'SEV-SNP')
    if enc is None or not enc.wanted:
        model = flavor.model or image.model
        if model is not None:
            raise exception.InvalidSevRequest(
                source=model.source, key=model.key, value=model.value,
                reason='a memory encryption model without memory '
                'encryption; also set %s=true (flavor) or %s=true (image), '
                'or remove %s' % (FLAVOR_MEM_ENCRYPTION, IMAGE_MEM_ENCRYPTION,
                                  model.key))
        return SevMode.NONE
    es_wanted = es is not None and es.wanted
    snp_wanted = snp is not None and snp.wanted
    if es_wanted and snp_wanted:
        # One guest is one or the other: the two policies differ.
        raise exception.SevRequestConflict(
            first=es.describe(), first_wants='asks for SEV-ES',
            second=snp.describe(), second_wants='asks for SEV-SNP')
    if snp_wanted:
        return SevMode.SEV_SNP
    if es_wanted:
        return SevMode.SEV_ES
    return SevMode.SEV


def sev_requested_by(extra_specs: Mapping[str, str],
                     image_props: Mapping[str, Any]) -> str:
    """The keys that asked for SEV, for messages ("flavor extra spec
    hw:mem_encryption=true"); empty when nothing did.
    """
    return _requested_by(*_flavor_image_stances(extra_specs, image_props))


def sev_request(extra_specs: Mapping[str, str],
                image_props: Mapping[str, Any]) -> tuple[SevMode, str]:
    """``get_sev_mode`` and ``sev_requested_by`` of one request, which
    reads the flavor and image once for both.
    """
    flavor, image = _flavor_image_stances(extra_specs, image_props)
    return _sev_mode(flavor, image), _requested_by(flavor, image)


def _requested_by(flavor: _SourceStances, image: _SourceStances) -> str:
    seen = []
    for stance in (flavor.enc + flavor.es + flavor.snp +
                   image.enc + image.es + image.snp):
        text = stance.describe()
        if stance.wanted and text not in seen:
            seen.append(text)
    return ', '.join(seen)


@dataclasses.dataclass(frozen=True)
class Request:
    """A value asked for, and where it was asked ("image property
    hw_disk_bus").
    """

    value: str
    source: str


def requested_machine_type(image_props: Mapping[str, Any],
                           conf_machine_types: list[str] | None = None,
                           arch: str = 'x86_64') -> Request | None:
    """The machine type the image or ``[libvirt]hw_machine_type`` asks for.

    The image's ``hw_machine_type`` wins; ``conf_machine_types`` is Nova's
    list of ``arch=machine`` entries. None when neither says anything.
    """
    value = (image_props or {}).get(IMAGE_MACHINE_TYPE)
    if value:
        return Request(str(value).strip(),
                       '%s %s' % (IMAGE, IMAGE_MACHINE_TYPE))
    for entry in conf_machine_types or ():
        entry_arch, sep, machine = str(entry).partition('=')
        if sep and entry_arch.strip() == arch and machine.strip():
            return Request(machine.strip(), CONF_MACHINE_TYPE)
    return None


def is_q35(machine_type: str) -> bool:
    """Whether ``machine_type`` (``q35``, ``pc-q35-7.2``...) is a q35."""
    return machine_type == 'q35' or machine_type.startswith('pc-q35')


def _image_request(image_props: Mapping[str, Any],
                   key: str) -> Request | None:
    value = (image_props or {}).get(key)
    if value is None or str(value).strip() == '':
        return None
    return Request(str(value).strip().lower(), '%s %s' % (IMAGE, key))


def requested_disk_bus(image_props: Mapping[str, Any]) -> Request | None:
    """The disk bus the image insists on (``hw_disk_bus``), if any."""
    return _image_request(image_props, IMAGE_DISK_BUS)


def requested_architecture(image_props: Mapping[str, Any]
                           ) -> Request | None:
    """The guest architecture the image asks for (``hw_architecture``)."""
    return _image_request(image_props, IMAGE_ARCHITECTURE)


def requested_cdrom_bus(image_props: Mapping[str, Any]) -> Request | None:
    """The CD-ROM bus the image insists on (``hw_cdrom_bus``), if any."""
    return _image_request(image_props, IMAGE_CDROM_BUS)


def uses_huge_pages(extra_specs: Mapping[str, str],
                    image_props: Mapping[str, Any]) -> bool:
    """Whether the guest's memory is backed by huge pages (and so pinned
    already): ``hw:mem_page_size`` / ``hw_mem_page_size`` is ``large`` or
    a size above 4 KiB. ``any`` and ``small`` promise nothing.
    """
    for props, key in ((extra_specs, FLAVOR_MEM_PAGE_SIZE),
                       (image_props, IMAGE_MEM_PAGE_SIZE)):
        value = (props or {}).get(key)
        if value is not None and str(value).strip():
            text = str(value).strip().lower()
            if text not in _SMALL_PAGE_SIZES:
                return True
    return False


def requested_pci_passthrough(extra_specs: Mapping[str, str]
                              ) -> Request | None:
    """The PCI passthrough alias the flavor asks for, if any."""
    value = (extra_specs or {}).get(FLAVOR_PCI_ALIAS)
    if value is None or not str(value).strip():
        return None
    return Request(str(value), '%s %s' % (FLAVOR, FLAVOR_PCI_ALIAS))


def requested_vgpus(extra_specs: Mapping[str, str]) -> Request | None:
    """The ``resources[N]:VGPU`` request (mediated devices), if any."""
    for key, value in (extra_specs or {}).items():
        match = _RESOURCES_KEY.match(key)
        if match and match.group('rc') == orc.VGPU:
            try:
                count = int(str(value).strip())
            except ValueError:
                raise exception.InvalidSevRequest(
                    source=FLAVOR, key=key, value=value,
                    reason='not a number of resources')
            if count > 0:
                return Request(str(value), '%s %s' % (FLAVOR, key))
    return None


def requested_video_ram_mb(image_props: Mapping[str, Any]) -> int:
    """The video RAM in MiB the image asks for (``hw_video_ram``), or 0."""
    value = (image_props or {}).get(IMAGE_VIDEO_RAM)
    if value is None or str(value).strip() == '':
        return 0
    try:
        video_mb = int(str(value).strip())
    except ValueError:
        video_mb = -1
    if video_mb < 0:
        raise exception.InvalidSevRequest(
            source=IMAGE, key=IMAGE_VIDEO_RAM, value=value,
            reason='not a number of MiB')
    return video_mb


def requested_stateless_firmware(image_props: Mapping[str, Any]
                                 ) -> Request | None:
    """Whether the image asks for stateless firmware
    (``hw_firmware_stateless``): a Request whose value is ``true`` or
    ``false``, None when the image leaves it open.
    """
    value = (image_props or {}).get(IMAGE_FIRMWARE_STATELESS)
    if value is None or str(value).strip() == '':
        return None
    wanted = _parse_bool(IMAGE, IMAGE_FIRMWARE_STATELESS, value)
    return Request('true' if wanted else 'false',
                   '%s %s' % (IMAGE, IMAGE_FIRMWARE_STATELESS))


def requested_policies(extra_specs: Mapping[str, str],
                       image_props: Mapping[str, Any]) -> tuple[Request, ...]:
    """The stricter guest policies the flavor (``nova-sev:policy``, an
    admin's) and the image (``nova_sev_policy``, the owner's) ask for, in
    that order; each must keep every bit of ``[sev]policy``
    (``guest_plan.guest_policy`` decides).
    """
    found = []
    for source, props, key in ((FLAVOR, extra_specs, FLAVOR_SEV_POLICY),
                               (IMAGE, image_props, IMAGE_SEV_POLICY)):
        value = (props or {}).get(key)
        if value is not None and str(value).strip():
            found.append(Request(str(value).strip(),
                                 '%s %s' % (source, key)))
    return tuple(found)


def boots_kernel_directly(image_props: Mapping[str, Any]) -> bool:
    """Whether the guest boots a kernel directly (the image names a
    ``kernel_id`` other than Nova's ``nokernel``), so that SEV-SNP can
    measure its hashes.
    """
    kernel = str((image_props or {}).get(IMAGE_KERNEL_ID) or '').strip()
    return bool(kernel) and kernel != NO_KERNEL
