"""The same SEV domain from every supported Nova release.

For each request of ``test_same_domain.CASES`` the driver builds the SEV
guest in Nova's own harness, as in an operation. The domain must be the
one recorded (``nova_sev/tests/data/domains/``, recorded with Nova 2026.2)
once what differs by release for reasons of Nova's own, unrelated to SEV,
is taken out (``NOVA_OWN``); and each of those differences must be there
exactly on the releases said, so that the list stays true.
"""

import os
import re

from lxml import etree
from nova import context as nova_context
from nova import objects
from nova.tests.unit import fake_network
from nova.virt.libvirt import blockinfo

from nova_sev.tests.fixtures import nova_harness
from nova_sev.tests.functional.nova_driver import test_same_domain
from nova_sev.virt import nova_compat

DOMAINS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'data', 'domains')
NOVA_NS = 'http://openstack.org/xmlns/libvirt/nova/1.1'
NS = {'nova': NOVA_NS}
UUID = re.compile(rb'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                  rb'[0-9a-f]{12}')

# What Nova itself writes differently by release, none of it SEV's:
# (XPath, the first Nova major version that writes it, why).
NOVA_OWN = (
    ('metadata/nova:instance/nova:flavor/@id', 32,
     '2025.2 records the flavor id in the instance metadata'),
    ('metadata/nova:instance/nova:flavor/nova:extraSpecs', 32,
     '2025.2 records the extra specs in the instance metadata'),
    ('metadata/nova:instance/nova:image', 32,
     '2025.2 records the image properties in the instance metadata'),
    ('devices/memballoon/@autodeflate', 32,
     '2025.2 turns balloon auto-deflation on'),
    ('devices/memballoon/@freePageReporting', 32,
     '2025.2 turns free page reporting on'),
    ('iothreads', 33, '2026.1 gives every guest an I/O thread'),
    ('devices/interface/virtualport', 34,
     "2026.2's fake network info (Nova's test data) makes the port OVS"),
)


def normalised(xml: str) -> bytes:
    """The domain without what varies per build or per Nova release and
    is not SEV's: names, UUIDs, paths, times, versions and ``NOVA_OWN``.
    """
    root = etree.fromstring(xml.encode(),
                            etree.XMLParser(remove_blank_text=True))
    for path, _since, _why in NOVA_OWN:
        for found in root.xpath(path, namespaces=NS):
            if isinstance(found, str):
                del found.getparent().attrib[found.attrname]
            else:
                found.getparent().remove(found)
    for path in ('uuid', 'name', 'metadata/nova:instance/nova:creationTime',
                 'metadata/nova:instance/nova:package',
                 'metadata/nova:instance/nova:name',
                 'metadata/nova:instance/nova:owner',
                 "sysinfo/system/entry[@name='version']",
                 "sysinfo/system/entry[@name='serial']",
                 "sysinfo/system/entry[@name='uuid']",
                 'devices/interface/target', 'devices/interface/mac'):
        for found in root.xpath(path, namespaces=NS):
            found.getparent().remove(found)
    for attr in root.xpath('devices//source/@file | devices//log/@file'):
        attr.getparent().set(attr.attrname,
                             os.path.basename(str(attr)))
    return UUID.sub(b'UUID', etree.tostring(root, method='c14n'))


class TestSameDomainOnEveryRelease(nova_harness.SevDriverTestCase):

    def setUp(self):
        super().setUp()
        self.drv = self.sev_driver()
        self.ctxt = nova_context.get_admin_context()

    def sev_domain(self, extra_specs, image_props) -> str:
        instance = self.instance(extra_specs, 'same')
        image_meta = objects.ImageMeta.from_dict(
            {'disk_format': 'raw', 'properties': dict(image_props)})
        network_info = fake_network.fake_get_instance_nw_info(self)
        self.drv._sev_begin(instance, image_meta, network_info)
        try:
            return self.drv._get_guest_xml(
                self.ctxt, instance, network_info,
                blockinfo.get_disk_info('kvm', instance, image_meta),
                image_meta)
        finally:
            self.drv._sev_end(instance)

    def test_same_sev_domain(self):
        for i, (specs, props) in enumerate(test_same_domain.CASES):
            xml = self.sev_domain(specs, props)
            with open(os.path.join(DOMAINS, 'case-%d.xml' % i), 'rb') as f:
                recorded = f.read()
            self.assertEqual(recorded.decode(), normalised(xml).decode(),
                             '%s %s' % (specs, props))
            root = etree.fromstring(xml.encode())
            for path, since, why in NOVA_OWN:
                self.assertEqual(
                    nova_compat.NOVA_MAJOR >= since,
                    bool(root.xpath(path, namespaces=NS)), why)
