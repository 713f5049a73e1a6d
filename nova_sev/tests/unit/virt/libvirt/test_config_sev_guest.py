"""LibvirtConfigGuestFeatureSEV: the guest's <launchSecurity type='sev'>."""

from lxml import etree
import testtools

from nova_sev import exception
from nova_sev.virt.libvirt import config as vconfig


def _sev(cbitpos=47, reduced=1, policy=0x33):
    obj = vconfig.LibvirtConfigGuestFeatureSEV()
    obj.cbitpos = cbitpos
    obj.reduced_phys_bits = reduced
    obj.policy = policy
    return obj


class TestLibvirtConfigGuestFeatureSEV(testtools.TestCase):

    def test_format(self):
        self.assertEqual(
            "<launchSecurity type=\"sev\"><cbitpos>47</cbitpos>"
            "<reducedPhysBits>1</reducedPhysBits><policy>0x0033</policy>"
            "</launchSecurity>", _sev().to_xml(pretty_print=False))

    def test_policy_written_as_hex_4(self):
        node = _sev(policy=0x37).format_dom()
        self.assertEqual('0x0037', node.findtext('policy'))
        self.assertEqual('0x10033', _sev(policy=0x10033).format_dom()
                         .findtext('policy'))

    def test_round_trip(self):
        for args in ((47, 1, 0x33), (51, 5, 0x37), (None, None, 0x1)):
            obj = _sev(*args)
            parsed = vconfig.LibvirtConfigGuestFeatureSEV()
            parsed.parse_str(obj.to_xml())
            self.assertEqual(obj, parsed)

    def test_parse_libvirt_form(self):
        parsed = vconfig.LibvirtConfigGuestFeatureSEV()
        parsed.parse_dom(etree.fromstring(
            "<launchSecurity type='sev'><policy>0x0037</policy>"
            "<cbitpos>51</cbitpos><reducedPhysBits>1</reducedPhysBits>"
            "<dhCert>AAAA</dhCert></launchSecurity>"))
        self.assertEqual((51, 1, 0x37), (parsed.cbitpos,
                                         parsed.reduced_phys_bits,
                                         parsed.policy))

    def test_parse_refuses_other_types(self):
        parsed = vconfig.LibvirtConfigGuestFeatureSEV()
        self.assertRaises(exception.InvalidLibvirtXML, parsed.parse_str,
                          "<launchSecurity type='s390-pv'/>")
        self.assertRaises(exception.InvalidLibvirtXML, parsed.parse_str,
                          "<launchSecurity type='sev'><policy>x</policy>"
                          "</launchSecurity>")
        self.assertRaises(exception.InvalidLibvirtXML, parsed.parse_str,
                          "<sev/>")


def _snp(**kwargs):
    obj = vconfig.LibvirtConfigGuestFeatureSEVSNP()
    obj.cbitpos = 51
    obj.reduced_phys_bits = 1
    obj.policy = 0x30000
    obj.author_key = False
    obj.vcek = True
    obj.kernel_hashes = False
    obj.host_data = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8='
    for key, value in kwargs.items():
        setattr(obj, key, value)
    return obj


class TestLibvirtConfigGuestFeatureSEVSNP(testtools.TestCase):

    def test_format(self):
        self.assertEqual(
            "<launchSecurity type=\"sev-snp\" authorKey=\"no\" vcek=\"yes\" "
            "kernelHashes=\"no\"><cbitpos>51</cbitpos>"
            "<reducedPhysBits>1</reducedPhysBits>"
            "<policy>0x00030000</policy>"
            "<hostData>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
            "</hostData></launchSecurity>",
            _snp().to_xml(pretty_print=False))

    def test_unset_attributes_are_left_out(self):
        node = _snp(author_key=None, vcek=None, kernel_hashes=None,
                    host_data=None).format_dom()
        self.assertEqual({'type': 'sev-snp'}, dict(node.attrib))
        self.assertIsNone(node.find('hostData'))

    def test_round_trip(self):
        for kwargs in ({}, {'kernel_hashes': True, 'policy': 0x1030000},
                       {'host_data': None, 'vcek': None}):
            obj = _snp(**kwargs)
            parsed = vconfig.LibvirtConfigGuestFeatureSEVSNP()
            parsed.parse_str(obj.to_xml())
            self.assertEqual(obj, parsed)

    def test_parse_refuses_plain_sev(self):
        parsed = vconfig.LibvirtConfigGuestFeatureSEVSNP()
        self.assertRaises(exception.InvalidLibvirtXML, parsed.parse_str,
                          _sev().to_xml())
