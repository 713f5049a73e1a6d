"""``nova-sev host-check``: can this compute host run SEV guests, and if
not, why not and what to do about it.

The JSON form (``--format json``) is a stable interface, documented in
doc/source/cli/host-check.rst; keys are only ever added.
Exit status: 0 SEV usable, 1 not usable, 2 could not check.
"""

import argparse
import os

from nova_sev.cmd import common
from nova_sev import exception
from nova_sev.virt.libvirt import connection
from nova_sev.virt.libvirt import host
from nova_sev.virt.libvirt import traits

CONF = common.CONF


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'host-check', help='report whether this host can run SEV guests',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        '--connection', metavar='URI',
        help='libvirt URI to examine (default: qemu:///system where a '
             'libvirt daemon runs, else the embedded QEMU driver)')
    source.add_argument(
        '--domcaps', metavar='FILE',
        help='analyse this output of "virsh domcapabilities --virttype kvm '
             '--arch x86_64 --machine q35" (from any host) instead of '
             'connecting; firmware is not checked then')
    parser.add_argument(
        '--kvm-amd-params', metavar='DIR',
        help='directory with the kvm_amd "sev" and "sev_es" files (default: '
             '[sev]kvm_amd_parameters_dir, /sys/module/kvm_amd/parameters)')
    common.add_format_argument(parser)
    common.add_config_argument(parser)
    parser.set_defaults(func=run)


def report_dict(caps: host.SevHostCapabilities, source: str,
                versions: dict[str, str | None]) -> dict:
    """The host report as the documented JSON structure."""
    firmware = None
    if caps.firmware is not None:
        firmware = [{'descriptor': d.path, 'executable': d.executable,
                     'nvram_template': d.nvram_template,
                     'features': list(d.features)} for d in caps.firmware]
    return {
        'source': source,
        'libvirt_version': versions.get('libvirt'),
        'qemu_version': versions.get('qemu'),
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
        'traits': sorted(traits.sev_traits(caps)),
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
    for key, title in (('sev', 'SEV'), ('sev_es', 'SEV-ES')):
        part = report[key]
        lines.append('%s: %s' % (title, _verdict(part['usable'])))
        lines.extend('  - %s' % r for r in part['reasons'])
    sev = report['sev']
    lines.append('cbitpos: %s' % unknown(sev['cbitpos']))
    lines.append('reducedPhysBits: %s' % unknown(sev['reduced_phys_bits']))
    lines.append('ASID slots: SEV %s, SEV-ES %s' % (
        unknown(sev['max_guests']), unknown(report['sev_es']['max_guests'])))
    lines.append('traits reported to placement: %s' % (
        ', '.join(report['traits']) or 'none'))
    if report['firmware'] is None:
        lines.append('firmware: not checked (not a local host)')
    else:
        lines.append('firmware with amd-sev: %s' % (
            ', '.join('%s (%s)' % (f['descriptor'], f['executable'])
                      for f in report['firmware']) or 'none'))
    return '\n'.join(lines)


def _check_file_source(args) -> tuple[host.SevHostCapabilities, str, dict]:
    try:
        with open(args.domcaps, encoding='utf-8') as f:
            xml = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise exception.InvalidInput(reason='cannot read --domcaps %s: %s'
                                     % (args.domcaps, e))
    domcaps = host.parse_domain_capabilities(xml)
    caps = host.detect_sev(domcaps, host.read_kvm_amd_params(
        args.kvm_amd_params or CONF.sev.kvm_amd_parameters_dir))
    return caps, args.domcaps, {}


def _check_connection(args) -> tuple[host.SevHostCapabilities, str, dict]:
    uri = args.connection or connection.default_uri()
    conn = connection.open_connection(uri)
    try:
        firmware_dirs = (CONF.sev.firmware_descriptor_dirs
                         if connection.is_local(uri) else None)
        sev_host = host.SevHost(
            lambda: conn,
            args.kvm_amd_params or CONF.sev.kvm_amd_parameters_dir,
            firmware_dirs)
        caps = sev_host.get_capabilities()
        versions = {'libvirt': connection.version_string(
                        conn.getLibVersion()),
                    'qemu': connection.version_string(conn.getVersion())}
    finally:
        conn.close()
    return caps, uri, versions


def run(args) -> int:
    if args.kvm_amd_params and not os.path.isdir(args.kvm_amd_params):
        return common.fail(common.EXIT_ERROR, '--kvm-amd-params %s is not a '
                           'directory' % args.kvm_amd_params)
    if args.domcaps:
        caps, source, versions = _check_file_source(args)
    else:
        caps, source, versions = _check_connection(args)
    report = report_dict(caps, source, versions)
    if args.format == 'json':
        common.print_json(report)
    else:
        print(format_text(report))
    return common.EXIT_OK if caps.sev_usable else common.EXIT_REFUSED
