"""The SEV guest plan: every decision about an SEV guest's domain, made once
(spec: "Proposed change", third bullet, and "Limitations"; design.md §3).

``plan_guest`` is the one composition the Nova driver and ``nova-sev
guest-xml`` share: the request (flavor extra specs, image properties,
``[libvirt]`` choices and, for ``guest-xml``, the base domain's
``DomainFacts``) and the host facts (``SevHostCapabilities``, firmware
descriptors, ``[sev]`` options as ``SevGuestOptions``) go in, one
``GuestPlan`` comes out, or one specific ``SevGuestRefused``.
``make_guest_plan`` is its decision step on gathered ``GuestFacts``.

Every refusal of an SEV guest is decided here or in the request rules of
``nova_sev.virt.hardware``; the writers (``designer``, the driver) never
refuse. Pure: no libvirt, no Nova, no CONF.

A new mode (SEV-SNP, say) is a new ``SevMode`` value: its policy in
``guest_policy``, its firmware features in ``_FIRMWARE_FEATURES`` and
whatever the domain gets differently as a field of ``GuestPlan``.
"""

import collections.abc
import dataclasses
import functools
from typing import Any

from nova_sev.attestation import host_data
from nova_sev import exception
from nova_sev.virt import hardware
from nova_sev.virt.hardware import SevMode
from nova_sev.virt.libvirt import firmware as fw
from nova_sev.virt.libvirt import host
from nova_sev.virt import memory

ARCH = 'x86_64'
MACHINE_Q35 = 'q35'
# QEMU firmware descriptors list machines as patterns ("pc-q35-*"); the
# "q35" alias stands for the newest pc-q35-X.Y, which such patterns cover.
_Q35_FOR_MATCHING = 'pc-q35-alias'

# SEV guest policy bits (AMD SEV-KM API specification, "Guest Policy").
POLICY_NODBG = 0x01
POLICY_NOKS = 0x02
POLICY_ES = 0x04
POLICY_NOSEND = 0x08
POLICY_DOMAIN = 0x10
POLICY_SEV = 0x20
# The spec's SEV_POLICY_NORM without ES (0x0033), and with it (0x0037) for
# SEV-ES guests only: ES needs host and guest kernel support (design.md §3).
POLICY_SEV_DEFAULT = POLICY_NODBG | POLICY_NOKS | POLICY_DOMAIN | POLICY_SEV
POLICY_SEV_ES_DEFAULT = POLICY_SEV_DEFAULT | POLICY_ES
_POLICY_MAX = 0xffffffff

# SEV-SNP guest policy bits (AMD SEV-SNP Firmware ABI specification,
# "Guest Policy"): bits 0-15 are the minimum firmware ABI version.
SNP_POLICY_SMT = 1 << 16
SNP_POLICY_RESERVED_ONE = 1 << 17  # must be one
SNP_POLICY_MIGRATE_MA = 1 << 18
SNP_POLICY_DEBUG = 1 << 19
SNP_POLICY_SINGLE_SOCKET = 1 << 20
SNP_POLICY_CXL_ALLOW = 1 << 21
# Bits the ABI defines (up to PAGE_SWAP_DISABLE, bit 25); above is MBZ.
_SNP_POLICY_DEFINED = (1 << 26) - 1
# Nova's and libvirt's default: SMT allowed, reserved bit set, no debug,
# no migration agent.
SNP_POLICY_DEFAULT = SNP_POLICY_SMT | SNP_POLICY_RESERVED_ONE
# Bits that let the host or another party into the guest: the SNP
# counterpart of dropping SEV's NODBG/NOKS.
_SNP_POLICY_WEAKENING = (
    (SNP_POLICY_DEBUG, 'DEBUG (0x80000), which lets the host debug the '
     'guest'),
    (SNP_POLICY_MIGRATE_MA, 'MIGRATE_MA (0x40000), which lets a migration '
     'agent read the guest'),
    (SNP_POLICY_CXL_ALLOW, 'CXL_ALLOW (0x200000), which lets guest memory '
     'sit on CXL devices'))

# HOST_DATA of an SNP guest: 32 bytes of the hypervisor's choosing that
# the signed attestation report carries. nova-sev binds the instance.
LOADER_PFLASH = 'pflash'
LOADER_ROM = 'rom'

DISK_BUS_SCSI = 'scsi'
CDROM_BUS_SATA = 'sata'
BUS_IDE = 'ide'
BUS_VIRTIO = 'virtio'
VIRT_TYPE_KVM = 'kvm'

# The firmware features each mode needs (QEMU's docs/interop/firmware.json).
_FIRMWARE_FEATURES = {
    SevMode.SEV: (fw.FEATURE_AMD_SEV,),
    SevMode.SEV_ES: (fw.FEATURE_AMD_SEV, fw.FEATURE_AMD_SEV_ES),
    # On stateless firmware only (fw.select_snp_firmware).
    SevMode.SEV_SNP: (fw.FEATURE_AMD_SEV_SNP,),
}


@dataclasses.dataclass(frozen=True)
class SevGuestOptions:
    """The ``[sev]`` options the plan needs, as plain values."""

    firmware_overhead_mb: int = memory.DEFAULT_FIRMWARE_OVERHEAD_MB
    qemu_overhead_mb: int = memory.DEFAULT_QEMU_OVERHEAD_MB
    allow_virtio_blk_boot_disk: bool = False
    policy: str | None = None
    allow_insecure_policy: bool = False
    firmware_descriptor_dirs: tuple[str, ...] = ()
    snp_policy: str | None = None


def options_from_conf(conf: Any) -> SevGuestOptions:
    """Read the ``[sev]`` options of ``conf`` (oslo.config) once."""
    sev = conf.sev
    return SevGuestOptions(
        firmware_overhead_mb=sev.firmware_overhead_mb,
        qemu_overhead_mb=sev.qemu_overhead_mb,
        allow_virtio_blk_boot_disk=sev.allow_virtio_blk_boot_disk,
        policy=sev.policy,
        allow_insecure_policy=sev.allow_insecure_policy,
        firmware_descriptor_dirs=tuple(sev.firmware_descriptor_dirs or ()),
        snp_policy=sev.snp_policy)


@dataclasses.dataclass(frozen=True)
class DomainFacts:
    """What a base domain (``virsh dumpxml``, say) says about the guest
    that its plan must know; read by ``designer.domain_facts``.

    ``ide_disks`` holds (``device``, target ``dev``) of each disk on IDE.
    """

    ram_mb: int
    video_mb: int
    huge_pages: bool
    machine_type: str | None
    host_devices: tuple[str, ...]
    virt_type: str | None = None
    arch: str | None = None
    ide_disks: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class GuestFacts:
    """What the guest is and asks for, beyond its SEV mode.

    ``*_request`` fields say what the image, flavor, configuration or base
    domain asked for and where; None when nothing did. ``host_devices``
    describes PCI, mediated or passthrough devices the guest would have;
    ``ide_disks`` the base domain's IDE disks as in ``DomainFacts``.
    """

    ram_mb: int
    video_mb: int = 0
    machine_type_request: hardware.Request | None = None
    domain_machine_request: hardware.Request | None = None
    disk_bus_request: hardware.Request | None = None
    cdrom_bus_request: hardware.Request | None = None
    virt_type_request: hardware.Request | None = None
    arch_request: hardware.Request | None = None
    huge_pages: bool = False
    pci_passthrough_request: hardware.Request | None = None
    vgpu_request: hardware.Request | None = None
    host_devices: tuple[str, ...] = ()
    ide_disks: tuple[tuple[str, str], ...] = ()
    requested_by: str = ''
    instance_uuid: str | None = None
    direct_kernel_boot: bool = False
    stateless_firmware_request: hardware.Request | None = None
    policy_requests: tuple[hardware.Request, ...] = ()
    attested: bool = False


DOMAIN_MACHINE = "the domain's <os><type machine>"
DOMAIN_TYPE = "the domain's type"
DOMAIN_ARCH = "the domain's <os><type arch>"
CONF_VIRT_TYPE = '[libvirt]virt_type'


def _request(value: str | None, source: str) -> hardware.Request | None:
    return hardware.Request(value, source) if value else None


def guest_facts(extra_specs: collections.abc.Mapping[str, str],
                image_props: collections.abc.Mapping[str, Any],
                ram_mb: int, video_mb: int = 0,
                conf_machine_types: list[str] | None = None,
                host_devices: tuple[str, ...] = (),
                virt_type: str | None = None,
                domain: DomainFacts | None = None,
                instance_uuid: str | None = None,
                direct_kernel_boot: bool = False,
                requested_by: str | None = None,
                attested: bool = False) -> GuestFacts:
    """Gather the guest facts from a flavor's extra specs and an image's
    properties (with ``[libvirt]hw_machine_type`` as
    ``conf_machine_types`` and ``[libvirt]virt_type`` as ``virt_type``).

    With a base ``domain`` (``guest-xml``), its RAM, video memory, huge
    pages, machine type, domain type, architecture, host devices and IDE
    disks count as well: the guest is that domain. ``instance_uuid`` and
    ``direct_kernel_boot`` (or an image ``kernel_id``) matter to SEV-SNP.
    ``requested_by`` is ``hardware.sev_requested_by`` when the caller has
    it already. ``attested``: the owner attests the launch (the server's
    ``nova-sev:attest`` or the image's ``nova_sev_attest``).
    """
    video_mb = max(video_mb, hardware.requested_video_ram_mb(image_props))
    huge_pages = hardware.uses_huge_pages(extra_specs, image_props)
    arch = hardware.requested_architecture(image_props)
    virt = _request(virt_type, CONF_VIRT_TYPE)
    machine = ide_disks = None
    if domain is not None:
        ram_mb = domain.ram_mb
        video_mb = max(video_mb, domain.video_mb)
        huge_pages = huge_pages or domain.huge_pages
        host_devices = tuple(host_devices) + domain.host_devices
        machine = _request(domain.machine_type, DOMAIN_MACHINE)
        virt = _request(domain.virt_type, DOMAIN_TYPE) or virt
        arch = _request(domain.arch, DOMAIN_ARCH) or arch
        ide_disks = domain.ide_disks
    return GuestFacts(
        ram_mb=ram_mb,
        video_mb=video_mb,
        machine_type_request=hardware.requested_machine_type(
            image_props, conf_machine_types, ARCH),
        domain_machine_request=machine,
        disk_bus_request=hardware.requested_disk_bus(image_props),
        cdrom_bus_request=hardware.requested_cdrom_bus(image_props),
        virt_type_request=virt,
        arch_request=arch,
        huge_pages=huge_pages,
        pci_passthrough_request=hardware.requested_pci_passthrough(
            extra_specs),
        vgpu_request=hardware.requested_vgpus(extra_specs),
        host_devices=tuple(host_devices),
        ide_disks=ide_disks or (),
        requested_by=(hardware.sev_requested_by(extra_specs, image_props)
                      if requested_by is None else requested_by),
        instance_uuid=instance_uuid,
        direct_kernel_boot=(direct_kernel_boot or
                            hardware.boots_kernel_directly(image_props)),
        stateless_firmware_request=hardware.requested_stateless_firmware(
            image_props),
        policy_requests=hardware.requested_policies(extra_specs,
                                                    image_props),
        attested=attested)


@dataclasses.dataclass(frozen=True)
class SnpLaunch:
    """What an SEV-SNP guest's ``<launchSecurity>`` adds to SEV's: the
    HOST_DATA (base64), kernel hashes, and the report's signing key (the
    VCEK, not an author key).
    """

    host_data: str | None
    kernel_hashes: bool
    author_key: bool = False
    vcek: bool = True


@dataclasses.dataclass(frozen=True)
class GuestPlan:
    """Everything an SEV guest's domain gets (design.md §3).

    ``machine_type`` is set where the domain names none or only the
    ``q35`` alias. ``disk_bus`` is ``scsi`` when the image left the disk
    bus open (virtio-blk and IDE disks move to virtio-scsi), None to keep
    the image's choice; ``cdrom_bus`` likewise ``sata`` or None.
    ``hard_limit_kib`` is None for guests on huge pages, which are pinned
    already; their memory is locked all the same. Every virtio device gets
    ``iommu='on'``.
    """

    mode: SevMode
    policy: int
    cbitpos: int
    reduced_phys_bits: int
    machine_type: str
    loader_path: str
    nvram_template_path: str | None
    firmware_descriptor_path: str
    pinned_memory_mb: int
    hard_limit_kib: int | None
    disk_bus: str | None
    cdrom_bus: str | None
    # SEV-SNP (snp_plan): a stateless ROM, no <locked/>, the SNP launch.
    loader_type: str = LOADER_PFLASH
    lock_memory: bool = True
    snp: SnpLaunch | None = None
    # The owner attests the launch (attested_plan): stateless firmware.
    attested: bool = False


def guest_policy(mode: SevMode, options: SevGuestOptions,
                 requests: tuple[hardware.Request, ...] = ()) -> int:
    """The SEV policy of a ``mode`` guest: 0x0033 for SEV, 0x0037 for
    SEV-ES, or ``[sev]policy`` with its ES bit set by the mode; with the
    bits that ``requests`` (``hardware.requested_policies``) add.

    An override that drops NODBG or NOKS is refused unless
    ``[sev]allow_insecure_policy`` is set; a request that drops a bit of
    that policy is refused, naming the request.
    """
    base = _operator_policy(mode, options)
    policy = base
    for request in requests:
        policy |= _stricter_policy(request, base)
    return policy


def _stricter_policy(request: hardware.Request, base: int) -> int:
    """The policy ``request`` asks for, when it keeps every bit of
    ``base`` (the ES bit aside: the mode sets it).
    """
    source, _sep, key = request.source.rpartition(' ')

    def refuse(reason):
        raise exception.InvalidSevRequest(source=source, key=key,
                                          value=request.value, reason=reason)

    try:
        wanted = int(request.value, 0)
    except ValueError:
        refuse('not a number; write it as 0x0033')
    if not 0 <= wanted <= _POLICY_MAX:
        refuse('outside 0x0 to 0xffffffff')
    dropped = base & ~wanted & ~POLICY_ES
    if dropped:
        refuse('it may only add bits to the policy 0x%04x this host '
               'launches with, but it drops 0x%x: set it to 0x%04x or '
               'remove it' % (base, dropped, base | wanted))
    return wanted & ~POLICY_ES


def _operator_policy(mode: SevMode, options: SevGuestOptions) -> int:
    """The policy of ``[sev]policy`` (or the default) for ``mode``."""
    if options.policy is None or not str(options.policy).strip():
        return (POLICY_SEV_ES_DEFAULT if mode is SevMode.SEV_ES
                else POLICY_SEV_DEFAULT)
    text = str(options.policy).strip()
    try:
        policy = int(text, 0)
    except ValueError:
        raise exception.InvalidSevPolicy(
            policy=text, reason='not a number; write it as 0x0033')
    if not 0 <= policy <= _POLICY_MAX:
        raise exception.InvalidSevPolicy(
            policy=text, reason='outside 0x0 to 0xffffffff')
    missing = [name for bit, name in ((POLICY_NODBG, 'NODBG (0x1)'),
                                      (POLICY_NOKS, 'NOKS (0x2)'))
               if not policy & bit]
    if missing and not options.allow_insecure_policy:
        raise exception.InvalidSevPolicy(
            policy=text, reason='it drops %s, which lets the host debug the '
            'guest or share its keys; keep those bits or set '
            '[sev]allow_insecure_policy=True' % ' and '.join(missing))
    if mode is SevMode.SEV_ES:
        return policy | POLICY_ES
    return policy & ~POLICY_ES


def snp_guest_policy(options: SevGuestOptions) -> int:
    """The SEV-SNP policy: 0x00030000, or ``[sev]snp_policy``.

    The reserved bit 17 must be set and undefined bits clear; DEBUG,
    MIGRATE_MA and CXL_ALLOW need ``[sev]allow_insecure_policy``.
    """
    if options.snp_policy is None or not str(options.snp_policy).strip():
        return SNP_POLICY_DEFAULT
    text = str(options.snp_policy).strip()
    try:
        policy = int(text, 0)
    except ValueError:
        raise exception.InvalidSevPolicy(
            policy=text, reason='[sev]snp_policy is not a number; write it '
            'as 0x00030000')
    if not 0 <= policy <= _SNP_POLICY_DEFINED:
        raise exception.InvalidSevPolicy(
            policy=text, reason='[sev]snp_policy sets bits the SEV-SNP ABI '
            'reserves (above 0x%x)' % _SNP_POLICY_DEFINED)
    if not policy & SNP_POLICY_RESERVED_ONE:
        raise exception.InvalidSevPolicy(
            policy=text, reason='[sev]snp_policy must set bit 17 (0x20000), '
            'which the SEV-SNP ABI reserves as one')
    weakening = [name for bit, name in _SNP_POLICY_WEAKENING
                 if policy & bit]
    if weakening and not options.allow_insecure_policy:
        raise exception.InvalidSevPolicy(
            policy=text, reason='[sev]snp_policy sets %s; clear it or set '
            '[sev]allow_insecure_policy=True' % ' and '.join(weakening))
    return policy


def snp_host_data(instance_uuid: str) -> str:
    """The HOST_DATA that binds an SEV-SNP guest to its instance, as
    libvirt's ``<hostData>`` (``attestation.host_data``, the rule
    ``verify-report --instance-uuid`` checks against); InvalidLibvirtXML
    when ``instance_uuid`` is not a UUID.
    """
    try:
        return host_data.host_data_b64(instance_uuid)
    except ValueError:
        raise exception.InvalidLibvirtXML(
            what='domain', reason='<uuid> %s is not a UUID' %
            exception.excerpt(instance_uuid))


def _check_host(mode: SevMode, caps: host.SevHostCapabilities,
                requested_by: str) -> None:
    by = requested_by or 'the flavor or image'
    reasons = list(caps.sev_reasons)
    if caps.sev_usable and (caps.cbitpos is None or
                            caps.reduced_phys_bits is None):
        reasons.append('libvirt reports no cbitpos/reducedPhysBits')
    if not caps.sev_usable or reasons:
        raise exception.SevHostNotCapable(
            requested_by=by, reasons='; '.join(reasons) or 'unknown')
    if mode is SevMode.SEV_ES and not caps.sev_es_usable:
        raise exception.SevESNotUsable(
            requested_by=by,
            reasons='; '.join(caps.sev_es_reasons) or 'unknown')
    if mode is SevMode.SEV_SNP and not caps.sev_snp_usable:
        raise exception.SevSNPNotUsable(
            requested_by=by,
            reasons='; '.join(caps.sev_snp_reasons) or 'unknown')


def _check_stateless(facts: GuestFacts) -> None:
    """SEV-SNP guests boot stateless firmware: an image that insists on
    NVRAM (``hw_firmware_stateless=false``) is refused. Left open, it is
    set to true for the guest, as Nova requires it for SNP.
    """
    request = facts.stateless_firmware_request
    if request is not None and request.value == 'false':
        raise exception.SevGuestRefused(
            reason='SEV-SNP guests boot stateless firmware (no NVRAM, whose '
            'contents the launch measurement cannot cover) but %s is false: '
            'set it to true or remove it' % request.source)


def _check_virt(facts: GuestFacts) -> None:
    virt = facts.virt_type_request
    if virt is not None and virt.value != VIRT_TYPE_KVM:
        raise exception.SevGuestRefused(
            reason="%s is %r: SEV needs KVM; set [libvirt]virt_type=kvm"
            % (virt.source, virt.value))
    arch = facts.arch_request
    if arch is not None and arch.value != ARCH:
        raise exception.SevGuestRefused(
            reason='%s is %s: SEV guests are x86_64 (set '
            'hw_architecture=x86_64 or remove it)' % (arch.source,
                                                      arch.value))


def _machine_type(facts: GuestFacts) -> str:
    for request in (facts.machine_type_request,
                    facts.domain_machine_request):
        if request is not None and not hardware.is_q35(request.value):
            raise exception.SevMachineTypeNotSupported(
                source=request.source, machine_type=request.value)
    request = facts.machine_type_request
    return request.value if request is not None else MACHINE_Q35


def refuse_host_devices(devices: tuple[str, ...], source: str) -> None:
    """Refuse PCI passthrough and mediated devices in an SEV guest: they
    would DMA into encrypted memory (spec: "Limitations").
    """
    if devices:
        raise exception.SevDeviceNotSupported(
            device=exception.excerpt_list(devices), source=source)


def _check_devices(facts: GuestFacts) -> None:
    if facts.pci_passthrough_request is not None:
        refuse_host_devices(('PCI passthrough devices (alias %s)' %
                             facts.pci_passthrough_request.value,),
                            facts.pci_passthrough_request.source)
    if facts.vgpu_request is not None:
        refuse_host_devices(('%s mediated devices (vGPU)' %
                             facts.vgpu_request.value,),
                            facts.vgpu_request.source)
    refuse_host_devices(facts.host_devices, 'the domain <hostdev>')


def check_attached_disk(bus: str | None, dev: str | None) -> None:
    """Refuse a disk attached to a running SEV guest on IDE: q35 has no
    IDE controller.
    """
    if bus == BUS_IDE:
        raise exception.SevDiskBusNotSupported(
            bus=BUS_IDE, source='the attached <disk> %s' % dev,
            reason='the q35 machine type has no IDE controller',
            fix="put it on sata, scsi or virtio (the volume's disk_bus)")


def _check_ide_disks(facts: GuestFacts, disk_bus: str | None,
                     cdrom_bus: str | None) -> None:
    """Refuse the base domain's IDE disks that the plan does not move."""
    for device, dev in facts.ide_disks:
        moved = cdrom_bus if device == 'cdrom' else (
            disk_bus if device == 'disk' else None)
        if moved is None:
            raise exception.SevDiskBusNotSupported(
                bus=BUS_IDE, source='the domain <disk> %s' % dev,
                reason='the q35 machine type has no IDE controller',
                fix='put it on sata, scsi or virtio (hw_disk_bus, '
                'hw_cdrom_bus or the volume\'s disk_bus)')


def _refuse_ide(request: hardware.Request, key: str,
                alternatives: str) -> None:
    if request.value == BUS_IDE:
        raise exception.SevDiskBusNotSupported(
            bus=request.value, source=request.source,
            reason='the q35 machine type has no IDE controller',
            fix='set %s=%s, or remove it' % (key, alternatives))


def _disk_bus(facts: GuestFacts, options: SevGuestOptions) -> str | None:
    request = facts.disk_bus_request
    if request is None:
        return DISK_BUS_SCSI
    _refuse_ide(request, hardware.IMAGE_DISK_BUS, 'scsi or sata')
    if request.value == BUS_VIRTIO and not options.allow_virtio_blk_boot_disk:
        raise exception.SevDiskBusNotSupported(
            bus='virtio-blk', source=request.source,
            reason='many guest kernels cannot boot an SEV guest from '
            'virtio-blk (bounce buffer limits)',
            fix='set hw_disk_bus=scsi or remove it, or let the operator set '
            '[sev]allow_virtio_blk_boot_disk=True')
    return None


def _cdrom_bus(facts: GuestFacts) -> str | None:
    request = facts.cdrom_bus_request
    if request is None:
        return CDROM_BUS_SATA
    _refuse_ide(request, hardware.IMAGE_CDROM_BUS, 'sata or scsi')
    return None


def _firmware(mode: SevMode, machine_type: str,
              descriptors: collections.abc.Sequence[fw.FirmwareDescriptor],
              options: SevGuestOptions, stateless: bool = False
              ) -> fw.FirmwareDescriptor:
    required = _FIRMWARE_FEATURES[mode]
    if mode is SevMode.SEV_SNP:
        required = ('%s (on stateless, memory-mapped firmware)' %
                    fw.FEATURE_AMD_SEV_SNP,)
    elif stateless:
        required = (' and '.join(required) + ' on stateless firmware (an '
                    'attested guest: its NVRAM would not be measured)',)
    selected = _select_firmware(mode, machine_type, tuple(descriptors),
                                stateless)
    if selected is None:
        raise exception.SevFirmwareNotFound(
            arch=ARCH, machine=machine_type,
            features=' and '.join(required),
            dirs=', '.join(options.firmware_descriptor_dirs) or
            'this host')
    return selected


@functools.lru_cache(maxsize=32)
def _select_firmware(mode: SevMode, machine_type: str,
                     descriptors: tuple[fw.FirmwareDescriptor, ...],
                     stateless: bool = False
                     ) -> fw.FirmwareDescriptor | None:
    """The firmware of a ``mode`` guest on ``machine_type`` (a
    ``stateless`` one for an attested guest), or None. A function of a
    host's descriptors (detected once per connection) and the machine
    type: chosen once for each, not once per guest.
    """
    machine = (_Q35_FOR_MATCHING if machine_type == MACHINE_Q35
               else machine_type)
    if mode is SevMode.SEV_SNP:
        return fw.select_snp_firmware(list(descriptors), ARCH, machine)
    if stateless:
        return fw.select_stateless_firmware(list(descriptors), ARCH, machine,
                                            _FIRMWARE_FEATURES[mode])
    return fw.select_firmware(list(descriptors), ARCH, machine,
                              _FIRMWARE_FEATURES[mode])


def make_guest_plan(
        mode: SevMode, caps: host.SevHostCapabilities, facts: GuestFacts,
        options: SevGuestOptions,
        firmware: collections.abc.Sequence[fw.FirmwareDescriptor] | None = None
) -> GuestPlan | None:
    """Decide everything an SEV guest's domain gets, or refuse.

    None when ``mode`` is NONE: a guest that did not ask for SEV gets
    nothing. ``firmware`` defaults to the descriptors detection found
    (``caps.firmware``). Raises a ``SevGuestRefused`` subclass: host not
    SEV capable, SEV-ES not usable, bad ``[sev]policy``, machine type not
    q35, not KVM x86_64, PCI/mediated devices, IDE or refused virtio-blk
    bus, no firmware with the needed feature.

    An SEV-SNP guest gets ``snp_plan``'s differences: its own policy,
    stateless firmware, HOST_DATA and unlocked memory.

    The inputs are immutable: the plan of the same objects (a host's
    capabilities, the facts ``plan_guest`` read of a request) is decided
    once and given again (``_decided``).
    """
    if mode is SevMode.NONE:
        return None
    return _decided(mode, caps, facts, options, firmware)


# The plans decided last, by the identity of their inputs: each entry holds
# its inputs, so that no other object can take their identities while it is
# kept. A refusal is decided again each time.
_PLANS_KEPT = 256
_plans: dict[tuple, tuple] = {}


def _decided(mode: SevMode, caps: host.SevHostCapabilities,
             facts: GuestFacts, options: SevGuestOptions,
             firmware: collections.abc.Sequence[fw.FirmwareDescriptor] | None
             ) -> GuestPlan:
    key = (mode, id(caps), id(facts), id(options), id(firmware))
    kept = _plans.get(key)
    if (kept is not None and kept[0] is caps and kept[1] is facts and
            kept[2] is options and kept[3] is firmware):
        return kept[4]
    plan = _decide(mode, caps, facts, options, firmware)
    # A list of descriptors could change under the same identity.
    if firmware is None or isinstance(firmware, tuple):
        if len(_plans) >= _PLANS_KEPT:
            _plans.clear()
        _plans[key] = (caps, facts, options, firmware, plan)
    return plan


def _decide(mode: SevMode, caps: host.SevHostCapabilities,
            facts: GuestFacts, options: SevGuestOptions,
            firmware: collections.abc.Sequence[fw.FirmwareDescriptor] | None
            ) -> GuestPlan:
    """``make_guest_plan``'s decision, for a ``mode`` that is not NONE."""
    _check_host(mode, caps, facts.requested_by)
    if mode is SevMode.SEV_SNP:
        _check_stateless(facts)
        if facts.policy_requests:
            request = facts.policy_requests[0]
            source, _sep, key = request.source.rpartition(' ')
            raise exception.InvalidSevRequest(
                source=source, key=key, value=request.value,
                reason='an SEV and SEV-ES policy, but this is an SEV-SNP '
                'guest (its policy is [sev]snp_policy): remove it')
        policy = snp_guest_policy(options)
    else:
        policy = guest_policy(mode, options, facts.policy_requests)
    _check_virt(facts)
    machine_type = _machine_type(facts)
    _check_devices(facts)
    disk_bus = _disk_bus(facts, options)
    cdrom_bus = _cdrom_bus(facts)
    _check_ide_disks(facts, disk_bus, cdrom_bus)
    if firmware is None:
        firmware = ((caps.snp_firmware if mode is SevMode.SEV_SNP
                     else caps.firmware) or ())
    attested = facts.attested and mode is not SevMode.SEV_SNP
    descriptor = _firmware(mode, machine_type, firmware, options,
                           stateless=attested)
    pinned_mb = memory.pinned_memory_mb(
        facts.ram_mb, facts.video_mb, options.firmware_overhead_mb)
    hard_limit = None
    if not facts.huge_pages:
        hard_limit = memory.hard_limit_kib(
            facts.ram_mb, facts.video_mb, options.firmware_overhead_mb,
            options.qemu_overhead_mb)
    plan = GuestPlan(
        mode=mode,
        policy=policy,
        cbitpos=caps.cbitpos,
        reduced_phys_bits=caps.reduced_phys_bits,
        machine_type=machine_type,
        loader_path=descriptor.executable,
        nvram_template_path=descriptor.nvram_template,
        firmware_descriptor_path=descriptor.path,
        pinned_memory_mb=pinned_mb,
        hard_limit_kib=hard_limit,
        disk_bus=disk_bus,
        cdrom_bus=cdrom_bus)
    if mode is SevMode.SEV_SNP:
        return snp_plan(plan, facts)
    return attested_plan(plan) if attested else plan


def attested_plan(plan: GuestPlan) -> GuestPlan:
    """What the owner's attestation changes in an SEV or SEV-ES plan:
    the stateless firmware as a ROM and no NVRAM, which the launch
    measurement would not cover (a host could change the boot order or
    Secure Boot keys there unseen).
    """
    return dataclasses.replace(plan, loader_type=LOADER_ROM,
                               nvram_template_path=None, attested=True)


def snp_plan(plan: GuestPlan, facts: GuestFacts) -> GuestPlan:
    """What an SEV-SNP guest changes in an SEV plan.

    - Firmware: the stateless image as a ROM, no NVRAM.
    - Memory: neither ``<locked/>`` nor a hard limit. QEMU >= 9.1 keeps an
      SNP guest's private memory in guest_memfd, which needs no mlock:
      libvirt starts SNP guests with ``-overcommit mem-lock=off`` and
      raises no memlock limit for them (QEMU's
      docs/system/i386/amd-memory-encryption.rst; libvirt's
      formatdomain "Launch Security"; measured on libvirt 11.3 / QEMU 10.0).
      guest_memfd memory cannot be swapped either, so the pinned size is
      still counted, as for SEV, by admission and plan-memory.
    - ``<launchSecurity type='sev-snp'>``: HOST_DATA bound to the
      instance, kernel hashes when the guest boots a kernel directly.
    """
    return dataclasses.replace(
        plan, loader_type=LOADER_ROM, nvram_template_path=None,
        hard_limit_kib=None, lock_memory=False,
        snp=SnpLaunch(
            host_data=(snp_host_data(facts.instance_uuid)
                       if facts.instance_uuid else None),
            kernel_hashes=facts.direct_kernel_boot))


def plan_guest(
        extra_specs: collections.abc.Mapping[str, str],
        image_props: collections.abc.Mapping[str, Any],
        caps: host.SevHostCapabilities, options: SevGuestOptions, *,
        ram_mb: int = 0, conf_machine_types: list[str] | None = None,
        virt_type: str | None = None, host_devices: tuple[str, ...] = (),
        domain: DomainFacts | None = None,
        firmware: (collections.abc.Sequence[fw.FirmwareDescriptor] |
                   None) = None,
        instance_uuid: str | None = None, direct_kernel_boot: bool = False,
        attested: bool = False
) -> GuestPlan | None:
    """The one way from a request and host facts to a ``GuestPlan``: the
    SEV mode of ``extra_specs`` and ``image_props``, the guest facts
    (``guest_facts``), the plan (``make_guest_plan``). None when SEV is
    not requested. Raises SevGuestRefused subclasses. ``attested``: the
    owner attests the launch (stateless firmware, ``attested_plan``).

    What the request asks is read once for each distinct request
    (``_read_request``, ``_read_guest``), and the plan of the facts read is
    decided once for each host state (``make_guest_plan``).
    """
    specs = _items(extra_specs)
    props = _items(image_props)
    mode, requested_by = _kept(_read_request, specs, props)
    if mode is SevMode.NONE:
        return None
    request = (
        specs, props, ram_mb, tuple(conf_machine_types or ()), virt_type,
        tuple(host_devices), domain,
        # Only an SEV-SNP guest is bound to its instance (HOST_DATA): the
        # facts of other guests are those of every guest of the request.
        instance_uuid if mode is SevMode.SEV_SNP else None,
        direct_kernel_boot, requested_by, attested)
    facts = _kept(_read_guest, *request)
    return make_guest_plan(mode, caps, facts, options, firmware)


# A host sees few distinct requests (flavor and image pairs, sizes): what
# each asks is kept for this many of them.
_REQUESTS_KEPT = 256


def _items(mapping: collections.abc.Mapping[str, Any] | None
           ) -> tuple[tuple[str, Any], ...]:
    """A mapping as a hashable value, in its order (which messages and
    request groups follow); list values (``traits_required``) as tuples.
    """
    if not mapping:
        return ()
    return tuple((key, tuple(value) if isinstance(value, list) else value)
                 for key, value in mapping.items())


def _kept(read: Any, *request: Any) -> Any:
    """``read(*request)``, kept for the next equal request; a value that
    cannot be a key (none of Nova's or Glance's) is read without keeping.
    """
    try:
        return read(*request)
    except TypeError:
        return read.__wrapped__(*request)


@functools.lru_cache(maxsize=_REQUESTS_KEPT)
def _read_request(specs: tuple[tuple[str, Any], ...],
                  props: tuple[tuple[str, Any], ...]
                  ) -> tuple[SevMode, str]:
    """``hardware.sev_request`` of a request given by ``_items``."""
    return hardware.sev_request(dict(specs), dict(props))


@functools.lru_cache(maxsize=_REQUESTS_KEPT)
def _read_guest(specs: tuple[tuple[str, Any], ...],
                props: tuple[tuple[str, Any], ...], ram_mb: int,
                conf_machine_types: tuple[str, ...], virt_type: str | None,
                host_devices: tuple[str, ...], domain: DomainFacts | None,
                instance_uuid: str | None, direct_kernel_boot: bool,
                requested_by: str, attested: bool = False) -> GuestFacts:
    """``guest_facts`` of a request given by ``_items``."""
    return guest_facts(dict(specs), dict(props), ram_mb,
                       conf_machine_types=list(conf_machine_types),
                       host_devices=host_devices, virt_type=virt_type,
                       domain=domain, instance_uuid=instance_uuid,
                       direct_kernel_boot=direct_kernel_boot,
                       requested_by=requested_by, attested=attested)


def image_choices(plan: GuestPlan,
                  image_props: collections.abc.Mapping[str, Any]
                  ) -> dict[str, str]:
    """The image properties that hand the plan's machine type, firmware
    and buses to Nova where the image left them open, so that Nova itself
    builds a q35, UEFI, virtio-scsi guest (and names its disks for it).
    """
    wanted = {hardware.IMAGE_MACHINE_TYPE: plan.machine_type,
              hardware.IMAGE_FIRMWARE_TYPE: 'uefi'}
    if plan.disk_bus:
        wanted[hardware.IMAGE_DISK_BUS] = plan.disk_bus
        if plan.disk_bus == DISK_BUS_SCSI:
            wanted[hardware.IMAGE_SCSI_MODEL] = 'virtio-scsi'
    if plan.cdrom_bus:
        wanted[hardware.IMAGE_CDROM_BUS] = plan.cdrom_bus
    if plan.snp is not None:
        # Nova requires stateless firmware for SNP; the plan refused false.
        wanted[hardware.IMAGE_FIRMWARE_STATELESS] = 'true'
    return {k: v for k, v in wanted.items() if image_props.get(k) is None}
