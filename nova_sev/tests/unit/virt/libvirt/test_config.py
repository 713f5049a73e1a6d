import testtools

from nova_sev import exception
from nova_sev.tests.fixtures import sev_host
from nova_sev.virt.libvirt import config


class DomainCapsSevTestCase(testtools.TestCase):

    def _parse(self, xml):
        caps = config.LibvirtConfigDomainCaps()
        caps.parse_str(xml)
        return caps

    def test_sev_supported_with_asid_slots(self):
        caps = self._parse(sev_host.domcaps_xml())
        self.assertEqual('x86_64', caps.arch)
        self.assertEqual('kvm', caps.domain)
        self.assertEqual('pc-q35-7.2', caps.machine)
        self.assertEqual(['efi'], caps.firmware)
        self.assertTrue(caps.sev.supported)
        self.assertEqual(47, caps.sev.cbitpos)
        self.assertEqual(1, caps.sev.reduced_phys_bits)
        self.assertEqual(15, caps.sev.max_guests)
        self.assertEqual(494, caps.sev.max_es_guests)
        self.assertIsNone(caps.launch_security)

    def test_libvirt_before_8_has_no_asid_slots(self):
        caps = self._parse(sev_host.domcaps_xml(max_guests=None,
                                                max_es_guests=None))
        self.assertTrue(caps.sev.supported)
        self.assertIsNone(caps.sev.max_guests)
        self.assertIsNone(caps.sev.max_es_guests)

    def test_sev_not_supported(self):
        caps = self._parse(sev_host.domcaps_xml(sev=False))
        self.assertFalse(caps.sev.supported)
        self.assertIsNone(caps.sev.cbitpos)

    def test_launch_security_form(self):
        caps = self._parse(sev_host.domcaps_xml(sectypes=('sev', 'sev-snp')))
        self.assertTrue(caps.launch_security.supported)
        self.assertEqual(['sev', 'sev-snp'], caps.launch_security.sectypes)

    def test_no_features(self):
        caps = self._parse('<domainCapabilities><arch>x86_64</arch>'
                           '</domainCapabilities>')
        self.assertIsNone(caps.sev)
        self.assertIsNone(caps.launch_security)

    def test_non_numeric_cbitpos(self):
        e = self.assertRaises(exception.InvalidLibvirtXML, self._parse,
                              sev_host.domcaps_xml(cbitpos='forty'))
        self.assertIn("<cbitpos> holds 'forty'", str(e))

    def test_truncated_xml(self):
        xml = sev_host.domcaps_xml()
        e = self.assertRaises(exception.InvalidLibvirtXML, self._parse,
                              xml[:len(xml) // 2])
        self.assertIn('domainCapabilities', str(e))

    def test_empty_and_wrong_root(self):
        self.assertRaises(exception.InvalidLibvirtXML, self._parse, '  ')
        e = self.assertRaises(exception.InvalidLibvirtXML, self._parse,
                              '<capabilities/>')
        self.assertIn('expected <domainCapabilities>', str(e))

    def test_entities_are_not_expanded(self):
        # Not expanded, and refused: the DTD is named, the file is not read.
        xml = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM '
               '"file:///etc/passwd">]><domainCapabilities><arch>&x;</arch>'
               '</domainCapabilities>')
        e = self.assertRaises(exception.InvalidLibvirtXML, self._parse, xml)
        self.assertNotIn('root:', str(e))
        self.assertIn('document type declaration', str(e))

    def test_round_trip(self):
        for xml in (sev_host.domcaps_xml(),
                    sev_host.domcaps_xml(sev=False),
                    sev_host.domcaps_xml(max_guests=None, sectypes=('sev',))):
            caps = self._parse(xml)
            again = config.LibvirtConfigDomainCaps()
            again.parse_str(caps.to_xml())
            self.assertEqual(caps, again)

    def test_sev_feature_round_trip(self):
        sev = config.LibvirtConfigDomainCapsFeatureSev()
        sev.supported = True
        sev.cbitpos = 51
        sev.reduced_phys_bits = 1
        sev.max_guests = 509
        again = config.LibvirtConfigDomainCapsFeatureSev()
        again.parse_str(sev.to_xml())
        self.assertEqual(sev, again)
