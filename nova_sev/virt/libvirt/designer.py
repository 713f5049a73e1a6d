"""Writing a ``GuestPlan`` into a libvirt domain, and reading a domain
(spec: "Proposed change", third bullet; design.md §3).

``write_guest_plan`` turns the element tree of an ordinary domain (the one
Nova's ``LibvirtConfigGuest`` formats, or a parsed ``virsh dumpxml``) into
the SEV one: ``<launchSecurity>``, q35, the OVMF loader with its NVRAM
template, ``<driver iommu='on'/>`` on every virtio device, pinned memory,
virtio-scsi and SATA instead of virtio-blk and IDE. ``apply_guest_plan``
does the same on XML text, ``set_device_iommu`` on one hot-plugged device.

The designer only writes what the plan decided: it refuses nothing (the
plan has refused what cannot be, ``guest_plan``); its only errors are
InvalidLibvirtXML for text that is not a domain. ``domain_facts`` reads
what the plan needs from a base domain (``nova-sev guest-xml``).
"""

import math

from lxml import etree

from nova_sev import exception
from nova_sev.virt.libvirt import config as vconfig
from nova_sev.virt.libvirt import guest_plan as gp

_KIB_PER_UNIT = {
    'b': 1 / 1024, 'bytes': 1 / 1024,
    'kb': 1000 / 1024, 'k': 1, 'kib': 1,
    'mb': 1000 ** 2 / 1024, 'm': 1024, 'mib': 1024,
    'gb': 1000 ** 3 / 1024, 'g': 1024 ** 2, 'gib': 1024 ** 2,
    'tb': 1000 ** 4 / 1024, 't': 1024 ** 3, 'tib': 1024 ** 3,
}
# Video model attributes that size a device's memory, in KiB.
_VIDEO_SIZE_ATTRS = ('ram', 'vram', 'vram64', 'vgamem')
# virtio-blk driver attributes that a SCSI disk does not accept.
_VIRTIO_BLK_ONLY = ('queues', 'queue_size', 'event_idx', 'ioeventfd',
                    'iommu', 'ats', 'packed', 'page_per_vq')


DomainFacts = gp.DomainFacts


def parse_domain(domain_xml: str) -> etree._Element:
    """The ``<domain>`` element of ``domain_xml``; InvalidLibvirtXML."""
    root = vconfig.parse_xml(domain_xml, 'domain')
    if root.tag != 'domain':
        raise exception.InvalidLibvirtXML(
            what='domain', reason='root element is <%s>, expected <domain>'
            % root.tag)
    return root


def _to_kib(value: str | None, unit: str | None, what: str) -> float:
    factor = _KIB_PER_UNIT.get((unit or 'KiB').lower())
    try:
        number = int((value or '').strip())
    except ValueError:
        number = -1
    if factor is None or number < 0:
        raise exception.InvalidLibvirtXML(
            what='domain', reason='%s is %r %s, not a size' % (
                what, value, unit))
    return number * factor


def _host_devices(devices: etree._Element | None) -> tuple[str, ...]:
    found = []
    for dev in devices.findall('hostdev') if devices is not None else ():
        kind = dev.get('type') or 'unknown'
        addr = dev.find('source/address')
        if kind == 'pci':
            name = 'PCI host device'
            if addr is not None:
                name += ' %s:%s:%s.%s' % tuple(
                    addr.get(k) or '?'
                    for k in ('domain', 'bus', 'slot', 'function'))
        elif kind == 'mdev':
            name = 'mediated device %s' % (
                addr.get('uuid') if addr is not None else '')
        else:
            name = '%s host device' % kind
        found.append(name.strip())
    for dev in devices.findall('interface') if devices is not None else ():
        if dev.get('type') == 'hostdev':
            found.append('SR-IOV interface (type hostdev)')
    return tuple(found)


def domain_facts(domain_xml: str) -> DomainFacts:
    """Read RAM, video memory, huge pages, machine type, domain type,
    architecture, host devices and IDE disks from ``domain_xml``;
    InvalidLibvirtXML when it is not a domain.
    """
    return domain_root_facts(parse_domain(domain_xml))


def _ide_disks(devices: etree._Element | None
               ) -> tuple[tuple[str, str], ...]:
    return tuple(
        (disk.get('device') or 'disk', disk.find('target').get('dev') or '')
        for disk in (devices.findall('disk') if devices is not None else ())
        if _disk_bus(disk.find('target')) == gp.BUS_IDE)


def domain_root_facts(root: etree._Element) -> DomainFacts:
    """``domain_facts`` of a parsed domain."""
    mem = root.find('memory')
    if mem is None:
        raise exception.InvalidLibvirtXML(what='domain',
                                          reason='no <memory> element')
    ram_kib = _to_kib(mem.text, mem.get('unit'), '<memory>')
    video_kib = 0.0
    for model in root.findall('devices/video/model'):
        for attr in _VIDEO_SIZE_ATTRS:
            if model.get(attr) is not None:
                # An upper bound (QEMU nests some of these regions):
                # counting too much only raises the hard limit.
                video_kib += _to_kib(model.get(attr), 'KiB',
                                     'video %s' % attr)
    os_type = root.find('os/type')
    devices = root.find('devices')
    return DomainFacts(
        ram_mb=math.ceil(ram_kib / 1024),
        video_mb=math.ceil(video_kib / 1024),
        huge_pages=root.find('memoryBacking/hugepages') is not None,
        machine_type=os_type.get('machine') if os_type is not None else None,
        host_devices=_host_devices(devices),
        virt_type=root.get('type'),
        arch=os_type.get('arch') if os_type is not None else None,
        ide_disks=_ide_disks(devices))


# libvirt's bus for a disk target without one, from the name's prefix.
_BUS_BY_PREFIX = (('vd', 'virtio'), ('hd', 'ide'), ('sd', 'scsi'),
                  ('xvd', 'xen'), ('ubd', 'uml'), ('fd', 'fdc'))


def _disk_bus(target: etree._Element | None) -> str | None:
    """A disk target's bus, as libvirt reads it when ``bus`` is absent."""
    if target is None:
        return None
    bus = target.get('bus')
    if bus:
        return bus
    dev = target.get('dev') or ''
    for prefix, implied in _BUS_BY_PREFIX:
        if dev.startswith(prefix):
            return implied
    return None


def _is_virtio(dev: etree._Element) -> bool:
    """Whether ``dev`` is a virtio device (one that takes ``iommu``)."""
    tag = dev.tag

    def model(path='model', attr='type'):
        node = dev.find(path) if path else dev
        return (node.get(attr) or '') if node is not None else ''

    if tag == 'disk':
        return _disk_bus(dev.find('target')) == 'virtio'
    if tag == 'controller':
        kind = dev.get('type')
        return kind == 'virtio-serial' or (
            kind == 'scsi' and (dev.get('model') or '').startswith('virtio'))
    if tag == 'interface':
        return model().startswith('virtio')
    if tag == 'video':
        return model() == 'virtio'
    if tag in ('memballoon', 'rng'):
        return model(None, 'model').startswith('virtio')
    if tag == 'input':
        return dev.get('bus') == 'virtio'
    # QEMU's filesystems (9p, virtiofs) and vsock are virtio devices.
    return tag in ('filesystem', 'vsock')


def _set_iommu(dev: etree._Element) -> None:
    driver = dev.find('driver')
    if driver is None:
        driver = etree.SubElement(dev, 'driver')
    driver.set('iommu', 'on')


def set_device_iommu(dev: etree._Element) -> etree._Element:
    """One device (a hot-plugged volume or interface) of an SEV guest:
    ``<driver iommu='on'/>`` when it is virtio, unchanged otherwise.
    """
    if _is_virtio(dev):
        _set_iommu(dev)
    return dev


def enable_iommu(device_xml: str) -> str:
    """``set_device_iommu`` on device XML; InvalidLibvirtXML when it
    cannot be read.
    """
    dev = vconfig.parse_xml(device_xml, 'device')
    return etree.tostring(set_device_iommu(dev), encoding='unicode')


def device_facts(device_xml: str) -> tuple[str, str | None, str | None,
                                           tuple[str, ...]]:
    """What the plan's rules need of a device to attach: its tag, disk
    bus and target, and the host devices it would pass through.
    """
    dev = vconfig.parse_xml(device_xml, 'device')
    target = dev.find('target')
    wrapper = etree.Element('devices')
    wrapper.append(dev)
    return (dev.tag, _disk_bus(target) if dev.tag == 'disk' else None,
            target.get('dev') if target is not None else None,
            _host_devices(wrapper))


def _set_machine(root: etree._Element, plan: gp.GuestPlan) -> None:
    os_node = root.find('os')
    if os_node is None:
        os_node = etree.SubElement(root, 'os')
    os_type = os_node.find('type')
    if os_type is None:
        os_type = etree.Element('type')
        os_type.text = 'hvm'
        os_node.insert(0, os_type)
    # A versioned q35 the domain names already is kept; the alias is
    # replaced by what the plan chose.
    machine = os_type.get('machine')
    if machine is None or machine == gp.MACHINE_Q35:
        os_type.set('machine', plan.machine_type)
    if os_type.get('arch') is None:
        os_type.set('arch', gp.ARCH)


def _set_firmware(root: etree._Element, plan: gp.GuestPlan) -> None:
    os_node = root.find('os')
    # An explicit loader replaces libvirt's firmware auto-selection.
    os_node.attrib.pop('firmware', None)
    old_nvram = os_node.find('nvram')
    nvram_path = (old_nvram.text or '').strip() if old_nvram is not None \
        else ''
    for tag in ('loader', 'nvram', 'firmware'):
        for node in os_node.findall(tag):
            os_node.remove(node)
    loader = etree.Element('loader', readonly='yes', type='pflash')
    loader.text = plan.loader_path
    nvram = etree.Element('nvram')
    if plan.nvram_template_path:
        nvram.set('template', plan.nvram_template_path)
    if nvram_path:
        nvram.text = nvram_path
    index = list(os_node).index(os_node.find('type')) + 1
    os_node.insert(index, loader)
    os_node.insert(index + 1, nvram)


def _set_acpi_without_vmcoreinfo(root: etree._Element) -> None:
    features = root.find('features')
    if features is None:
        features = etree.Element('features')
        root.find('os').addnext(features)
    # libvirt: "UEFI requires ACPI on this architecture".
    if features.find('acpi') is None:
        features.insert(0, etree.Element('acpi'))
    # The vmcoreinfo device needs DMA between guest and host, which
    # encrypted guest memory forbids; Nova leaves it out for the same reason.
    for node in features.findall('vmcoreinfo'):
        features.remove(node)


def _set_memory(root: etree._Element, plan: gp.GuestPlan) -> None:
    anchor = root.find('currentMemory')
    if anchor is None:
        anchor = root.find('memory')
    if plan.hard_limit_kib is not None:
        memtune = root.find('memtune')
        if memtune is None:
            memtune = etree.Element('memtune')
            anchor.addnext(memtune)
        # Pinned memory cannot swap, and a swap limit below the hard limit
        # is refused by libvirt.
        for tag in ('hard_limit', 'swap_hard_limit'):
            for node in memtune.findall(tag):
                memtune.remove(node)
        limit = etree.Element('hard_limit', unit='KiB')
        limit.text = str(plan.hard_limit_kib)
        memtune.insert(0, limit)
    backing = root.find('memoryBacking')
    if backing is None:
        backing = etree.Element('memoryBacking')
        (root.find('memtune') if root.find('memtune') is not None
         else anchor).addnext(backing)
    if backing.find('locked') is None:
        etree.SubElement(backing, 'locked')


def _disk_names(n: int) -> str:
    letters = ''
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord('a') + rest) + letters
    return letters


def _move_disk(disk: etree._Element, bus: str, used: set[str]) -> None:
    target = disk.find('target')
    target.set('bus', bus)
    index = 0
    while 'sd' + _disk_names(index) in used:
        index += 1
    name = 'sd' + _disk_names(index)
    used.discard(target.get('dev'))
    used.add(name)
    target.set('dev', name)
    # The old bus's address and driver options mean nothing on the new one.
    for address in disk.findall('address'):
        disk.remove(address)
    driver = disk.find('driver')
    if driver is not None:
        for attr in _VIRTIO_BLK_ONLY:
            driver.attrib.pop(attr, None)


def _controller(devices: etree._Element, kind: str, index: str
                ) -> etree._Element | None:
    for ctrl in devices.findall('controller'):
        if ctrl.get('type') == kind and (ctrl.get('index') or '0') == index:
            return ctrl
    return None


def _add_controller(devices: etree._Element, **attrs) -> etree._Element:
    ctrl = etree.Element('controller', **attrs)
    existing = devices.findall('controller')
    if existing:
        existing[-1].addnext(ctrl)
    else:
        devices.append(ctrl)
    return ctrl


def _set_buses(devices: etree._Element, plan: gp.GuestPlan) -> None:
    disks = devices.findall('disk')
    used = {d.find('target').get('dev') for d in disks
            if d.find('target') is not None}
    for disk in disks:
        target = disk.find('target')
        if target is None:
            continue
        bus = _disk_bus(target)
        device = disk.get('device') or 'disk'
        if (device == 'cdrom' and plan.cdrom_bus
                and bus not in (gp.CDROM_BUS_SATA, gp.DISK_BUS_SCSI)):
            _move_disk(disk, plan.cdrom_bus, used)
        elif (device == 'disk' and plan.disk_bus
              and bus in (gp.BUS_VIRTIO, gp.BUS_IDE)):
            _move_disk(disk, plan.disk_bus, used)
    for ctrl in devices.findall('controller'):
        if ctrl.get('type') == gp.BUS_IDE:
            devices.remove(ctrl)
    scsi_indexes = set()
    for disk in devices.findall('disk'):
        if _disk_bus(disk.find('target')) == gp.DISK_BUS_SCSI:
            address = disk.find('address')
            scsi_indexes.add(address.get('controller') or '0'
                             if address is not None else '0')
    for index in sorted(scsi_indexes):
        ctrl = _controller(devices, 'scsi', index)
        if ctrl is None:
            _add_controller(devices, type='scsi', index=index,
                            model='virtio-scsi')
        elif ctrl.get('model') is None:
            # libvirt would pick LSI where QEMU has it: virtio-scsi is what
            # SEV guests boot from (spec: "Limitations").
            ctrl.set('model', 'virtio-scsi')


def _set_virtio_serial(devices: etree._Element) -> None:
    """A virtio console or channel needs a virtio-serial controller; left
    to libvirt it would have no ``iommu``.
    """
    needs = any(t.get('type') == 'virtio'
                for t in devices.findall('channel/target') +
                devices.findall('console/target'))
    if needs and not any(c.get('type') == 'virtio-serial'
                         for c in devices.findall('controller')):
        _add_controller(devices, type='virtio-serial', index='0')


def _set_launch_security(root: etree._Element, plan: gp.GuestPlan) -> None:
    for node in root.findall('launchSecurity'):
        root.remove(node)
    sev = vconfig.LibvirtConfigGuestFeatureSEV()
    sev.cbitpos = plan.cbitpos
    sev.reduced_phys_bits = plan.reduced_phys_bits
    sev.policy = plan.policy
    root.append(sev.format_dom())


def apply_guest_plan(domain_xml: str, plan: gp.GuestPlan) -> str:
    """The SEV form of ``domain_xml`` as ``plan`` decided it.

    InvalidLibvirtXML when it is not a domain; nothing else is refused.
    """
    root = parse_domain(domain_xml)
    write_guest_plan(root, plan)
    etree.indent(root, space='  ')
    return etree.tostring(root, encoding='unicode') + '\n'


def write_guest_plan(root: etree._Element, plan: gp.GuestPlan
                     ) -> etree._Element:
    """Write ``plan`` into the domain element ``root``, in place.

    InvalidLibvirtXML when the domain has no ``<memory>``.
    """
    if root.find('memory') is None:
        raise exception.InvalidLibvirtXML(what='domain',
                                          reason='no <memory> element')
    devices = root.find('devices')
    if devices is None:
        devices = etree.SubElement(root, 'devices')
    _set_machine(root, plan)
    _set_firmware(root, plan)
    _set_acpi_without_vmcoreinfo(root)
    _set_memory(root, plan)
    _set_buses(devices, plan)
    _set_virtio_serial(devices)
    for dev in devices:
        if isinstance(dev.tag, str) and _is_virtio(dev):
            _set_iommu(dev)
    _set_launch_security(root, plan)
    return root
