"""Will a flavor and an image give a working SEV guest? (``nova-sev
check-flavor``).

An admin who creates an SEV flavor should learn before any user boots it
whether it works. The rules that decide whether an SEV guest is built or
refused live in ``nova_sev.virt.hardware`` (what the request asks for) and
``nova_sev.virt.libvirt.guest_plan`` (what the guest gets): this module asks
them, on a host assumed SEV and SEV-ES capable, and reports every refusal
instead of the first. What it adds is linting those rules cannot do because
the mistake makes the request silently mean something else: misspelt trait
names and values (placement knows only what os-traits lists), flavor keys
written in the image's spelling and the reverse, the SEV trait in a
request group placement refuses (one without resources), and advice.

Pure functions of the extra specs and image properties; no Nova, no CONF.
"""

import collections.abc
import dataclasses
import difflib
import re
from typing import Any

import os_resource_classes as orc
import os_traits

from nova_sev import exception
from nova_sev.virt import hardware
from nova_sev.virt.hardware import SevMode
from nova_sev.virt.libvirt import firmware as fw
from nova_sev.virt.libvirt import guest_plan
from nova_sev.virt.libvirt import host

Mapping = collections.abc.Mapping

ERROR = 'error'
WARNING = 'warning'
ADVICE = 'advice'

FLAVOR = hardware.FLAVOR
IMAGE = hardware.IMAGE

_TRAIT_VALUES = (hardware.TRAIT_REQUIRED, hardware.TRAIT_FORBIDDEN)
# Values people write for a trait, and what they mean.
_TRAIT_VALUE_MEANING = {
    'true': hardware.TRAIT_REQUIRED, 'yes': hardware.TRAIT_REQUIRED,
    '1': hardware.TRAIT_REQUIRED, 'on': hardware.TRAIT_REQUIRED,
    'require': hardware.TRAIT_REQUIRED, 'requires': hardware.TRAIT_REQUIRED,
    'mandatory': hardware.TRAIT_REQUIRED,
    'false': hardware.TRAIT_FORBIDDEN, 'no': hardware.TRAIT_FORBIDDEN,
    '0': hardware.TRAIT_FORBIDDEN, 'off': hardware.TRAIT_FORBIDDEN,
    'forbid': hardware.TRAIT_FORBIDDEN,
}
SEV_TRAITS = hardware.SEV_TRAIT_NAMES + (hardware.SEV_ES_TRAIT_NAME,
                                         hardware.SEV_SNP_TRAIT_NAME)
_CUSTOM_TRAIT = re.compile(r'^CUSTOM_[A-Z0-9_]+$')
_SEV_ES_SPELLING = re.compile(r'SEV[_-]?ES')
_SEV_SNP_SPELLING = re.compile(r'SNP')
# Nova's granular request groups: trait1:NAME, resources_x:RC.
_TRAIT_KEY = re.compile(r'^(?P<prefix>trait[A-Za-z0-9_-]*):(?P<name>.*)$',
                        re.IGNORECASE)
_RESOURCES_KEY = re.compile(
    r'^(?P<prefix>resources[A-Za-z0-9_-]*):(?P<rc>.*)$', re.IGNORECASE)

# The keys of each side that matter to SEV, to catch misspellings and the
# other side's spelling. Misspelt encryption keys lose the SEV request.
_FLAVOR_SEV_KEYS = (hardware.FLAVOR_MEM_ENCRYPTION,
                    hardware.FLAVOR_MEM_ENCRYPTION_MODEL)
_FLAVOR_OTHER_KEYS = (hardware.FLAVOR_MEM_PAGE_SIZE,
                      hardware.FLAVOR_PCI_ALIAS)
_IMAGE_SEV_KEYS = (hardware.IMAGE_MEM_ENCRYPTION,
                   hardware.IMAGE_MEM_ENCRYPTION_MODEL)
_IMAGE_OTHER_KEYS = (hardware.IMAGE_MACHINE_TYPE, hardware.IMAGE_DISK_BUS,
                     hardware.IMAGE_CDROM_BUS, hardware.IMAGE_MEM_PAGE_SIZE,
                     hardware.IMAGE_VIDEO_RAM)
_OTHER_SIDE = {
    hardware.IMAGE_MEM_ENCRYPTION: hardware.FLAVOR_MEM_ENCRYPTION,
    hardware.IMAGE_MEM_ENCRYPTION_MODEL: hardware.FLAVOR_MEM_ENCRYPTION_MODEL,
    hardware.IMAGE_MEM_PAGE_SIZE: hardware.FLAVOR_MEM_PAGE_SIZE,
}
_OTHER_SIDE.update({v: k for k, v in list(_OTHER_SIDE.items())})

MEM_ENCRYPTION_CONTEXT_KEY = 'resources:%s' % orc.MEM_ENCRYPTION_CONTEXT

# check-flavor judges the flavor and image, not a host: it plans the guest
# for a host that can run SEV, SEV-ES and SEV-SNP guests ("nova-sev
# host-check" judges hosts; no real host offers both SEV-ES and SEV-SNP).
# cbitpos 47 / reducedPhysBits 1 are EPYC's values.
_SNP_FIRMWARE = fw.FirmwareDescriptor(
    path='(any stateless OVMF build with SEV-SNP support)',
    interface_types=('uefi',), device=fw.DEVICE_MEMORY,
    executable='OVMF.fd', nvram_template=None,
    targets=(fw.FirmwareTarget('x86_64', ('pc-q35-*',)),),
    features=(fw.FEATURE_AMD_SEV, fw.FEATURE_AMD_SEV_SNP))
_CAPABLE_HOST = host.SevHostCapabilities(
    sev_usable=True, sev_es_usable=True, cbitpos=47, reduced_phys_bits=1,
    sev_snp_usable=True, snp_firmware=(_SNP_FIRMWARE,))
_CAPABLE_FIRMWARE = (fw.FirmwareDescriptor(
    path='(any OVMF build with SEV support)', interface_types=('uefi',),
    device='flash', executable='OVMF_CODE.fd', nvram_template='OVMF_VARS.fd',
    targets=(fw.FirmwareTarget('x86_64', ('pc-q35-*',)),),
    features=(fw.FEATURE_AMD_SEV, fw.FEATURE_AMD_SEV_ES)), _SNP_FIRMWARE)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing wrong with (``error``), worth a look in (``warning``) or
    worth adding to (``advice``) a flavor/image pair; the message says
    what to change.
    """

    level: str
    message: str
    source: str | None = None
    key: str | None = None


@dataclasses.dataclass(frozen=True)
class FlavorCheck:
    """The verdict on a flavor/image pair.

    ``mode`` is what the pair asks for once the misspellings found are read
    as meant (None when even that cannot be told). ``plan`` is the guest
    plan on an SEV capable host, None when the guest would be refused.
    """

    mode: SevMode | None
    findings: tuple[Finding, ...]
    plan: guest_plan.GuestPlan | None = None

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == ERROR)

    @property
    def works(self) -> bool:
        """Whether the pair gives a working SEV guest (advice allowed)."""
        return not self.errors and self.plan is not None


def _close(word: str, choices: collections.abc.Iterable[str],
           cutoff: float = 0.8) -> str | None:
    matches = difflib.get_close_matches(word, list(choices), n=1,
                                        cutoff=cutoff)
    return matches[0] if matches else None


def _is_known_trait(name: str) -> bool:
    return name in os_traits.get_traits() or bool(_CUSTOM_TRAIT.match(name))


def _looks_like_sev(name: str) -> bool:
    upper = name.upper()
    return 'SEV' in upper or _close(upper, SEV_TRAITS) is not None


def suggest_sev_trait(name: str) -> str:
    """The os-traits SEV trait a misspelt SEV trait name most likely
    means: SEV-SNP where it says SNP, SEV-ES where it says ES, else
    ``HW_CPU_X86_AMD_SEV``.
    """
    upper = name.strip().upper()
    if upper in SEV_TRAITS:
        return upper
    if _SEV_SNP_SPELLING.search(upper):
        return hardware.SEV_SNP_TRAIT_NAME
    if _SEV_ES_SPELLING.search(upper):
        return hardware.SEV_ES_TRAIT_NAME
    return os_traits.HW_CPU_X86_AMD_SEV


def meant_trait_value(value: Any) -> str | None:
    """``required`` or ``forbidden``, as a trait value was most likely
    meant (``require``, ``true``, ``Required``...); None when it cannot be
    told.
    """
    text = str(value).strip().lower()
    if text in _TRAIT_VALUES:
        return text
    if text in _TRAIT_VALUE_MEANING:
        return _TRAIT_VALUE_MEANING[text]
    return _close(text, _TRAIT_VALUES, cutoff=0.7)


def _lint_trait(source: str, key: str, value: Any, prefix: str, name: str
                ) -> tuple[list[Finding], tuple[str, Any] | None]:
    """Findings for one ``trait*:NAME=VALUE`` entry, and the entry as it
    was most likely meant (None: drop it, its meaning cannot be told).
    """
    findings = []
    if name in SEV_TRAITS:
        pass
    elif _is_known_trait(name):
        pass
    elif _looks_like_sev(name):
        meant = suggest_sev_trait(name)
        findings.append(Finding(
            ERROR, 'os-traits lists no trait %r (trait names are upper case), '
            'so placement finds no host and the guest would not be SEV: '
            'use trait:%s' % (name, meant), source, key))
        name = meant
    else:
        hint = _close(name.strip().upper(), os_traits.get_traits())
        findings.append(Finding(
            ERROR, 'os-traits lists no trait %r, so placement finds no host'
            ': %s' % (name, 'did you mean %s?' % hint if hint else
                      'correct it, or create a CUSTOM_ trait'),
            source, key))
    if prefix != 'trait':
        if prefix.lower() == 'trait':
            findings.append(Finding(
                ERROR, 'the prefix of %s must be lower case: write trait:%s'
                % (key, name), source, key))
        elif name in SEV_TRAITS and source == IMAGE:
            findings.append(Finding(
                ERROR, '%s puts the SEV trait in request group %r, but Nova '
                'reads request groups from flavors only and ignores it here: '
                'write trait:%s (no group suffix)' % (
                    key, prefix[len('trait'):], name), source, key))
        if prefix.lower() == 'trait' or (name in SEV_TRAITS and
                                         source == IMAGE):
            prefix = 'trait'
    text = str(value)
    if text not in _TRAIT_VALUES:
        meant_value = meant_trait_value(value)
        if meant_value is None:
            findings.append(Finding(
                ERROR, 'a trait is either required or forbidden, not %r: '
                'write %s:%s=required' % (text, prefix, name), source, key))
            return findings, None
        findings.append(Finding(
            ERROR, 'trait values are lower case required or forbidden, not '
            '%r (Nova rejects it): write %s:%s=%s' % (
                text, prefix, name, meant_value), source, key))
        value = meant_value
    return findings, ('%s:%s' % (prefix, name), value)


def _lint_key(source: str, key: str, value: Any
              ) -> tuple[list[Finding], str]:
    """Findings for a non-trait key that is a misspelling of, or the other
    side's spelling of, a key that matters to SEV; the key as meant.
    """
    if source == FLAVOR:
        own_sev, own_other = _FLAVOR_SEV_KEYS, _FLAVOR_OTHER_KEYS
        other_side, other_source = _IMAGE_SEV_KEYS + _IMAGE_OTHER_KEYS, IMAGE
    else:
        own_sev, own_other = _IMAGE_SEV_KEYS, _IMAGE_OTHER_KEYS
        other_side, other_source = (_FLAVOR_SEV_KEYS + _FLAVOR_OTHER_KEYS,
                                    FLAVOR)
    if key in own_sev + own_other:
        return [], key
    if key in other_side:
        meant = _OTHER_SIDE.get(key)
        if meant is None:
            return [Finding(
                WARNING, '%s is an %s, ignored here: set it on the %s' % (
                    key, other_source, other_source.split()[0]),
                source, key)], key
        level = ERROR if meant in own_sev else WARNING
        return [Finding(
            level, '%s is the %s spelling, ignored here: write %s=%s' % (
                key, other_source, meant, value), source, key)], meant
    meant = _close(key, own_sev + own_other, cutoff=0.85)
    if meant is None:
        return [], key
    level = ERROR if meant in own_sev else WARNING
    return [Finding(level, 'unknown key %s, ignored: did you mean %s?' % (
        key, meant), source, key)], meant


def _lint_resources(source: str, key: str, value: Any, rc: str
                    ) -> list[Finding]:
    if rc in orc.STANDARDS or rc.startswith(orc.CUSTOM_NAMESPACE):
        if rc == orc.MEM_ENCRYPTION_CONTEXT and str(value).strip() != '1':
            return [Finding(
                WARNING, 'a guest uses one ASID slot: write %s=1, not %r' % (
                    key, value), source, key)]
        return []
    hint = _close(rc.strip().upper(), orc.STANDARDS)
    return [Finding(
        ERROR, 'os-resource-classes lists no resource class %r, so placement '
        'finds no host: %s' % (rc, 'did you mean %s?' % hint if hint
                               else 'correct it'), source, key)]


def resourceless_sev_groups(extra_specs: Mapping[str, Any]
                            ) -> list[Finding]:
    """A request group that requires an SEV trait and asks for no resources
    (``trait1:HW_CPU_X86_AMD_SEV=required`` without any ``resources1:``):
    placement refuses such a group (allocation candidates, microversion
    1.36, unless it is named in ``same_subtree``, which a flavor cannot
    say), so no host is ever found.
    """
    with_resources = {
        m.group('prefix')[len('resources'):]
        for m in map(_RESOURCES_KEY.match, extra_specs) if m}
    found = []
    for key, value in extra_specs.items():
        group, name = hardware.parse_trait_key(key) or ('', None)
        if (group and name in SEV_TRAITS and group not in with_resources and
                meant_trait_value(value) == hardware.TRAIT_REQUIRED):
            found.append(Finding(
                ERROR, '%s puts the SEV trait in request group %r, which asks '
                'for no resources: placement refuses a request group without '
                'resources, so no host is found; add the group\'s resources '
                '(resources%s:VCPU=...) or write trait:%s (no group suffix)'
                % (key, group, group, name), FLAVOR, key))
    return found


def lint_properties(source: str, props: Mapping[str, Any]
                    ) -> tuple[list[Finding], dict[str, Any]]:
    """Misspellings in one side's keys and values: the findings, and the
    properties as they were most likely meant.
    """
    findings: list[Finding] = []
    meant: dict[str, Any] = {}
    for key, value in (props or {}).items():
        match = _TRAIT_KEY.match(key)
        if match:
            found, entry = _lint_trait(source, key, value,
                                       match.group('prefix'),
                                       match.group('name'))
            findings += found
            if entry is not None:
                meant[entry[0]] = entry[1]
            continue
        match = _RESOURCES_KEY.match(key)
        if match and source == FLAVOR:
            findings += _lint_resources(source, key, value, match.group('rc'))
            meant[key] = value
            continue
        found, meant_key = _lint_key(source, key, value)
        findings += found
        meant.setdefault(meant_key, value)
    if source == FLAVOR:
        findings += resourceless_sev_groups(props or {})
    return findings, meant


def _finding_of(e: exception.NovaSevException) -> Finding:
    source, key = e.kwargs.get('source'), e.kwargs.get('key')
    # The guest plan's refusals name "image property hw_disk_bus" whole.
    for side in (FLAVOR, IMAGE):
        if key is None and source and source.startswith(side + ' '):
            source, key = side, source[len(side) + 1:]
    return Finding(ERROR, str(e), source, key)


def request_mode(extra_specs: Mapping[str, Any],
                 image_props: Mapping[str, Any]
                 ) -> tuple[SevMode | None, list[Finding]]:
    """What the pair asks for, by ``hardware.get_sev_mode``, with every
    refusal it gives: an unreadable key is reported and set aside, and
    the check goes on; a conflict is reported and the guest taken as SEV.
    """
    specs, props = dict(extra_specs), dict(image_props)
    findings = []
    for _attempt in range(len(specs) + len(props) + 1):
        try:
            return hardware.get_sev_mode(specs, props), findings
        except exception.SevRequestConflict as e:
            findings.append(_finding_of(e))
            return SevMode.SEV, findings
        except exception.InvalidSevRequest as e:
            findings.append(_finding_of(e))
            side = specs if e.kwargs.get('source') == FLAVOR else props
            if side.pop(e.kwargs.get('key'), None) is None:
                return None, findings
    return None, findings


def _set_aside(facts: guest_plan.GuestFacts, options, e):
    """The facts and options without what refusal ``e`` names, so that the
    plan can be asked again; None when ``e`` names nothing to set aside.
    """
    source = e.kwargs.get('source')
    if isinstance(e, exception.InvalidSevPolicy):
        return facts, dataclasses.replace(options, policy=None,
                                          snp_policy=None)
    for field in ('machine_type_request', 'disk_bus_request',
                  'cdrom_bus_request', 'pci_passthrough_request',
                  'vgpu_request'):
        request = getattr(facts, field)
        if request is not None and request.source == source:
            return dataclasses.replace(facts, **{field: None}), options
    return None


def plan_refusals(mode: SevMode, facts: guest_plan.GuestFacts,
                  options: guest_plan.SevGuestOptions
                  ) -> tuple[guest_plan.GuestPlan | None, list[Finding]]:
    """Every refusal ``guest_plan.make_guest_plan`` gives the guest on an
    SEV capable host: after each, the fact it names is set aside and the
    plan asked again. The plan when there is none.
    """
    findings = []
    for _attempt in range(8):
        try:
            plan = guest_plan.make_guest_plan(
                mode, _CAPABLE_HOST, facts, options, _CAPABLE_FIRMWARE)
            return (plan if not findings else None), findings
        except exception.SevGuestRefused as e:
            findings.append(_finding_of(e))
            retry = _set_aside(facts, options, e)
            if retry is None:
                break
            facts, options = retry
    return None, findings


def _asks_mem_encryption(extra_specs: Mapping[str, Any],
                         image_props: Mapping[str, Any]) -> bool:
    # Nova's scheduler adds resources:MEM_ENCRYPTION_CONTEXT=1 by itself
    # to requests with hw:mem_encryption / hw_mem_encryption true
    # (nova.scheduler.utils, _translate_mem_encryption_request).
    return any(hardware.bool_from_string(props.get(key))
               for props, key in (
                   (extra_specs, hardware.FLAVOR_MEM_ENCRYPTION),
                   (image_props, hardware.IMAGE_MEM_ENCRYPTION)))


def advice(mode: SevMode, extra_specs: Mapping[str, Any],
           image_props: Mapping[str, Any]) -> list[Finding]:
    """What an SEV flavor could add: ``resources:MEM_ENCRYPTION_CONTEXT=1``
    so that placement counts ASID slots, and, where no page size was
    chosen, huge pages as the other way to pin memory.
    """
    found = []
    counted = any(
        m and m.group('rc') == orc.MEM_ENCRYPTION_CONTEXT
        for m in map(_RESOURCES_KEY.match, extra_specs))
    if not counted and not _asks_mem_encryption(extra_specs, image_props):
        found.append(Finding(
            ADVICE, 'add %s=1 to the flavor so that placement counts the '
            "host's SEV ASID slots and never picks a host that has none "
            'left' % MEM_ENCRYPTION_CONTEXT_KEY, FLAVOR,
            MEM_ENCRYPTION_CONTEXT_KEY))
    page_size_chosen = (hardware.FLAVOR_MEM_PAGE_SIZE in extra_specs or
                        hardware.IMAGE_MEM_PAGE_SIZE in image_props)
    # An explicit page size is the admin's choice: advise only where none
    # was made. SEV-SNP guests have no hard limit (guest_memfd).
    if not page_size_chosen and mode is not SevMode.SEV_SNP:
        found.append(Finding(
            ADVICE, 'the guest memory is pinned with a hard limit; '
            '%s=large (huge pages) pins it too, without the limit, on hosts '
            'with huge pages configured' % hardware.FLAVOR_MEM_PAGE_SIZE,
            FLAVOR, hardware.FLAVOR_MEM_PAGE_SIZE))
    return found


def check_flavor(extra_specs: Mapping[str, Any],
                 image_props: Mapping[str, Any], ram_mb: int = 0,
                 options: guest_plan.SevGuestOptions | None = None,
                 conf_machine_types: list[str] | None = None
                 ) -> FlavorCheck:
    """Whether a flavor's extra specs and an image's properties give a
    working SEV guest, with every problem found and its fix.

    Misspellings are reported and then read as meant, so that the rules
    behind them are checked too; the request and guest rules are those of
    ``hardware`` and ``guest_plan``. A pair that asks for no SEV at all
    is an error: it gives no SEV guest. ``conf_machine_types`` is Nova's
    ``[libvirt]hw_machine_type``, which applies where the image sets none.
    """
    options = options or guest_plan.SevGuestOptions()
    f_findings, specs = lint_properties(FLAVOR, extra_specs or {})
    i_findings, props = lint_properties(IMAGE, image_props or {})
    findings = f_findings + i_findings
    mode, found = request_mode(specs, props)
    findings += found
    if mode is None:
        return FlavorCheck(None, tuple(findings))
    if mode is SevMode.NONE:
        findings.append(Finding(
            ERROR, 'neither the flavor nor the image asks for SEV: add '
            'trait:%s=required to the flavor (or the image)' %
            os_traits.HW_CPU_X86_AMD_SEV, FLAVOR))
        return FlavorCheck(mode, tuple(findings))
    try:
        facts = guest_plan.guest_facts(specs, props, ram_mb,
                                       conf_machine_types=conf_machine_types)
    except exception.SevGuestRefused as e:
        findings.append(_finding_of(e))
        return FlavorCheck(mode, tuple(findings))
    plan, found = plan_refusals(mode, facts, options)
    findings += found
    findings += advice(mode, specs, props)
    return FlavorCheck(mode, tuple(findings), plan)
