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
from typing import Any

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

DISK_BUS_SCSI = 'scsi'
CDROM_BUS_SATA = 'sata'
BUS_IDE = 'ide'
BUS_VIRTIO = 'virtio'
VIRT_TYPE_KVM = 'kvm'

# The firmware features each mode needs (QEMU's docs/interop/firmware.json).
_FIRMWARE_FEATURES = {
    SevMode.SEV: (fw.FEATURE_AMD_SEV,),
    SevMode.SEV_ES: (fw.FEATURE_AMD_SEV, fw.FEATURE_AMD_SEV_ES),
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


def options_from_conf(conf: Any) -> SevGuestOptions:
    """Read the ``[sev]`` options of ``conf`` (oslo.config) once."""
    sev = conf.sev
    return SevGuestOptions(
        firmware_overhead_mb=sev.firmware_overhead_mb,
        qemu_overhead_mb=sev.qemu_overhead_mb,
        allow_virtio_blk_boot_disk=sev.allow_virtio_blk_boot_disk,
        policy=sev.policy,
        allow_insecure_policy=sev.allow_insecure_policy,
        firmware_descriptor_dirs=tuple(sev.firmware_descriptor_dirs or ()))


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
                domain: DomainFacts | None = None) -> GuestFacts:
    """Gather the guest facts from a flavor's extra specs and an image's
    properties (with ``[libvirt]hw_machine_type`` as
    ``conf_machine_types`` and ``[libvirt]virt_type`` as ``virt_type``).

    With a base ``domain`` (``guest-xml``), its RAM, video memory, huge
    pages, machine type, domain type, architecture, host devices and IDE
    disks count as well: the guest is that domain.
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
        requested_by=hardware.sev_requested_by(extra_specs, image_props))


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


def guest_policy(mode: SevMode, options: SevGuestOptions) -> int:
    """The SEV policy of a ``mode`` guest: 0x0033 for SEV, 0x0037 for
    SEV-ES, or ``[sev]policy`` with its ES bit set by the mode.

    An override that drops NODBG or NOKS is refused unless
    ``[sev]allow_insecure_policy`` is set.
    """
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
            device=', '.join(devices), source=source)


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
              options: SevGuestOptions) -> fw.FirmwareDescriptor:
    required = _FIRMWARE_FEATURES[mode]
    machine = (_Q35_FOR_MATCHING if machine_type == MACHINE_Q35
               else machine_type)
    selected = fw.select_firmware(list(descriptors), ARCH, machine, required)
    if selected is None:
        raise exception.SevFirmwareNotFound(
            arch=ARCH, machine=machine_type,
            features=' and '.join(required),
            dirs=', '.join(options.firmware_descriptor_dirs) or
            'this host')
    return selected


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
    """
    if mode is SevMode.NONE:
        return None
    _check_host(mode, caps, facts.requested_by)
    policy = guest_policy(mode, options)
    _check_virt(facts)
    machine_type = _machine_type(facts)
    _check_devices(facts)
    disk_bus = _disk_bus(facts, options)
    cdrom_bus = _cdrom_bus(facts)
    _check_ide_disks(facts, disk_bus, cdrom_bus)
    if firmware is None:
        firmware = caps.firmware or ()
    descriptor = _firmware(mode, machine_type, firmware, options)
    pinned_mb = memory.pinned_memory_mb(
        facts.ram_mb, facts.video_mb, options.firmware_overhead_mb)
    hard_limit = None
    if not facts.huge_pages:
        hard_limit = memory.hard_limit_kib(
            facts.ram_mb, facts.video_mb, options.firmware_overhead_mb,
            options.qemu_overhead_mb)
    return GuestPlan(
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


def plan_guest(
        extra_specs: collections.abc.Mapping[str, str],
        image_props: collections.abc.Mapping[str, Any],
        caps: host.SevHostCapabilities, options: SevGuestOptions, *,
        ram_mb: int = 0, conf_machine_types: list[str] | None = None,
        virt_type: str | None = None, host_devices: tuple[str, ...] = (),
        domain: DomainFacts | None = None,
        firmware: collections.abc.Sequence[fw.FirmwareDescriptor] | None = None
) -> GuestPlan | None:
    """The one way from a request and host facts to a ``GuestPlan``: the
    SEV mode of ``extra_specs`` and ``image_props``, the guest facts
    (``guest_facts``), the plan (``make_guest_plan``). None when SEV is
    not requested. Raises SevGuestRefused subclasses.
    """
    mode = hardware.get_sev_mode(extra_specs, image_props)
    if mode is SevMode.NONE:
        return None
    facts = guest_facts(extra_specs, image_props, ram_mb,
                        conf_machine_types=conf_machine_types,
                        host_devices=host_devices, virt_type=virt_type,
                        domain=domain)
    return make_guest_plan(mode, caps, facts, options, firmware)


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
    return {k: v for k, v in wanted.items() if image_props.get(k) is None}
