"""From a request and a base domain to the SEV domain: the refusals that
the plan decides from what the domain says (they were the designer's
before the plan decided every refusal).
"""

import testtools

from nova_sev import exception
from nova_sev.tests.unit.virt.libvirt import test_designer as tdesigner
from nova_sev.tests.unit.virt.libvirt import test_guest_plan as tgp
from nova_sev.virt.libvirt import guest_plan as gp
from nova_sev.virt.libvirt import sev_guest

SEV_SPECS = {'trait:HW_CPU_X86_AMD_SEV': 'required'}
ALL_DEVICES = tdesigner.ALL_DEVICES
nova_domain = tdesigner.nova_domain


def design(xml, image_props=None, extra_specs=SEV_SPECS):
    return sev_guest.design_sev_domain(
        xml, extra_specs, image_props or {}, tgp.caps(), gp.SevGuestOptions())


class TestDomainRefusals(testtools.TestCase):

    def test_other_machine_refused(self):
        xml = nova_domain().replace('pc-q35-7.2', 'pc-i440fx-7.2')
        e = self.assertRaises(exception.SevMachineTypeNotSupported,
                              design, xml)
        self.assertIn('pc-i440fx-7.2', str(e))

    def test_ide_left_refused(self):
        # The image keeps its CD-ROM bus (no move to SATA): the domain's
        # IDE CD-ROM stays and is refused.
        e = self.assertRaises(exception.SevDiskBusNotSupported, design,
                              ALL_DEVICES, {'hw_cdrom_bus': 'scsi'})
        self.assertIn('hdc', str(e))
        xml = ALL_DEVICES.replace("dev='vda' bus='virtio'",
                                  "dev='hda' bus='ide'")
        self.assertRaises(exception.SevDiskBusNotSupported, design, xml,
                          {'hw_disk_bus': 'sata'})

    def test_ide_implied_by_target_name_refused(self):
        xml = ALL_DEVICES.replace("dev='hdc' bus='ide'", "dev='hdc'")
        self.assertRaises(exception.SevDiskBusNotSupported, design, xml,
                          {'hw_cdrom_bus': 'scsi'})

    def test_ide_moved_when_the_plan_moves_it(self):
        xml, plan = design(ALL_DEVICES)
        self.assertEqual('sata', plan.cdrom_bus)
        self.assertNotIn("bus='ide'", xml)
        self.assertNotIn('bus="ide"', xml)

    def test_refusals(self):
        cases = (
            (nova_domain().replace(
                '</devices>', "<hostdev mode='subsystem' type='pci'>"
                "<source><address domain='0x0000' bus='0x3b' slot='0x00' "
                "function='0x0'/></source></hostdev></devices>"),
             exception.SevDeviceNotSupported, '0x3b'),
            (nova_domain().replace(
                '</devices>', "<hostdev mode='subsystem' type='mdev'>"
                "<source><address uuid='c2177883-f1bb-47f0-914d-"
                "32a22e3a8804'/></source></hostdev></devices>"),
             exception.SevDeviceNotSupported, 'mediated device'),
            (nova_domain().replace("<domain type='kvm'>",
                                   "<domain type='qemu'>"),
             exception.SevGuestRefused, 'virt_type=kvm'),
            (nova_domain().replace("arch='x86_64'", "arch='aarch64'"),
             exception.SevGuestRefused, 'aarch64'),
        )
        for xml, exc, text in cases:
            e = self.assertRaises(exc, design, xml)
            self.assertIn(text, str(e))

    def test_input_untouched_on_refusal(self):
        xml = nova_domain().replace('pc-q35-7.2', 'pc')
        before = str(xml)
        self.assertRaises(exception.SevGuestRefused, design, xml)
        self.assertEqual(before, xml)

    def test_no_sev_unchanged(self):
        xml = nova_domain()
        self.assertEqual((xml, None), design(xml, extra_specs={}))


class TestSevDevice(testtools.TestCase):

    def test_refusals(self):
        e = self.assertRaises(
            exception.SevDiskBusNotSupported, sev_guest.sev_device,
            "<disk type='file' device='disk'><target dev='hdb' bus='ide'/>"
            "</disk>")
        self.assertIn('hdb', str(e))
        self.assertRaises(
            exception.SevDeviceNotSupported, sev_guest.sev_device,
            "<hostdev mode='subsystem' type='pci'/>")
        self.assertRaises(
            exception.SevDeviceNotSupported, sev_guest.sev_device,
            "<interface type='hostdev'/>")
        self.assertRaises(exception.InvalidLibvirtXML,
                          sev_guest.sev_device, '<disk')

    def test_virtio_device_gets_iommu(self):
        self.assertIn('iommu="on"', sev_guest.sev_device(
            "<disk type='file' device='disk'><target dev='vdc' "
            "bus='virtio'/></disk>"))
