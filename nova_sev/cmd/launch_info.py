"""``nova-sev launch-info``: what libvirt reports about an SEV guest's
launch (measurement, SEV API version, firmware build, policy) and about
the host's SEV platform (PDH, certificate chain, CPU 0 id), for the
operator to hand to the guest owner.

This only reads what the host says. It proves nothing by itself: the guest
owner checks the measurement with ``nova-sev verify-measurement`` on a
machine they trust. The JSON form carries the launch values under
``properties`` with the server property names, so it can be given to
``verify-measurement --server-json`` as it is.

It also reports the inputs of the launch's expected measurement, read from
the domain libvirt runs: firmware path and SHA-384, vCPUs at launch, the
CPU model QEMU gets (the VMSA's vCPU type), policy, kernel hashes and, for
SEV-SNP, HOST_DATA, with the ``nova-sev expected-measurement`` command
that computes the digest from them. ``--inputs-only`` reports only those,
for a domain that is defined but not running (nothing is measured yet).
Exit status: 0 reported, 1 the domain is not an SEV guest, 2 could not ask
(no such domain, not running, no connection).
"""

import argparse
import re

from nova_sev.attestation import launch_inputs
from nova_sev.attestation import measurement
from nova_sev.cmd import common
from nova_sev.cmd import connection
from nova_sev import exception

_UUID_RE = re.compile(
    r'^[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}$')

_MAX_ID = 2 ** 31 - 1

# libvirt's getSEVInfo() keys -> report keys.
HOST_KEYS = (
    ('pdh', 'pdh'),
    ('cert-chain', 'cert_chain'),
    ('cpu0-id', 'cpu0_id'),
    ('cbitpos', 'cbitpos'),
    ('reduced-phys-bits', 'reduced_phys_bits'),
    ('max-guests', 'max_guests'),
    ('max-es-guests', 'max_es_guests'),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('domain', metavar='DOMAIN',
                        help='libvirt domain name, UUID or id')
    common.add_connection_argument(parser)
    parser.add_argument('--inputs-only', action='store_true',
                        help='report only the expected measurement\'s '
                             'inputs (the domain need not run)')
    common.add_format_argument(parser)
    common.add_config_argument(parser)


def lookup_order(domain: str) -> tuple[str, ...]:
    """The virConnect lookups to try for ``domain``, most specific first;
    a name is always tried last, since a name may look like a number.
    """
    order = []
    if _UUID_RE.match(domain):
        order.append('lookupByUUIDString')
    # libvirt's domain ids are C ints: a longer number can only be a name.
    if (domain.isascii() and domain.isdigit() and len(domain) <= 10
            and int(domain) <= _MAX_ID):
        order.append('lookupByID')
    order.append('lookupByName')
    return tuple(order)


def is_sev_launch(launch_info: dict) -> bool:
    """Whether libvirt's launch security info describes an SEV launch
    (libvirt returns no parameters for a guest without launch security).
    """
    return ('sev-measurement' in launch_info or
            'sev-snp-policy' in launch_info)


def inputs_dict(launch: launch_inputs.DomainLaunch,
                firmware_sha384: str | None, host_sig: int | None) -> dict:
    """The documented ``measurement_inputs`` of the report."""
    return {
        'mode': launch.mode,
        'policy': launch.policy,
        'firmware': launch.firmware,
        'firmware_type': launch.firmware_type,
        'firmware_sha384': firmware_sha384,
        'vcpus': launch.vcpus,
        'cpu_mode': launch.cpu_mode,
        'vcpu_type': launch.vcpu_type,
        'host_cpu_signature': ('0x%x' % host_sig if host_sig is not None
                               else None),
        'kernel_hashes': launch.kernel_hashes,
        'kernel': launch.kernel,
        'initrd': launch.initrd,
        'cmdline': launch.cmdline,
        'host_data': launch.host_data,
        'expected_measurement': ['nova-sev', 'expected-measurement'] +
        launch_inputs.expected_measurement_argv(launch, host_sig),
    }


def report_dict(name: str, uuid: str, uri: str, launch_info: dict,
                sev_info: dict | None, host_error: str | None,
                inputs: dict | None = None,
                inputs_error: str | None = None) -> dict:
    """The documented report: the launch values under the server property
    names, and the host's SEV data (or why it could not be read).
    """
    properties = measurement.launch_properties(launch_info)
    policy = launch_info.get('sev-policy')
    host = None
    if sev_info is not None:
        host = {out: sev_info.get(key) for key, out in HOST_KEYS}
    return {
        'domain': name,
        'uuid': uuid,
        'connection': uri,
        'properties': properties,
        'policy_flags': (measurement.describe_policy(policy)
                         if isinstance(policy, int) else None),
        'host': host,
        'host_error': host_error,
        'measurement_inputs': inputs,
        'measurement_inputs_error': inputs_error,
    }


def format_inputs(inputs: dict | None, error: str | None) -> list[str]:
    """The measurement inputs for a person at a terminal."""
    if inputs is None:
        return ['measurement inputs: unavailable (%s)' % error]
    lines = ['measurement inputs (%s):' % inputs['mode']]
    lines.extend('  %s: %s' % (key, inputs[key]) for key in (
        'policy', 'firmware', 'firmware_sha384', 'vcpus', 'vcpu_type',
        'host_cpu_signature', 'kernel_hashes', 'kernel', 'initrd',
        'cmdline', 'host_data') if inputs[key] not in (None, False))
    lines.append('  compute it with: %s' % ' '.join(
        inputs['expected_measurement']))
    return lines


def format_text(report: dict) -> str:
    """The report for a person at a terminal."""
    props = report['properties']
    inputs = report.get('measurement_inputs')
    if props['sev_measurement'] is None:
        # SEV-SNP (the report comes from the guest), or --inputs-only.
        return '\n'.join([
            'launch inputs of domain %s (%s) on %s' % (
                report['domain'], report['uuid'], report['connection'])] +
            format_inputs(inputs, report.get('measurement_inputs_error')))
    lines = [
        'SEV launch of domain %s (%s) on %s' % (
            report['domain'], report['uuid'], report['connection']),
        'measurement: %s' % props['sev_measurement'],
        'SEV API: %s.%s build %s' % (props['sev_api_major'],
                                     props['sev_api_minor'],
                                     props['sev_build_id']),
        'policy: %s' % (report['policy_flags'] or props['sev_policy']),
    ]
    if report['host'] is None:
        lines.append('host SEV data: unavailable (%s)' % report['host_error'])
    else:
        lines.extend('host %s: %s' % (key, value)
                     for key, value in report['host'].items())
    if 'measurement_inputs' in report:
        lines.extend(format_inputs(inputs,
                                   report.get('measurement_inputs_error')))
    lines.append(
        'Check it on a machine you trust, not this host: nova-sev '
        'verify-measurement --measurement %s --api-major %s --api-minor %s '
        '--build-id %s --policy %s --firmware FILE --tik FILE' % (
            props['sev_measurement'], props['sev_api_major'],
            props['sev_api_minor'], props['sev_build_id'],
            props['sev_policy']))
    return '\n'.join(lines)


def _find_domain(conn, domain: str, uri: str):
    import libvirt

    name = exception.excerpt(domain)
    for method in lookup_order(domain):
        try:
            argument = int(domain) if method == 'lookupByID' else domain
            return getattr(conn, method)(argument)
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise exception.LaunchInfoUnavailable(
                    domain=name, reason=e.get_error_message() or e)
    raise exception.LaunchInfoUnavailable(
        domain=name, reason='no domain with that name, UUID or id on %s '
        '("virsh -c %s list --all" lists them; for a Nova server use its '
        'instance UUID)' % (uri, uri))


def _host_cpu_signature() -> int | None:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            return launch_inputs.cpuinfo_signature(f.read())
    except OSError:
        return None


def measurement_inputs(xml: str) -> dict | None:
    """The ``measurement_inputs`` of a domain's XML; None when it has no
    ``<launchSecurity>``. The firmware digest and the host CPU's signature
    are read here, on the host that runs the domain.
    """
    launch = launch_inputs.domain_launch(xml)
    if launch.mode is None:
        return None
    host_sig = _host_cpu_signature() if launch.host_cpu else None
    return inputs_dict(launch,
                       launch_inputs.file_digest(launch.firmware, 'sha384'),
                       host_sig)


def _domain_xml(dom, domain: str) -> str:
    import libvirt

    try:
        return dom.XMLDesc(0)
    except libvirt.libvirtError as e:
        raise exception.LaunchInfoUnavailable(
            domain=domain, reason=e.get_error_message() or e)


def _gather(conn, args, uri: str) -> dict | None:
    import libvirt

    dom = _find_domain(conn, args.domain, uri)
    if args.inputs_only:
        inputs = measurement_inputs(_domain_xml(dom, args.domain))
        if inputs is None:
            return None
        return report_dict(dom.name(), dom.UUIDString(), uri, {}, None,
                           'not asked (--inputs-only)', inputs)
    try:
        launch_info = dom.launchSecurityInfo()
    except libvirt.libvirtError as e:
        raise exception.LaunchInfoUnavailable(
            domain=exception.excerpt(args.domain),
            reason='%s (the measurement exists only '
            'while the guest runs)' % (e.get_error_message() or e))
    if not is_sev_launch(launch_info):
        return None
    sev_info, host_error = None, None
    try:
        sev_info = conn.getSEVInfo()
    except libvirt.libvirtError as e:
        host_error = e.get_error_message() or str(e)
    inputs, inputs_error = None, None
    try:
        inputs = measurement_inputs(_domain_xml(dom, args.domain))
    except exception.NovaSevException as e:
        inputs_error = str(e)
    return report_dict(dom.name(), dom.UUIDString(), uri, launch_info,
                       sev_info, host_error, inputs, inputs_error)


def run(args) -> int:
    uri = args.connection or connection.default_uri()
    conn = connection.open_connection(uri)
    try:
        report = _gather(conn, args, uri)
    finally:
        conn.close()
    if report is None:
        return common.fail(common.EXIT_REFUSED, 'domain %s on %s is not an '
                           'SEV guest: it has no <launchSecurity '
                           'type="sev"> and no launch measurement'
                           % (exception.excerpt(args.domain), uri))
    if args.format == 'json':
        common.print_json(report)
    else:
        print(format_text(report))
    return common.EXIT_OK
