"""The domain the designer writes, byte for byte.

For representative base domains (Nova's own q35 guest, one of every virtio
device, a bare domain, a domain that has SEV parts already) and plans (SEV,
SEV-ES, buses kept, SEV-SNP), the written domain must equal the one kept in
``data/written-domains.txt``: a change that is meant to be only faster
(``tools/bench_guest.py``) must not change a byte. Each base is written
twice: parsed from its text (``apply_guest_plan``'s and ``guest-xml``'s
path, serialised as is) and as Nova's ``format_dom`` gives it, without
whitespace, serialised as ``SevGuestConfig.to_xml`` does (the driver's path).

A change that means to change the domain regenerates the file
(``python -m nova_sev.tests.unit.virt.libvirt.test_designer_written``)
and shows the difference in its commit.
"""

import dataclasses
import os
import sys

from lxml import etree
import testtools

from nova_sev.tests.unit.virt.libvirt import test_designer
from nova_sev.virt.hardware import SevMode
from nova_sev.virt.libvirt import designer
from nova_sev.virt.libvirt import guest_plan as gp

DATA = test_designer.DATA
WRITTEN = os.path.join(DATA, 'written-domains.txt')
SEPARATOR = '=== %s ===\n'


def _data(name: str) -> str:
    with open(os.path.join(DATA, name), encoding='utf-8') as f:
        return f.read()


def _with_sev_parts(xml: str) -> str:
    """Nova's guest with what a domain may have before the plan is
    written: firmware, memory tuning and backing, launch security, an IDE
    CD-ROM and controller, a SCSI controller without model, a virtio
    console without virtio-serial controller.
    """
    for old, new in (
            ('<os>', "<os firmware='efi'>"),
            ("<boot dev='hd'/>",
             "<loader readonly='yes' secure='yes' type='pflash'>/x.fd"
             "</loader><nvram template='/t.fd'>/var/lib/nova/vars.fd</nvram>"
             "<boot dev='hd'/>"),
            ('<vcpu', "<memtune><hard_limit unit='KiB'>1024</hard_limit>"
             "<soft_limit unit='KiB'>2048</soft_limit><swap_hard_limit "
             "unit='KiB'>4096</swap_hard_limit></memtune><memoryBacking>"
             "<nosharepages/></memoryBacking><vcpu"),
            ('</devices>', "</devices><launchSecurity type='sev'><policy>"
             "0x0001</policy></launchSecurity>"),
            ("<controller type='virtio-serial' index='0'>",
             "<controller type='ide' index='0'/><controller type='scsi' "
             "index='0'/><controller type='usb' index='1'>"),
            ("<target dev='sda' bus='sata'/>", "<target dev='hdc'/>"),
            ("<target type='serial' port='0'/>",
             "<target type='virtio' port='0'/>")):
        assert old in xml, old
        xml = xml.replace(old, new, 1)
    return xml


def _huge_pages(xml: str) -> str:
    return xml.replace(
        '<vcpu', "<memoryBacking><hugepages><page size='2048' unit='KiB'/>"
        "</hugepages></memoryBacking><vcpu", 1)


def bases() -> dict[str, str]:
    nova = test_designer.nova_domain()
    return {
        'nova': nova,
        'all-virtio': _data('all-virtio-devices.xml'),
        'all-devices': test_designer.ALL_DEVICES,
        'bare': "<domain type='kvm'><memory unit='MiB'>1024</memory>"
                "</domain>",
        'sev-parts': _with_sev_parts(nova),
        'huge-pages': _huge_pages(nova),
    }


def plans() -> dict[str, gp.GuestPlan]:
    sev = test_designer.PLAN
    snp = gp.snp_plan(
        dataclasses.replace(sev, mode=SevMode.SEV_SNP, policy=0x30000,
                            loader_path='/usr/share/OVMF/OVMF.amdsev.fd'),
        gp.GuestFacts(ram_mb=4096,
                      instance_uuid='8f6d0f4b-3c2e-4f0a-9b1e-6d1c2a7e5b10',
                      direct_kernel_boot=True))
    return {
        'sev': sev,
        'sev-es': dataclasses.replace(sev, mode=SevMode.SEV_ES,
                                      policy=0x37),
        'buses-kept': dataclasses.replace(
            sev, machine_type='pc-q35-8.0', disk_bus=None, cdrom_bus=None,
            hard_limit_kib=None, nvram_template_path=None),
        'snp': snp,
        'snp-bare': dataclasses.replace(
            snp, snp=gp.SnpLaunch(host_data=None, kernel_hashes=False)),
    }


# The bases Nova's driver builds, written on Nova's tree.
_NOVA_TREES = ('nova', 'all-virtio', 'sev-parts', 'huge-pages')


def written_domains() -> dict[str, str]:
    """Each case's name and the domain the designer writes for it."""
    found = {}
    blank_free = etree.XMLParser(remove_blank_text=True)
    for base_name, base in bases().items():
        for plan_name, plan in plans().items():
            root = designer.write_guest_plan(designer.parse_domain(base),
                                             plan)
            found['%s %s text' % (base_name, plan_name)] = etree.tostring(
                root, encoding='unicode') + '\n'
            if base_name not in _NOVA_TREES:
                continue
            root = designer.write_guest_plan(
                etree.fromstring(base.encode(), blank_free), plan)
            found['%s %s tree' % (base_name, plan_name)] = etree.tostring(
                root, encoding='unicode', pretty_print=True)
    return found


def _serialise(domains: dict[str, str]) -> str:
    return ''.join(SEPARATOR % name + xml for name, xml in domains.items())


def _kept() -> dict[str, str]:
    kept = {}
    name = None
    with open(WRITTEN, encoding='utf-8') as f:
        for line in f:
            if line.startswith('=== ') and line.endswith(' ===\n'):
                name = line[4:-5]
                kept[name] = ''
            else:
                kept[name] += line
    return kept


class TestWrittenDomains(testtools.TestCase):

    def test_every_case_kept(self):
        self.assertEqual(sorted(written_domains()), sorted(_kept()))

    def test_written_byte_for_byte(self):
        kept = _kept()
        for name, xml in written_domains().items():
            self.assertEqual(kept[name], xml, name)

    def test_apply_guest_plan_is_the_written_tree_indented(self):
        for base in bases().values():
            for plan in plans().values():
                root = designer.write_guest_plan(
                    designer.parse_domain(base), plan)
                etree.indent(root, space='  ')
                self.assertEqual(
                    etree.tostring(root, encoding='unicode') + '\n',
                    designer.apply_guest_plan(base, plan))


if __name__ == '__main__':
    if sys.argv[1:] != ['--write']:
        sys.exit('usage: python -m %s --write' % __spec__.name)
    with open(WRITTEN, 'w', encoding='utf-8') as f:
        f.write(_serialise(written_domains()))
