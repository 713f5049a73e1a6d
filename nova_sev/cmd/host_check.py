"""``nova-sev host-check``: can this compute host run SEV guests, and if
not, why not and what to do about it.

The JSON form (``--format json``) is a stable interface, documented in
doc/source/cli/host-check.rst; keys are only ever added.
Exit status: 0 SEV usable, 1 not usable, 2 could not check.
"""

import argparse

from nova_sev.cmd import common
from nova_sev.cmd import host_reading
from nova_sev.virt.libvirt import host


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_host_arguments(parser, 'firmware is not checked')
    common.add_format_argument(parser)
    common.add_config_argument(parser)


def _traits(caps: host.SevHostCapabilities) -> list[str]:
    """The traits the driver reports to placement for ``caps``."""
    if not caps.sev_usable:
        return []  # as traits.sev_traits, without its import
    # os-traits imports every module of its own at import (30 ms): only a
    # host with SEV has traits to name.
    from nova_sev.virt.libvirt import traits
    return sorted(traits.sev_traits(caps))


def report_dict(caps: host.SevHostCapabilities, source: str,
                versions: dict[str, str | None]) -> dict:
    """The host report as the documented JSON structure."""
    def descriptors(found):
        if found is None:
            return None
        return [{'descriptor': d.path, 'executable': d.executable,
                 'nvram_template': d.nvram_template,
                 'features': list(d.features)} for d in found]

    firmware = descriptors(caps.firmware)
    return {
        'source': source,
        'libvirt_version': versions.get('libvirt'),
        'qemu_version': versions.get('qemu'),
        'cpu_vendor': caps.cpu_vendor,
        'virtual_machine': caps.virtual_machine,
        'sev': {
            'usable': caps.sev_usable,
            'reasons': list(caps.sev_reasons),
            'cbitpos': caps.cbitpos,
            'reduced_phys_bits': caps.reduced_phys_bits,
            'max_guests': caps.max_guests,
        },
        'sev_es': {
            'usable': caps.sev_es_usable,
            'reasons': list(caps.sev_es_reasons),
            'max_guests': caps.max_es_guests,
        },
        'sev_snp': {
            'usable': caps.sev_snp_usable,
            'reasons': list(caps.sev_snp_reasons),
            # SEV-SNP guests share the SEV-ES ASID slots.
            'max_guests': caps.max_es_guests,
            'firmware': descriptors(caps.snp_firmware),
        },
        'traits': _traits(caps),
        'firmware': firmware,
    }


def _verdict(usable: bool) -> str:
    return 'usable' if usable else 'NOT usable'


def format_text(report: dict) -> str:
    """The host report for a person at a terminal."""
    def unknown(value):
        return 'unknown' if value is None else value

    lines = ['SEV host check of %s' % report['source']]
    if report['libvirt_version']:
        lines.append('libvirt %s, QEMU %s' % (
            report['libvirt_version'], unknown(report['qemu_version'])))
    if report['cpu_vendor']:
        lines.append('CPU vendor: %s' % report['cpu_vendor'])
    if report['virtual_machine']:
        lines.append('Virtual machine: yes (the "hypervisor" CPU flag)')
    for key, title in (('sev', 'SEV'), ('sev_es', 'SEV-ES'),
                       ('sev_snp', 'SEV-SNP')):
        part = report[key]
        lines.append('%s: %s' % (title, _verdict(part['usable'])))
        lines.extend('  - %s' % r for r in part['reasons'])
    sev = report['sev']
    lines.append('cbitpos: %s' % unknown(sev['cbitpos']))
    lines.append('reducedPhysBits: %s' % unknown(sev['reduced_phys_bits']))
    lines.append('ASID slots: SEV %s, SEV-ES and SEV-SNP %s' % (
        unknown(sev['max_guests']), unknown(report['sev_es']['max_guests'])))
    lines.append('traits reported to placement: %s' % (
        ', '.join(report['traits']) or 'none'))
    if report['firmware'] is None:
        lines.append('firmware: not checked (not a local host; see '
                     '--firmware-dir)')
    else:
        lines.append('firmware with amd-sev: %s' % (
            ', '.join('%s (%s)' % (f['descriptor'], f['executable'])
                      for f in report['firmware']) or 'none'))
        lines.append('stateless firmware with amd-sev-snp: %s' % (
            ', '.join('%s (%s)' % (f['descriptor'], f['executable'])
                      for f in report['sev_snp']['firmware'] or ()) or
            'none'))
    return '\n'.join(lines)


def run(args) -> int:
    reading = host_reading.read_host(args)
    caps = reading.caps
    report = report_dict(caps, reading.source, reading.versions)
    if args.format == 'json':
        common.print_json(report)
    else:
        print(format_text(report))
    return common.EXIT_OK if caps.sev_usable else common.EXIT_REFUSED
