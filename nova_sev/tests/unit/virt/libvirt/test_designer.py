"""Applying an SEV guest plan to a libvirt domain."""

import dataclasses
import os

from lxml import etree
import testtools

from nova_sev import exception
from nova_sev.virt.hardware import SevMode
from nova_sev.virt.libvirt import designer
from nova_sev.virt.libvirt import guest_plan as gp

DATA = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'data')


def nova_domain() -> str:
    with open(os.path.join(DATA, 'nova-guest-q35.xml'), encoding='utf-8') as f:
        return f.read()


PLAN = gp.GuestPlan(
    mode=SevMode.SEV, policy=0x33, cbitpos=47, reduced_phys_bits=1,
    machine_type='q35', loader_path='/usr/share/OVMF/OVMF_CODE_4M.fd',
    nvram_template_path='/usr/share/OVMF/OVMF_VARS_4M.fd',
    firmware_descriptor_path='/usr/share/qemu/firmware/60-edk2-x86_64.json',
    pinned_memory_mb=4112, hard_limit_kib=4718592, disk_bus='scsi',
    cdrom_bus='sata')

# One of every virtio device libvirt knows, and non-virtio neighbours.
ALL_DEVICES = """<domain type='kvm'>
  <name>all</name>
  <memory unit='MiB'>1024</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' queues='2'/>
      <source file='/a.img'/><target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/b.img'/><target dev='sda' bus='sata'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/c.iso'/><target dev='hdc' bus='ide'/>
      <address type='drive' controller='0' bus='1' target='0' unit='0'/>
    </disk>
    <controller type='ide' index='0'/>
    <controller type='scsi' index='1' model='virtio-scsi'/>
    <controller type='scsi' index='2' model='lsilogic'/>
    <controller type='virtio-serial' index='0'/>
    <controller type='usb' index='0' model='qemu-xhci'/>
    <filesystem type='mount'>
      <source dir='/srv'/><target dir='srv'/>
    </filesystem>
    <interface type='ethernet'><model type='virtio'/></interface>
    <interface type='ethernet'><model type='e1000e'/></interface>
    <interface type='ethernet'><model type='virtio-non-transitional'/>
      <driver name='vhost' queues='4'/></interface>
    <input type='keyboard' bus='virtio'/>
    <input type='tablet' bus='usb'/>
    <video><model type='virtio'/></video>
    <video><model type='vga' vram='16384'/></video>
    <memballoon model='virtio'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <vsock model='virtio'><cid auto='yes'/></vsock>
    <channel type='unix'><target type='virtio' name='a.b'/></channel>
    <console type='pty'><target type='virtio'/></console>
  </devices>
</domain>"""

VIRTIO_XPATHS = (
    "devices/disk[target/@bus='virtio']",
    "devices/controller[@model='virtio-scsi']",
    "devices/controller[@type='virtio-serial']",
    "devices/filesystem",
    "devices/interface[starts-with(model/@type, 'virtio')]",
    "devices/input[@bus='virtio']",
    "devices/video[model/@type='virtio']",
    "devices/memballoon",
    "devices/rng",
    "devices/vsock",
)


def apply(xml, **changes):
    return etree.fromstring(designer.apply_guest_plan(
        xml, dataclasses.replace(PLAN, **changes)))


def iommu(dev):
    return dev.get('iommu') if dev.tag == 'driver' else (
        dev.find('driver').get('iommu')
        if dev.find('driver') is not None else None)


class TestApplyGuestPlan(testtools.TestCase):

    def test_launch_security(self):
        root = apply(nova_domain())
        lsec = root.findall('launchSecurity')
        self.assertEqual(1, len(lsec))
        self.assertEqual('sev', lsec[0].get('type'))
        self.assertEqual('47', lsec[0].findtext('cbitpos'))
        self.assertEqual('1', lsec[0].findtext('reducedPhysBits'))
        self.assertEqual('0x0033', lsec[0].findtext('policy'))

    def test_launch_security_replaced(self):
        once = designer.apply_guest_plan(nova_domain(), PLAN)
        twice = apply(once, policy=0x37)
        lsec = twice.findall('launchSecurity')
        self.assertEqual(1, len(lsec))
        self.assertEqual('0x0037', lsec[0].findtext('policy'))

    def test_idempotent(self):
        once = designer.apply_guest_plan(nova_domain(), PLAN)
        self.assertEqual(once, designer.apply_guest_plan(once, PLAN))

    def test_machine_type(self):
        root = apply(nova_domain())
        self.assertEqual('pc-q35-7.2', root.find('os/type').get('machine'))
        root = apply(ALL_DEVICES, machine_type='pc-q35-7.1')
        self.assertEqual('pc-q35-7.1', root.find('os/type').get('machine'))
        bare = ALL_DEVICES.replace(" machine='q35'", '')
        self.assertEqual('q35', apply(bare).find('os/type').get('machine'))

    def test_firmware(self):
        os_node = apply(nova_domain()).find('os')
        loader = os_node.find('loader')
        self.assertEqual(('yes', 'pflash', PLAN.loader_path),
                         (loader.get('readonly'), loader.get('type'),
                          loader.text))
        self.assertEqual(PLAN.nvram_template_path,
                         os_node.find('nvram').get('template'))
        self.assertIsNone(os_node.find('nvram').text)
        self.assertEqual(['type', 'loader', 'nvram', 'boot', 'smbios'],
                         [c.tag for c in os_node])

    def test_acpi_added_for_uefi(self):
        # libvirt: "UEFI requires ACPI on this architecture".
        root = apply(ALL_DEVICES)
        self.assertIsNotNone(root.find('features/acpi'))
        self.assertEqual(['type', 'loader', 'nvram'],
                         [c.tag for c in root.find('os')])
        self.assertEqual('features', root.find('os').getnext().tag)
        root = apply(nova_domain())
        self.assertEqual(['acpi', 'apic'],
                         [c.tag for c in root.find('features')])

    def test_vmcoreinfo_removed(self):
        # vmcoreinfo needs DMA into guest memory: Nova drops it for
        # hw:mem_encryption guests, the designer for every SEV guest.
        self.assertIn('<vmcoreinfo', nova_domain())
        self.assertIsNone(apply(nova_domain()).find('features/vmcoreinfo'))

    def test_firmware_replaces_existing(self):
        xml = nova_domain().replace(
            "<boot dev='hd'/>",
            "<loader readonly='yes' secure='yes' type='pflash'>/x.fd</loader>"
            "<nvram>/var/lib/nova/vars.fd</nvram><boot dev='hd'/>").replace(
            '<os>', "<os firmware='efi'>")
        os_node = apply(xml).find('os')
        self.assertIsNone(os_node.get('firmware'))
        self.assertEqual(1, len(os_node.findall('loader')))
        self.assertEqual(PLAN.loader_path, os_node.findtext('loader'))
        self.assertIsNone(os_node.find('loader').get('secure'))
        self.assertEqual('/var/lib/nova/vars.fd', os_node.findtext('nvram'))

    def test_iommu_on_every_virtio_device(self):
        root = apply(ALL_DEVICES, disk_bus=None)
        for xpath in VIRTIO_XPATHS:
            found = root.xpath(xpath)
            self.assertNotEqual([], found, xpath)
            for dev in found:
                self.assertEqual('on', iommu(dev), xpath)
        # Existing driver attributes are kept.
        driver = root.xpath("devices/interface/driver[@queues='4']")[0]
        self.assertEqual('on', driver.get('iommu'))
        self.assertEqual('2', root.find('devices/disk/driver').get('queues'))

    def test_no_iommu_on_other_devices(self):
        root = apply(ALL_DEVICES, disk_bus=None)
        for xpath in ("devices/disk[target/@bus='sata']",
                      "devices/controller[@model='lsilogic']",
                      "devices/controller[@type='usb']",
                      "devices/interface[model/@type='e1000e']",
                      "devices/input[@bus='usb']",
                      "devices/video[model/@type='vga']"):
            for dev in root.xpath(xpath):
                self.assertIsNone(iommu(dev), xpath)

    def test_nova_domain_every_virtio_device(self):
        root = apply(nova_domain())
        virtio = [d for d in root.find('devices') if designer._is_virtio(d)]
        self.assertEqual(
            ['controller', 'controller', 'interface', 'interface', 'input',
             'video', 'memballoon', 'rng'], [d.tag for d in virtio])
        self.assertTrue(all(iommu(d) == 'on' for d in virtio))

    def test_memory_pinning(self):
        root = apply(nova_domain())
        limit = root.find('memtune/hard_limit')
        self.assertEqual(('KiB', '4718592'), (limit.get('unit'), limit.text))
        self.assertIsNotNone(root.find('memoryBacking/locked'))

    def test_memory_existing_memtune(self):
        xml = nova_domain().replace(
            '<vcpu', "<memtune><hard_limit unit='KiB'>1024</hard_limit>"
            "<soft_limit unit='KiB'>2048</soft_limit>"
            "<swap_hard_limit unit='KiB'>4096</swap_hard_limit></memtune>"
            "<memoryBacking><nosharepages/><locked/></memoryBacking><vcpu")
        root = apply(xml)
        self.assertEqual(['4718592'],
                         [n.text for n in root.findall('memtune/hard_limit')])
        self.assertEqual('2048', root.findtext('memtune/soft_limit'))
        self.assertIsNone(root.find('memtune/swap_hard_limit'))
        self.assertEqual(['nosharepages', 'locked'],
                         [n.tag for n in root.find('memoryBacking')])

    def test_huge_pages_locked_without_limit(self):
        xml = nova_domain().replace(
            '<vcpu', "<memoryBacking><hugepages><page size='2048' "
            "unit='KiB'/></hugepages></memoryBacking><vcpu")
        root = apply(xml, hard_limit_kib=None)
        self.assertIsNone(root.find('memtune'))
        self.assertEqual(['hugepages', 'locked'],
                         [n.tag for n in root.find('memoryBacking')])

    def test_boot_disk_to_virtio_scsi(self):
        root = apply(nova_domain())
        disks = root.findall("devices/disk[@device='disk']")
        self.assertEqual([('scsi', 'sdb'), ('scsi', 'sdc')],
                         [(d.find('target').get('bus'),
                           d.find('target').get('dev')) for d in disks])
        self.assertEqual([None, None], [d.find('address') for d in disks])
        ctrl = root.xpath("devices/controller[@type='scsi']")
        self.assertEqual(1, len(ctrl))
        self.assertEqual(('0', 'virtio-scsi', 'on'),
                         (ctrl[0].get('index'), ctrl[0].get('model'),
                          iommu(ctrl[0])))

    def test_moved_disk_loses_virtio_blk_options(self):
        root = apply(ALL_DEVICES)
        driver = root.find("devices/disk[@device='disk']/driver")
        self.assertEqual({'name': 'qemu', 'type': 'raw'}, dict(driver.attrib))

    def test_scsi_controller_without_model_becomes_virtio(self):
        xml = nova_domain().replace(
            "<controller type='sata' index='0'>",
            "<controller type='scsi' index='0'/>"
            "<controller type='sata' index='0'>")
        ctrl = apply(xml).xpath("devices/controller[@type='scsi']")
        self.assertEqual(1, len(ctrl))
        self.assertEqual('virtio-scsi', ctrl[0].get('model'))

    def test_disk_bus_chosen_by_image_kept(self):
        root = apply(ALL_DEVICES, disk_bus=None)
        self.assertEqual('virtio', root.find(
            "devices/disk[@device='disk']/target").get('bus'))

    def test_cdrom_to_sata(self):
        root = apply(ALL_DEVICES)
        cdrom = root.find("devices/disk[@device='cdrom']")
        self.assertEqual('sata', cdrom.find('target').get('bus'))
        self.assertTrue(cdrom.find('target').get('dev').startswith('sd'))
        self.assertIsNone(cdrom.find('address'))
        self.assertEqual([], root.xpath("devices/controller[@type='ide']"))
        names = [t.get('dev') for t in root.findall('devices/disk/target')]
        self.assertEqual(len(names), len(set(names)))

    def test_bus_implied_by_target_name(self):
        xml = ALL_DEVICES.replace("dev='vda' bus='virtio'", "dev='vda'")
        root = apply(xml, disk_bus=None)
        self.assertEqual('on', iommu(root.find('devices/disk')))
        root = apply(xml)
        self.assertEqual('scsi', root.find('devices/disk/target').get('bus'))

    def test_virtio_serial_controller_added(self):
        xml = ALL_DEVICES.replace(
            "<controller type='virtio-serial' index='0'/>", '')
        ctrl = apply(xml).xpath("devices/controller[@type='virtio-serial']")
        self.assertEqual(1, len(ctrl))
        self.assertEqual('on', iommu(ctrl[0]))

    def test_writes_without_refusing(self):
        # The plan has refused what cannot be: the designer writes what it
        # is given, even into a domain the plan never saw.
        xml = nova_domain().replace('pc-q35-7.2', 'pc-i440fx-7.2')
        root = apply(xml)
        self.assertEqual('pc-i440fx-7.2', root.find('os/type').get('machine'))
        self.assertEqual(1, len(root.findall('launchSecurity')))

    def test_malformed(self):
        for xml in ('', '<domain', '<network/>',
                    "<domain type='kvm'><os/></domain>"):
            self.assertRaises(exception.InvalidLibvirtXML,
                              designer.apply_guest_plan, xml, PLAN)


class TestEnableIommu(testtools.TestCase):

    def test_virtio_devices(self):
        for xml in ("<disk type='block' device='disk'><source dev='/dev/sdx'"
                    "/><target dev='vdc' bus='virtio'/></disk>",
                    "<interface type='bridge'><source bridge='br0'/>"
                    "<model type='virtio'/></interface>"):
            dev = etree.fromstring(designer.enable_iommu(xml))
            self.assertEqual('on', dev.find('driver').get('iommu'))

    def test_keeps_existing_driver(self):
        dev = etree.fromstring(designer.enable_iommu(
            "<disk type='file' device='disk'><driver name='qemu' "
            "type='qcow2'/><target dev='vdc' bus='virtio'/></disk>"))
        self.assertEqual({'name': 'qemu', 'type': 'qcow2', 'iommu': 'on'},
                         dict(dev.find('driver').attrib))

    def test_other_devices_unchanged(self):
        xml = ("<disk type='file' device='disk'><target dev='sdc' "
               "bus='scsi'/></disk>")
        self.assertIsNone(etree.fromstring(
            designer.enable_iommu(xml)).find('driver'))


class TestDomainFacts(testtools.TestCase):

    def test_nova_domain(self):
        facts = designer.domain_facts(nova_domain())
        self.assertEqual(designer.DomainFacts(
            ram_mb=4096, video_mb=0, huge_pages=False,
            machine_type='pc-q35-7.2', host_devices=(), virt_type='kvm',
            arch='x86_64', ide_disks=()), facts)

    def test_units_and_video(self):
        xml = ("<domain type='kvm'><memory unit='GiB'>2</memory><devices>"
               "<video><model type='qxl' ram='65536' vram='65536' "
               "vgamem='16384'/></video></devices></domain>")
        facts = designer.domain_facts(xml)
        self.assertEqual((2048, 144), (facts.ram_mb, facts.video_mb))
        facts = designer.domain_facts(
            "<domain><memory unit='b'>1048577</memory></domain>")
        self.assertEqual(2, facts.ram_mb)
        facts = designer.domain_facts("<domain><memory>2048</memory>"
                                      "</domain>")
        self.assertEqual(2, facts.ram_mb)

    def test_huge_pages_and_hostdevs(self):
        xml = ("<domain><memory>1048576</memory><memoryBacking><hugepages/>"
               "</memoryBacking><devices><hostdev type='pci'><source>"
               "<address domain='0x0000' bus='0x3b' slot='0x00' "
               "function='0x1'/></source></hostdev></devices></domain>")
        facts = designer.domain_facts(xml)
        self.assertTrue(facts.huge_pages)
        self.assertEqual(('PCI host device 0x0000:0x3b:0x00.0x1',),
                         facts.host_devices)

    def test_ide_disks(self):
        facts = designer.domain_facts(ALL_DEVICES)
        self.assertEqual((('cdrom', 'hdc'),), facts.ide_disks)

    def test_bad(self):
        for xml in ('<domain/>', "<domain><memory unit='parsec'>1</memory>"
                    "</domain>", '<domain><memory>x</memory></domain>',
                    'nope'):
            self.assertRaises(exception.InvalidLibvirtXML,
                              designer.domain_facts, xml)
