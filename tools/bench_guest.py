#!/usr/bin/env python3
"""Benchmark: what turning a guest into an SEV guest costs.

On a realistic Nova guest of some 20 devices (the test data
``nova_sev/tests/data/nova-guest-q35.xml``, or ``--domain FILE``), prints
the cost per guest of the plan (``make_guest_plan``), of applying it
(``apply_guest_plan``) and of the whole way from request to domain
(``design_sev_domain``), next to the cost of merely parsing and
serialising the same domain with lxml, as a ratio. Not a test: numbers are
printed, not asserted.

    tools/bench_guest.py [--domain FILE] [--guests N] [--repeat R]
"""

import argparse
import os
import sys
import timeit

from lxml import etree

from nova_sev.virt import hardware
from nova_sev.virt.libvirt import config as vconfig
from nova_sev.virt.libvirt import designer
from nova_sev.virt.libvirt import firmware as fw
from nova_sev.virt.libvirt import guest_plan as gp
from nova_sev.virt.libvirt import host

DEFAULT_DOMAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              '..', 'nova_sev', 'tests', 'data',
                              'nova-guest-q35.xml')
EXTRA_SPECS = {'trait:HW_CPU_X86_AMD_SEV': 'required'}
IMAGE_PROPS = {'hw_disk_bus': 'scsi'}
FIRMWARE = (fw.FirmwareDescriptor(
    path='/usr/share/qemu/firmware/60-edk2-x86_64.json',
    interface_types=('uefi',), device='flash',
    executable='/usr/share/OVMF/OVMF_CODE_4M.fd',
    nvram_template='/usr/share/OVMF/OVMF_VARS_4M.fd',
    targets=(fw.FirmwareTarget('x86_64', ('pc-i440fx-*', 'pc-q35-*')),),
    features=('acpi-s3', 'amd-sev')),)
CAPS = host.SevHostCapabilities(
    sev_usable=True, sev_es_usable=False, cbitpos=47, reduced_phys_bits=1,
    max_guests=15, firmware=FIRMWARE)


def per_guest_us(func, guests: int, repeat: int) -> float:
    """Best of ``repeat`` runs of ``guests`` calls, in microseconds each."""
    best = min(timeit.repeat(func, number=guests, repeat=repeat))
    return best / guests * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--domain', default=DEFAULT_DOMAIN,
                        help='libvirt domain XML (default: %(default)s)')
    parser.add_argument('--guests', type=int, default=500)
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()
    with open(args.domain, encoding='utf-8') as f:
        domain_xml = f.read()
    devices = len(vconfig.parse_xml(domain_xml, 'domain',
                                    args.domain).find('devices'))
    options = gp.SevGuestOptions()
    facts = designer.domain_facts(domain_xml)
    guest = gp.guest_facts(EXTRA_SPECS, IMAGE_PROPS, facts.ram_mb,
                           facts.video_mb)
    mode = hardware.get_sev_mode(EXTRA_SPECS, IMAGE_PROPS)
    plan = gp.make_guest_plan(mode, CAPS, guest, options)

    def lxml_round_trip():
        etree.tostring(vconfig.parse_xml(domain_xml, 'domain'),
                       encoding='unicode')

    def plan_only():
        gp.make_guest_plan(hardware.get_sev_mode(EXTRA_SPECS, IMAGE_PROPS),
                           CAPS, guest, options)

    def apply_only():
        designer.apply_guest_plan(domain_xml, plan)

    def whole_way():
        designer.design_sev_domain(domain_xml, EXTRA_SPECS, IMAGE_PROPS,
                                   CAPS, options)

    base = per_guest_us(lxml_round_trip, args.guests, args.repeat)
    rows = [('lxml parse + serialise', base),
            ('plan (get_sev_mode + make_guest_plan)',
             per_guest_us(plan_only, args.guests, args.repeat)),
            ('apply_guest_plan',
             per_guest_us(apply_only, args.guests, args.repeat)),
            ('design_sev_domain (plan + apply)',
             per_guest_us(whole_way, args.guests, args.repeat))]
    print('domain: %s (%d devices, %d bytes), %d guests x %d runs' % (
        os.path.relpath(args.domain), devices, len(domain_xml), args.guests,
        args.repeat))
    for name, cost in rows:
        print('%-40s %9.1f us/guest  %5.1fx lxml' % (
            name, cost, cost / base))
    return 0


if __name__ == '__main__':
    sys.exit(main())
