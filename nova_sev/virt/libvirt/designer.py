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

The writer runs for every guest the driver builds, so it reads the tree in
few passes (one over ``<domain>``, one over ``<devices>``) and copies what
depends on the plan's values only, formatted once (``tools/bench_guest.py``
measures it against Nova's own generation).
"""

import functools

from lxml import etree

from nova_sev import exception
from nova_sev.virt.libvirt import config as vconfig
from nova_sev.virt.libvirt import guest_plan as gp
from nova_sev.virt import memory

# libvirt's memory units (formatdomain "Memory Allocation"), in bytes:
# integers, so that no size is computed in floating point.
_BYTES_PER_UNIT = {
    'b': 1, 'bytes': 1,
    'kb': 1000, 'k': 1024, 'kib': 1024,
    'mb': 1000 ** 2, 'm': 1024 ** 2, 'mib': 1024 ** 2,
    'gb': 1000 ** 3, 'g': 1024 ** 3, 'gib': 1024 ** 3,
    'tb': 1000 ** 4, 't': 1024 ** 4, 'tib': 1024 ** 4,
    'pb': 1000 ** 5, 'p': 1024 ** 5, 'pib': 1024 ** 5,
    'eb': 1000 ** 6, 'e': 1024 ** 6, 'eib': 1024 ** 6,
}
# libvirt refuses sizes above LLONG_MAX bytes (virMemoryMaxValue); no
# x86-64 host has more than MAX_MEMORY_MB, which is less.
_MAX_MEMORY_BYTES = memory.MAX_MEMORY_MB * 1024 * 1024
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


def _to_kib(value: str | None, unit: str | None, element: str,
            minimum_bytes: int = 0) -> int:
    """A libvirt size in KiB, rounded up as libvirt does; InvalidDomainMemory
    with the value and unit when it is not a whole number of a known unit
    or lies outside ``minimum_bytes`` and what a host can have.
    """
    unit = unit or 'KiB'
    factor = _BYTES_PER_UNIT.get(unit.lower())
    text = (value or '').strip()

    def refuse(reason):
        return exception.InvalidDomainMemory(
            what='domain', element=element,
            value=repr(exception.excerpt(text)),
            unit=exception.excerpt(unit), reason=reason)

    if factor is None:
        raise refuse('not a unit libvirt knows (b, KiB, MiB, GiB, TiB, KB, '
                     'MB, GB, TB...)')
    if not (text.isascii() and text.isdigit()):
        raise refuse('not a whole number')
    digits = text.lstrip('0')
    # Beyond 30 digits no unit brings it under the bound (and Python
    # converts at most 4300 digits).
    size = int(digits or '0') * factor if len(digits) <= 30 else None
    if size is not None and size < minimum_bytes:
        raise refuse('libvirt refuses a domain without memory')
    if size is None or size > _MAX_MEMORY_BYTES:
        raise refuse('more than %s' % memory.MAX_MEMORY_TEXT)
    return -(-size // 1024)


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


def snp_domain_facts(root: etree._Element) -> tuple[str | None, bool]:
    """The domain's UUID (an SEV-SNP guest's HOST_DATA binds it) and
    whether it boots a kernel directly (SEV-SNP kernel hashes).
    """
    return ((root.findtext('uuid') or '').strip() or None,
            bool((root.findtext('os/kernel') or '').strip()))


def domain_root_facts(root: etree._Element) -> DomainFacts:
    """``domain_facts`` of a parsed domain."""
    mem = root.find('memory')
    if mem is None:
        raise exception.InvalidLibvirtXML(what='domain',
                                          reason='no <memory> element')
    # libvirt refuses a domain with no memory ("Memory size must be
    # specified"): at least one byte.
    ram_kib = _to_kib(mem.text, mem.get('unit'), '<memory>', 1)
    video_kib = 0
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
        ram_mb=-(-ram_kib // 1024),
        video_mb=-(-video_kib // 1024),
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


def _first(parent: etree._Element, tag: str) -> etree._Element | None:
    """``parent.find(tag)`` for a child tag, in half its time."""
    return next(parent.iterchildren(tag), None)


def _model_type(dev: etree._Element) -> str:
    model = _first(dev, 'model')
    return (model.get('type') or '') if model is not None else ''


def _virtio_controller(dev: etree._Element) -> bool:
    kind = dev.get('type')
    return kind == 'virtio-serial' or (
        kind == 'scsi' and (dev.get('model') or '').startswith('virtio'))


def _always(dev: etree._Element) -> bool:
    return True


# Whether a device of each tag is virtio (one that takes ``iommu``); a tag
# not listed is not. QEMU's filesystems (9p, virtiofs) and vsock are virtio
# devices.
_VIRTIO_BY_TAG = {
    'disk': lambda dev: _disk_bus(_first(dev, 'target')) == gp.BUS_VIRTIO,
    'controller': _virtio_controller,
    'interface': lambda dev: _model_type(dev).startswith('virtio'),
    'video': lambda dev: _model_type(dev) == 'virtio',
    'memballoon': lambda dev: (dev.get('model') or '').startswith('virtio'),
    'rng': lambda dev: (dev.get('model') or '').startswith('virtio'),
    'input': lambda dev: dev.get('bus') == gp.BUS_VIRTIO,
    'filesystem': _always,
    'vsock': _always,
}


def _is_virtio(dev: etree._Element) -> bool:
    """Whether ``dev`` is a virtio device (one that takes ``iommu``)."""
    is_virtio = _VIRTIO_BY_TAG.get(dev.tag)
    return is_virtio is not None and is_virtio(dev)


def _copy(element: etree._Element) -> etree._Element:
    """A new copy of ``element`` and its subtree: lxml's own copy, which
    ``copy.deepcopy`` calls after its own bookkeeping (three times slower).
    """
    return element.__copy__()


_IOMMU_DRIVER = etree.Element('driver', iommu='on')


def _set_iommu(dev: etree._Element, has_driver: bool = True) -> None:
    """``<driver iommu='on'/>`` on ``dev``; with ``has_driver`` False, the
    caller knows it has no ``<driver>`` to search for.
    """
    driver = _first(dev, 'driver') if has_driver else None
    if driver is None:
        dev.append(_copy(_IOMMU_DRIVER))
    else:
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


# The children of <domain> that the plan writes into.
_DOMAIN_PARTS = ('memory', 'currentMemory', 'memtune', 'memoryBacking', 'os',
                 'features', 'devices', 'launchSecurity')


def _domain_parts(root: etree._Element) -> dict[str, etree._Element]:
    """The first child of ``root`` of each of ``_DOMAIN_PARTS``, as
    ``root.find`` would give it, in one pass.
    """
    parts: dict[str, etree._Element] = {}
    for child in root.iterchildren(*_DOMAIN_PARTS):
        parts.setdefault(child.tag, child)
    return parts


def _set_machine(parts: dict[str, etree._Element], root: etree._Element,
                 plan: gp.GuestPlan) -> etree._Element:
    """Machine type and architecture; the ``<os><type>`` element."""
    os_node = parts.get('os')
    if os_node is None:
        os_node = parts['os'] = etree.SubElement(root, 'os')
    os_type = _first(os_node, 'type')
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
    return os_type


def _set_firmware(os_node: etree._Element, os_type: etree._Element,
                  plan: gp.GuestPlan) -> None:
    # An explicit loader replaces libvirt's firmware auto-selection.
    os_node.attrib.pop('firmware', None)
    old = list(os_node.iterchildren('loader', 'nvram', 'firmware'))
    old_nvram = next((node for node in old if node.tag == 'nvram'), None)
    nvram_path = (old_nvram.text or '').strip() if old_nvram is not None \
        else ''
    for node in old:
        os_node.remove(node)
    index = os_node.index(os_type) + 1
    for node in _firmware_elements(plan.loader_type, plan.loader_path,
                                   plan.nvram_template_path):
        node = _copy(node)
        if node.tag == 'nvram' and nvram_path:
            node.text = nvram_path
        os_node.insert(index, node)
        index += 1


# What the plan writes that depends on the plan's values only (the same for
# every guest of a host, or of a flavor) is formatted once and copied into
# each domain: copying an element costs a fraction of building it.

@functools.lru_cache(maxsize=16)
def _firmware_elements(loader_type: str, loader_path: str,
                       nvram_template_path: str | None
                       ) -> tuple[etree._Element, ...]:
    """The ``<loader>`` (and ``<nvram>``) of the plan's firmware, without
    the guest's own NVRAM path.
    """
    if loader_type == gp.LOADER_ROM:
        # Stateless firmware (SEV-SNP): a ROM image and no NVRAM.
        loader = etree.Element('loader', type=gp.LOADER_ROM)
        loader.text = loader_path
        return (loader,)
    loader = etree.Element('loader', readonly='yes', type='pflash')
    loader.text = loader_path
    nvram = etree.Element('nvram')
    if nvram_template_path:
        nvram.set('template', nvram_template_path)
    return (loader, nvram)


def _set_acpi_without_vmcoreinfo(parts: dict[str, etree._Element]) -> None:
    features = parts.get('features')
    if features is None:
        features = parts['features'] = etree.Element('features')
        parts['os'].addnext(features)
    # libvirt: "UEFI requires ACPI on this architecture".
    if _first(features, 'acpi') is None:
        features.insert(0, etree.Element('acpi'))
    # The vmcoreinfo device needs DMA between guest and host, which
    # encrypted guest memory forbids; Nova leaves it out for the same reason.
    for node in list(features.iterchildren('vmcoreinfo')):
        features.remove(node)


def _set_memory(parts: dict[str, etree._Element], root: etree._Element,
                plan: gp.GuestPlan) -> None:
    anchor = parts.get('currentMemory')
    if anchor is None:
        anchor = parts['memory']
    if plan.hard_limit_kib is not None:
        memtune = parts.get('memtune')
        if memtune is None:
            memtune = parts['memtune'] = etree.Element('memtune')
            anchor.addnext(memtune)
        # Pinned memory cannot swap, and a swap limit below the hard limit
        # is refused by libvirt.
        for node in list(memtune.iterchildren('hard_limit',
                                              'swap_hard_limit')):
            memtune.remove(node)
        memtune.insert(0, _copy(_hard_limit_element(plan.hard_limit_kib)))
    if not plan.lock_memory:
        _unlock_memory(root)
        return
    backing = parts.get('memoryBacking')
    if backing is None:
        parts.get('memtune', anchor).addnext(_copy(_LOCKED_BACKING))
    elif _first(backing, 'locked') is None:
        etree.SubElement(backing, 'locked')


_LOCKED_BACKING = etree.Element('memoryBacking')
etree.SubElement(_LOCKED_BACKING, 'locked')


@functools.lru_cache(maxsize=16)
def _hard_limit_element(hard_limit_kib: int) -> etree._Element:
    """``<hard_limit>`` of a plan's value (one per flavor size)."""
    limit = etree.Element('hard_limit', unit='KiB')
    limit.text = str(hard_limit_kib)
    return limit


def _unlock_memory(root: etree._Element) -> None:
    """No ``<locked/>``: SEV-SNP memory lives in guest_memfd."""
    for backing in root.findall('memoryBacking'):
        for node in backing.findall('locked'):
            backing.remove(node)
        if not len(backing) and not backing.attrib:
            root.remove(backing)


def _disk_names(n: int) -> str:
    letters = ''
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord('a') + rest) + letters
    return letters


def _move_disk(disk: etree._Element, target: etree._Element, bus: str,
               used: set[str]) -> None:
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


def _add_controller(devices: etree._Element,
                    controllers: list[etree._Element],
                    **attrs) -> etree._Element:
    """A new controller after the last one (``controllers``, in document
    order, gets it too).
    """
    ctrl = etree.Element('controller', **attrs)
    if controllers:
        controllers[-1].addnext(ctrl)
    else:
        devices.append(ctrl)
    controllers.append(ctrl)
    return ctrl


def _set_buses(devices: etree._Element, disks: list[etree._Element],
               controllers: list[etree._Element], plan: gp.GuestPlan,
               with_driver: set[etree._Element]) -> None:
    """Disks and CD-ROMs onto the plan's buses (``iommu`` on those left on
    virtio), no IDE controller, a virtio-scsi controller for each SCSI
    controller index in use.
    """
    targets = [_first(disk, 'target') for disk in disks]
    used = {t.get('dev') for t in targets if t is not None}
    scsi_indexes = set()
    for disk, target in zip(disks, targets):
        if target is None:
            continue
        bus = _disk_bus(target)
        device = disk.get('device') or 'disk'
        if (device == 'cdrom' and plan.cdrom_bus
                and bus not in (gp.CDROM_BUS_SATA, gp.DISK_BUS_SCSI)):
            bus = plan.cdrom_bus
            _move_disk(disk, target, bus, used)
        elif (device == 'disk' and plan.disk_bus
              and bus in (gp.BUS_VIRTIO, gp.BUS_IDE)):
            bus = plan.disk_bus
            _move_disk(disk, target, bus, used)
        if bus == gp.DISK_BUS_SCSI:
            address = _first(disk, 'address')
            scsi_indexes.add(address.get('controller') or '0'
                             if address is not None else '0')
        elif bus == gp.BUS_VIRTIO:
            _set_iommu(disk, disk in with_driver)
    # The first SCSI controller of each index, as libvirt takes it.
    scsi: dict[str, etree._Element] = {}
    kept = []
    for ctrl in controllers:
        kind = ctrl.get('type')
        if kind == gp.BUS_IDE:
            devices.remove(ctrl)
            continue
        kept.append(ctrl)
        if kind == 'scsi':
            scsi.setdefault(ctrl.get('index') or '0', ctrl)
    controllers[:] = kept
    for index in sorted(scsi_indexes):
        ctrl = scsi.get(index)
        if ctrl is None:
            _add_controller(devices, controllers, type='scsi', index=index,
                            model='virtio-scsi')
        elif ctrl.get('model') is None:
            # libvirt would pick LSI where QEMU has it: virtio-scsi is what
            # SEV guests boot from (spec: "Limitations").
            ctrl.set('model', 'virtio-scsi')


def _set_devices(devices: etree._Element, plan: gp.GuestPlan) -> None:
    """The buses, controllers and ``iommu`` of the devices, in one pass
    over them: every device other than a disk or controller is virtio or
    not whatever the buses become, and gets its ``iommu`` on the way.
    """
    disks = []
    controllers = []
    virtio_serial_needed = False
    # lxml gives one Python object per element while it is referenced, so
    # the set of parents of all <driver> elements answers for each device.
    with_driver = {driver.getparent() for driver in devices.iter('driver')}
    for dev in devices:
        tag = dev.tag
        if tag == 'disk':
            disks.append(dev)
        elif tag == 'controller':
            controllers.append(dev)
        elif tag == 'channel' or tag == 'console':
            # A virtio console or channel needs a virtio-serial
            # controller; left to libvirt it would have no ``iommu``.
            virtio_serial_needed = virtio_serial_needed or any(
                t.get('type') == 'virtio' for t in dev.iterchildren('target'))
        else:
            is_virtio = _VIRTIO_BY_TAG.get(tag)
            if is_virtio is not None and is_virtio(dev):
                _set_iommu(dev, dev in with_driver)
    _set_buses(devices, disks, controllers, plan, with_driver)
    if virtio_serial_needed and not any(
            c.get('type') == 'virtio-serial' for c in controllers):
        _add_controller(devices, controllers, type='virtio-serial',
                        index='0')
    for dev in controllers:
        if _virtio_controller(dev):
            _set_iommu(dev, dev in with_driver)


def _launch_security(plan: gp.GuestPlan) -> etree._Element:
    """The plan's ``<launchSecurity>``, a new element."""
    return _copy(_launch_security_element(
        plan.snp, plan.cbitpos, plan.reduced_phys_bits, plan.policy))


@functools.lru_cache(maxsize=16)
def _launch_security_element(snp: gp.SnpLaunch | None, cbitpos: int,
                             reduced_phys_bits: int, policy: int
                             ) -> etree._Element:
    if snp is not None:
        sev = vconfig.LibvirtConfigGuestFeatureSEVSNP()
        sev.author_key = snp.author_key
        sev.vcek = snp.vcek
        sev.kernel_hashes = snp.kernel_hashes
        sev.host_data = snp.host_data
    else:
        sev = vconfig.LibvirtConfigGuestFeatureSEV()
    sev.cbitpos = cbitpos
    sev.reduced_phys_bits = reduced_phys_bits
    sev.policy = policy
    return sev.format_dom()


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
    parts = _domain_parts(root)
    if 'memory' not in parts:
        raise exception.InvalidLibvirtXML(what='domain',
                                          reason='no <memory> element')
    devices = parts.get('devices')
    if devices is None:
        devices = parts['devices'] = etree.SubElement(root, 'devices')
    os_type = _set_machine(parts, root, plan)
    _set_firmware(parts['os'], os_type, plan)
    _set_acpi_without_vmcoreinfo(parts)
    _set_memory(parts, root, plan)
    _set_devices(devices, plan)
    if 'launchSecurity' in parts:
        for node in root.findall('launchSecurity'):
            root.remove(node)
    root.append(_launch_security(plan))
    return root


def write_launch_session(root: etree._Element, dh_cert_b64: str,
                         session_b64: str) -> etree._Element:
    """Give the domain's ``<launchSecurity type='sev'>`` the guest owner's
    GODH certificate and launch session (base64, as ``nova-sev session``
    writes them), in place: LAUNCH_START opens the owner's session with
    them, so that only the owner can check the measurement and send a
    secret. InvalidLibvirtXML when the domain is not an SEV domain.
    """
    sec = root.find('launchSecurity')
    if sec is None or sec.get('type') != 'sev':
        raise exception.InvalidLibvirtXML(
            what='domain', reason="no <launchSecurity type='sev'> for the "
            'launch session')
    for tag, value in (('dhCert', dh_cert_b64), ('session', session_b64)):
        for old in sec.findall(tag):
            sec.remove(old)
        etree.SubElement(sec, tag).text = value
    return root
