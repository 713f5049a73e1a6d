"""``nova-sev guest-xml`` and the Nova driver give the same SEV domain for
the same request and base domain.

In Nova's own unit-test harness (``nova.test.NoDBTestCase`` with Nova's
fake libvirt), for each request the driver builds the SEV guest as in an
operation (plan, Nova's guest config, plan written). The base domain is
the one Nova builds for the same request without nova-sev's writing; fed
to what ``guest-xml`` runs (``sev_guest.design_sev_domain``) with the same
extra specs and image properties, it must give the driver's domain.
"""

from lxml import etree
from nova import context as nova_context
from nova import objects
from nova.tests.unit import fake_network
from nova.virt.libvirt import blockinfo
from nova.virt.libvirt import driver as libvirt_driver

from nova_sev.tests.fixtures import nova_harness
from nova_sev.virt.libvirt import guest_plan as gp
from nova_sev.virt.libvirt import sev_guest

CAPS = nova_harness.CAPS
SEV = {'trait:HW_CPU_X86_AMD_SEV': 'required'}

# (flavor extra specs, image properties)
CASES = (
    (SEV, {}),
    ({'trait:HW_CPU_AMD_SEV': 'required'}, {'hw_machine_type': 'q35'}),
    ({'hw:mem_encryption': 'true'}, {'hw_firmware_type': 'uefi'}),
    ({}, {'hw_mem_encryption': 'true', 'hw_disk_bus': 'sata'}),
    (dict(SEV, **{'hw_video:ram_max_mb': '64'}),
     {'hw_video_ram': '64', 'hw_video_model': 'qxl'}),
    (SEV, {'hw_cdrom_bus': 'scsi', 'hw_scsi_model': 'virtio-scsi'}),
)


def canonical(xml: str) -> str:
    parser = etree.XMLParser(remove_blank_text=True)
    root = etree.fromstring(xml.encode(), parser)
    # Nova stamps each domain it builds with the second it was built: two
    # builds may straddle a second.
    for stamp in root.iterfind(
            './/{http://openstack.org/xmlns/libvirt/nova/1.1}creationTime'):
        stamp.text = ''
    return etree.tostring(root, method='c14n').decode()


class TestGuestXmlAgreesWithDriver(nova_harness.SevDriverTestCase):

    def setUp(self):
        super().setUp()
        self.drv = self.sev_driver()
        self.ctxt = nova_context.get_admin_context()

    def _driver_and_base(self, extra_specs, image_props):
        """The driver's SEV domain and Nova's own base domain."""
        instance = self.instance(extra_specs, 'same')
        image_meta = objects.ImageMeta.from_dict(
            {'disk_format': 'raw', 'properties': dict(image_props)})
        network_info = fake_network.fake_get_instance_nw_info(self)
        plan = self.drv._sev_begin(instance, image_meta, network_info)
        self.assertIsNotNone(plan)
        try:
            sev_xml = self.drv._get_guest_xml(
                self.ctxt, instance, network_info,
                blockinfo.get_disk_info('kvm', instance, image_meta),
                image_meta)
            # Nova's guest for the same request and the plan's choices,
            # without nova-sev's writing.
            self.drv._sev_plans[instance.uuid] = (image_meta, None)
            base_xml = libvirt_driver.LibvirtDriver._get_guest_config(
                self.drv, instance, network_info, image_meta,
                blockinfo.get_disk_info('kvm', instance, image_meta),
                context=self.ctxt).to_xml()
        finally:
            self.drv._sev_end(instance)
        return sev_xml, base_xml, plan

    def test_same_domain(self):
        for extra_specs, image_props in CASES:
            case = '%s %s' % (extra_specs, image_props)
            sev_xml, base_xml, plan = self._driver_and_base(extra_specs,
                                                            image_props)
            self.assertNotIn('<launchSecurity', base_xml, case)
            cli_xml, cli_plan = sev_guest.design_sev_domain(
                base_xml, extra_specs, image_props, CAPS,
                gp.SevGuestOptions())
            self.assertEqual(plan, cli_plan, case)
            self.assertEqual(canonical(sev_xml), canonical(cli_xml), case)
            self.assertEqual(
                1, len(etree.fromstring(sev_xml).findall('launchSecurity')))
