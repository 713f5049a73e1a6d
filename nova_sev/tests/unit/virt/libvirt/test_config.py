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
                    sev_host.domcaps_xml(max_guests=None, sectypes=('sev',)),
                    sev_host.domcaps_xml(cpu_vendor=None)):
            caps = self._parse(xml)
            again = config.LibvirtConfigDomainCaps()
            again.parse_str(caps.to_xml())
            self.assertEqual(caps, again)

    def test_cpu_vendor(self):
        self.assertEqual('AMD', self._parse(sev_host.domcaps_xml()).cpu_vendor)
        self.assertIsNone(
            self._parse(sev_host.domcaps_xml(cpu_vendor=None)).cpu_vendor)

    def test_sev_feature_round_trip(self):
        sev = config.LibvirtConfigDomainCapsFeatureSev()
        sev.supported = True
        sev.cbitpos = 51
        sev.reduced_phys_bits = 1
        sev.max_guests = 509
        again = config.LibvirtConfigDomainCapsFeatureSev()
        again.parse_str(sev.to_xml())
        self.assertEqual(sev, again)


class SafeParseTestCase(testtools.TestCase):
    """``parse_xml``, the one parser of every XML nova-sev reads."""

    def test_names_what_and_source(self):
        e = self.assertRaises(exception.InvalidLibvirtXML, config.parse_xml,
                              '<domain>', 'domain', '/tmp/x.xml')
        self.assertIn('Malformed libvirt XML (domain in /tmp/x.xml)', str(e))
        self.assertEqual('/tmp/x.xml', e.source)

    def test_with_source_keeps_the_class(self):
        e = exception.InvalidDomainCapabilities(what='<sev>', reason='bad')
        named = e.with_source('caps.xml')
        self.assertIsInstance(named, exception.InvalidDomainCapabilities)
        self.assertIn('(<sev> in caps.xml): bad', str(named))

    def test_dtd_refused(self):
        for xml in ('<!DOCTYPE domain><domain/>',
                    '<!DOCTYPE domain SYSTEM "http://example.com/d.dtd">'
                    '<domain>&x;</domain>',
                    '<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b '
                    '"&a;&a;&a;&a;&a;&a;&a;&a;">]><domain>&b;</domain>'):
            e = self.assertRaises(exception.InvalidLibvirtXML,
                                  config.parse_xml, xml, 'domain')
            self.assertIn('document type declaration', str(e))
            self.assertNotIn('aaaaaaaaaaaaaaaaaaaa', str(e))

    def test_undefined_entity_refused(self):
        e = self.assertRaises(exception.InvalidLibvirtXML, config.parse_xml,
                              '<domain>&xxe;</domain>', 'domain')
        self.assertIn('xxe', str(e))

    def test_character_references_are_text(self):
        root = config.parse_xml('<name>&#65;&amp;&lt;</name>', 'name')
        self.assertEqual('A&<', root.text)

    def test_not_utf8_str(self):
        text = b'<name>\xff</name>'.decode('utf-8', 'surrogateescape')
        e = self.assertRaises(exception.InvalidLibvirtXML, config.parse_xml,
                              text, 'domain', 'stdin')
        self.assertIn('not UTF-8 text', str(e))

    def test_syntax_error_is_cut(self):
        e = self.assertRaises(exception.InvalidLibvirtXML, config.parse_xml,
                              '<%s>' % ('a' * 100000), 'domain')
        self.assertLess(len(str(e)), 400)

    def test_deep_nesting_refused(self):
        # libxml2's depth limit stays on (huge_tree off).
        e = self.assertRaises(exception.InvalidLibvirtXML, config.parse_xml,
                              '<a>' * 100000, 'domain')
        self.assertLess(len(str(e)), 400)


class DomainCapsImpossibleFactsTestCase(testtools.TestCase):

    def _parse(self, xml):
        caps = config.LibvirtConfigDomainCaps()
        caps.parse_str(xml, 'caps.xml')
        return caps

    def _refused(self, xml):
        return str(self.assertRaises(exception.InvalidDomainCapabilities,
                                     self._parse, xml))

    def test_bounds(self):
        for kwargs, words in (({'cbitpos': 64}, '<cbitpos> is 64'),
                              ({'cbitpos': -1}, '<cbitpos> is -1'),
                              ({'reduced': 64}, '<reducedPhysBits> is 64'),
                              ({'max_guests': 2 ** 32}, '<maxGuests> is'),
                              ({'max_es_guests': -1}, '<maxESGuests> is')):
            err = self._refused(sev_host.domcaps_xml(**kwargs))
            self.assertIn(words, err)
            self.assertIn('in caps.xml', err)

    def test_limits_are_possible(self):
        caps = self._parse(sev_host.domcaps_xml(
            cbitpos=63, reduced=0, max_guests=2 ** 32 - 1, max_es_guests=0))
        self.assertEqual((63, 0, 2 ** 32 - 1, 0), (
            caps.sev.cbitpos, caps.sev.reduced_phys_bits,
            caps.sev.max_guests, caps.sev.max_es_guests))

    def test_launch_security_duplicates_that_disagree(self):
        xml = sev_host.domcaps_xml(sectypes=('sev',)).replace(
            '</features>', "<launchSecurity supported='no'/></features>")
        self.assertIn('2 <launchSecurity> elements that disagree',
                      self._refused(xml))

    def test_round_trip_of_identical_duplicates(self):
        xml = sev_host.domcaps_xml(sev=False).replace(
            '</features>', "<sev supported='no'/></features>")
        caps = self._parse(xml)
        self.assertFalse(caps.sev.supported)
