"""``nova-sev launch-info``: what libvirt reports about an SEV guest's
launch (measurement, SEV API version, firmware build, policy) and about
the host's SEV platform (PDH, certificate chain, CPU 0 id), for the
operator to hand to the guest owner.

This only reads what the host says. It proves nothing by itself: the guest
owner checks the measurement with ``nova-sev verify-measurement`` on a
machine they trust. The JSON form carries the launch values under
``properties`` with the server property names, so it can be given to
``verify-measurement --server-json`` as it is.
Exit status: 0 reported, 1 the domain is not an SEV guest, 2 could not ask
(no such domain, not running, no connection).
"""

import argparse
import re

from nova_sev.attestation import measurement
from nova_sev.cmd import common
from nova_sev.cmd import connection
from nova_sev import exception

_UUID_RE = re.compile(
    r'^[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}$')

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


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'launch-info',
        help="report an SEV guest's launch measurement and the host's SEV "
             "platform data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('domain', metavar='DOMAIN',
                        help='libvirt domain name, UUID or id')
    parser.add_argument('--connection', metavar='URI',
                        help='libvirt URI (default: qemu:///system where a '
                             'libvirt daemon runs, else the embedded QEMU '
                             'driver)')
    common.add_format_argument(parser)
    common.add_config_argument(parser)
    parser.set_defaults(func=run)


def lookup_order(domain: str) -> tuple[str, ...]:
    """The virConnect lookups to try for ``domain``, most specific first;
    a name is always tried last, since a name may look like a number.
    """
    order = []
    if _UUID_RE.match(domain):
        order.append('lookupByUUIDString')
    if domain.isdigit():
        order.append('lookupByID')
    order.append('lookupByName')
    return tuple(order)


def is_sev_launch(launch_info: dict) -> bool:
    """Whether libvirt's launch security info describes an SEV launch
    (libvirt returns no parameters for a guest without launch security).
    """
    return 'sev-measurement' in launch_info


def report_dict(name: str, uuid: str, uri: str, launch_info: dict,
                sev_info: dict | None, host_error: str | None) -> dict:
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
    }


def format_text(report: dict) -> str:
    """The report for a person at a terminal."""
    props = report['properties']
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

    for method in lookup_order(domain):
        try:
            argument = int(domain) if method == 'lookupByID' else domain
            return getattr(conn, method)(argument)
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise exception.LaunchInfoUnavailable(
                    domain=domain, reason=e.get_error_message() or e)
    raise exception.LaunchInfoUnavailable(
        domain=domain, reason='no domain with that name, UUID or id on %s '
        '("virsh -c %s list --all" lists them; for a Nova server use its '
        'instance UUID)' % (uri, uri))


def _gather(conn, args, uri: str) -> dict | None:
    import libvirt

    dom = _find_domain(conn, args.domain, uri)
    try:
        launch_info = dom.launchSecurityInfo()
    except libvirt.libvirtError as e:
        raise exception.LaunchInfoUnavailable(
            domain=args.domain, reason='%s (the measurement exists only '
            'while the guest runs)' % (e.get_error_message() or e))
    if not is_sev_launch(launch_info):
        return None
    sev_info, host_error = None, None
    try:
        sev_info = conn.getSEVInfo()
    except libvirt.libvirtError as e:
        host_error = e.get_error_message() or str(e)
    return report_dict(dom.name(), dom.UUIDString(), uri, launch_info,
                       sev_info, host_error)


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
                           % (args.domain, uri))
    if args.format == 'json':
        common.print_json(report)
    else:
        print(format_text(report))
    return common.EXIT_OK
