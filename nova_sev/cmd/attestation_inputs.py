"""What ``verify-measurement`` and ``build-secret`` share: their options,
reading the guest owner's files, and the check itself.

The reported side (measurement, API version, build, policy) comes from the
options or from ``--server-json`` (what ``openstack server show -f json``
prints; its ``properties`` carry ``sev_measurement``, ``sev_api_major``,
``sev_api_minor``, ``sev_build_id`` and ``sev_policy``); an option given on
the command line wins over the property. The expected side (firmware,
kernel, VMSA pages) only ever comes from the guest owner's own files.
"""

import argparse
import dataclasses
import hashlib

from nova_sev.attestation import keys
from nova_sev.attestation import launch_digest
from nova_sev.attestation import measurement
from nova_sev.cmd import common
from nova_sev import exception

# Option dest -> server property, in the order messages list them: the
# option is the property without its "sev_" prefix.
REPORT_PROPERTIES = tuple((prop[len('sev_'):], prop) for _key, prop
                          in measurement.LAUNCH_PROPERTIES)


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        'reported launch (from the host, or --server-json)')
    group.add_argument('--server-json', metavar='FILE',
                       help='"openstack server show -f json" output whose '
                            'properties hold sev_measurement, sev_api_major, '
                            'sev_api_minor, sev_build_id and sev_policy')
    group.add_argument('--measurement', metavar='B64',
                       help="libvirt's sev-measurement (base64)")
    group.add_argument('--api-major', metavar='N', help='SEV API major')
    group.add_argument('--api-minor', metavar='N', help='SEV API minor')
    group.add_argument('--build-id', metavar='N', help='SEV firmware build')
    group.add_argument('--policy', metavar='P',
                       help='guest policy, hex (0x33) or decimal')


def add_expected_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        'expected launch (the guest owner\'s own files)')
    source = group.add_mutually_exclusive_group()
    source.add_argument('--firmware', metavar='FILE',
                        help='the OVMF image the guest must have booted')
    source.add_argument('--launch-digest', metavar='HEX',
                        help='SHA-256 of the measured launch, computed '
                             'before (instead of --firmware and the rest)')
    group.add_argument('--kernel', metavar='FILE',
                       help='direct kernel boot with kernelHashes=yes: the '
                            'kernel')
    group.add_argument('--initrd', metavar='FILE', help='... its initrd')
    group.add_argument('--cmdline', metavar='STR',
                       help='... its command line')
    group.add_argument('--num-cpus', metavar='N', type=int,
                       help='SEV-ES: the number of vCPUs')
    group.add_argument('--vmsa-cpu0', metavar='FILE',
                       help='SEV-ES: VMSA page of the boot vCPU')
    group.add_argument('--vmsa-cpu1', metavar='FILE',
                       help='SEV-ES: VMSA page of the other vCPUs')
    group.add_argument('--vcpu-type', metavar='NAME',
                       help='SEV-ES: the QEMU CPU model of the vCPUs '
                            '(nova-sev launch-info shows it), instead of '
                            'VMSA files')
    group.add_argument('--vcpu-sig', metavar='N',
                       help='SEV-ES: the CPUID signature of the vCPUs '
                            '(for -cpu host), instead of VMSA files')


def add_key_arguments(parser: argparse.ArgumentParser,
                      need_tek: bool) -> None:
    group = parser.add_argument_group('launch session keys')
    group.add_argument('--tik', metavar='FILE',
                       help='transport integrity key (16 bytes)')
    if need_tek:
        group.add_argument('--tek', metavar='FILE',
                           help='transport encryption key (16 bytes)')
    group.add_argument('--tk', metavar='FILE',
                       help='TEK then TIK, 16 bytes each, as sev-tool '
                            'writes them')
    group.add_argument('--name', metavar='NAME',
                       help='the keys "nova-sev session --name NAME" (or '
                            'sevctl session) wrote: NAME_tik.bin%s'
                       % (' and NAME_tek.bin' if need_tek else ''))


def server_properties(document: object, source: str) -> dict:
    """The ``properties`` of ``openstack server show -f json`` output (a
    dict, or the older "k='v', ..." text) as a dict of strings.
    """
    if not isinstance(document, dict) or 'properties' not in document:
        raise exception.InvalidInput(
            reason='%s has no "properties": give the output of "openstack '
            'server show -f json SERVER"' % source)
    return common.osc_properties(document['properties'], source)


def report_fields(options: dict, properties: dict, needed: tuple[str, ...],
                  source: str | None) -> dict:
    """The reported launch values: each option given wins over its server
    property. InvalidInput naming every value that is still missing.
    """
    fields = {}
    missing = []
    for dest, prop in REPORT_PROPERTIES:
        value = options.get(dest)
        if value is None:
            value = properties.get(prop)
        if value is None and dest in needed:
            missing.append('--%s%s' % (dest.replace('_', '-'),
                                       ' (or property %s in %s)' % (
                                           prop, source) if source else ''))
        fields[dest] = value
    if missing:
        raise exception.InvalidInput(
            reason='missing %s: give the values libvirt reports for the '
            'launch (nova-sev launch-info) or --server-json'
            % ', '.join(missing))
    return fields


def load_report_fields(args, needed: tuple[str, ...]) -> dict:
    """The reported launch values of the command line and --server-json."""
    properties = {}
    if args.server_json:
        raw = common.read_file(args.server_json, '--server-json')
        document = common.parse_json(raw, '--server-json', args.server_json)
        properties = server_properties(document, args.server_json)
    options = {dest: getattr(args, dest) for dest, _p in REPORT_PROPERTIES}
    return report_fields(options, properties, needed, args.server_json)


def load_report(args) -> measurement.LaunchReport:
    """The LaunchReport the command line (and --server-json) give."""
    fields = load_report_fields(args, tuple(
        dest for dest, _p in REPORT_PROPERTIES))
    return measurement.launch_report(**fields)


def session_key_paths(name: str, need_tek: bool) -> tuple[str, str | None]:
    """The TIK and TEK files ``nova-sev session --name NAME`` writes."""
    return name + '_tik.bin', (name + '_tek.bin' if need_tek else None)


def load_keys(args, need_tek: bool) -> keys.TransportKeys:
    """The launch session keys: --tk, --name, or --tik (and --tek)."""
    separate = [args.tik] + ([args.tek] if need_tek else [])
    given = [o for o, v in (('--tk', args.tk), ('--name', args.name),
                            ('--tik/--tek', any(separate))) if v]
    if len(given) > 1:
        raise exception.InvalidInput(
            reason='%s each give the keys: give one, not both'
            % ' and '.join(given))
    if args.name:
        tik_path, tek_path = session_key_paths(args.name, need_tek)
        tik = keys.check_key(common.read_file(tik_path, '--name'), 'TIK',
                             '--name ' + tik_path)
        tek = None
        if need_tek:
            tek = keys.check_key(common.read_file(tek_path, '--name'), 'TEK',
                                 '--name ' + tek_path)
        return keys.TransportKeys(tik=tik, tek=tek)
    if args.tk:
        return keys.split_tk(common.read_file(args.tk, '--tk'),
                             '--tk ' + args.tk)
    if not all(separate):
        raise exception.InvalidInput(
            reason='give the launch session keys: --name NAME (the files '
            'nova-sev session wrote), --tk FILE, or --tik FILE%s'
            % (' and --tek FILE' if need_tek else ''))
    tik = keys.check_key(common.read_file(args.tik, '--tik'), 'TIK',
                         '--tik ' + args.tik)
    tek = None
    if need_tek:
        tek = keys.check_key(common.read_file(args.tek, '--tek'), 'TEK',
                             '--tek ' + args.tek)
    return keys.TransportKeys(tik=tik, tek=tek)


@dataclasses.dataclass(frozen=True)
class ExpectedLaunch:
    """The launch digest the guest owner expects and, for messages, what
    it was computed from.
    """

    digest: bytes
    inputs: tuple[str, ...]


def _short_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _kernel_table(args) -> tuple[bytes, list[str]]:
    if args.kernel is None:
        if args.initrd is not None or args.cmdline is not None:
            raise exception.InvalidInput(
                reason='--initrd and --cmdline are measured only with a '
                'direct kernel boot: give --kernel too')
        return b'', []
    kernel = common.read_file(args.kernel, '--kernel')
    initrd = None
    if args.initrd is not None:
        initrd = common.read_file(args.initrd, '--initrd')
    table = measurement.kernel_hashes_table(kernel, initrd, args.cmdline)
    return table, ['kernel hashes of %s, initrd %s, cmdline %r' % (
        args.kernel, args.initrd or '(none)', args.cmdline or '')]


def _vmsa(args, report: measurement.LaunchReport) -> tuple[bytes, list[str]]:
    if not report.sev_es:
        given = [o for o, v in (('--num-cpus', args.num_cpus),
                                ('--vmsa-cpu0', args.vmsa_cpu0),
                                ('--vmsa-cpu1', args.vmsa_cpu1),
                                ('--vcpu-type', args.vcpu_type),
                                ('--vcpu-sig', args.vcpu_sig)) if v]
        # Not an error: a host that drops ES from the policy must get a
        # "does not match", not "bad input".
        return b'', (['%s not measured (policy has no ES bit)'
                      % '/'.join(given)] if given else [])
    if args.num_cpus is None or args.vmsa_cpu0 is None:
        raise exception.InvalidVmsa(
            reason='policy %s is SEV-ES, whose launch measures the vCPUs: '
            'give --num-cpus and --vmsa-cpu0 (and --vmsa-cpu1 for more '
            'than one vCPU), or --num-cpus and --vcpu-type'
            % measurement.describe_policy(report.policy))
    cpu0 = common.read_file(args.vmsa_cpu0, '--vmsa-cpu0')
    cpu1 = None
    if args.vmsa_cpu1 is not None:
        cpu1 = common.read_file(args.vmsa_cpu1, '--vmsa-cpu1')
    pages = measurement.vmsa_pages(args.num_cpus, cpu0, cpu1)
    return pages, ['%d VMSA pages (sha256 %s)' % (
        args.num_cpus, _short_sha256(pages))]


def _vcpu_type_given(args) -> bool:
    return args.vcpu_type is not None or args.vcpu_sig is not None


def _es_by_vcpu_type(args, firmware: bytes) -> ExpectedLaunch:
    """The SEV-ES digest with the VMSA that QEMU builds for the vCPU type
    (by sev-snp-measure, nova_sev.attestation.launch_digest).
    """
    files = [o for o, v in (('--vmsa-cpu0', args.vmsa_cpu0),
                            ('--vmsa-cpu1', args.vmsa_cpu1)) if v]
    if files:
        raise exception.InvalidInput(
            reason='--vcpu-type/--vcpu-sig already give the VMSA: drop %s'
            % ', '.join(files))
    vcpu_sig = None
    if args.vcpu_sig is not None:
        vcpu_sig = measurement.parse_number(args.vcpu_sig, '--vcpu-sig',
                                            0xffffffff)
    if args.num_cpus is None:
        raise exception.InvalidVmsa(
            reason='SEV-ES measures one VMSA per vCPU: give --num-cpus')
    launch = launch_digest.LaunchInputs(
        mode=launch_digest.MODE_SEV_ES, ovmf=args.firmware,
        vcpus=args.num_cpus, vcpu_type=args.vcpu_type, vcpu_sig=vcpu_sig,
        kernel=args.kernel, initrd=args.initrd, append=args.cmdline)
    digest = launch_digest.launch_digest(launch)
    vcpus = '%d vCPUs of type %s' % (
        args.num_cpus, args.vcpu_type or 'signature 0x%x' % vcpu_sig)
    inputs = ['firmware %s (sha256 %s)' % (args.firmware,
                                           _short_sha256(firmware))]
    if args.kernel is not None:
        inputs.append('kernel hashes of %s, initrd %s, cmdline %r' % (
            args.kernel, args.initrd or '(none)', args.cmdline or ''))
    return ExpectedLaunch(digest, tuple(inputs + [vcpus]))


def load_expected(args, report: measurement.LaunchReport) -> ExpectedLaunch:
    """The launch digest from --launch-digest, or from the firmware,
    kernel and VMSA files.
    """
    if args.launch_digest is not None:
        extra = [o for o, v in (('--kernel', args.kernel),
                                ('--initrd', args.initrd),
                                ('--cmdline', args.cmdline),
                                ('--vmsa-cpu0', args.vmsa_cpu0),
                                ('--vmsa-cpu1', args.vmsa_cpu1),
                                ('--vcpu-type', args.vcpu_type),
                                ('--vcpu-sig', args.vcpu_sig)) if v]
        if extra:
            raise exception.InvalidInput(
                reason='--launch-digest already covers %s: give either'
                % ', '.join(extra))
        digest = measurement.parse_digest(args.launch_digest)
        return ExpectedLaunch(digest, ('launch digest %s' % digest.hex(),))
    if args.firmware is None:
        raise exception.InvalidInput(
            reason='give --firmware FILE (the OVMF image the guest booted) '
            'or --launch-digest HEX')
    firmware = common.read_file(args.firmware, '--firmware')
    inputs = ['firmware %s (sha256 %s)' % (args.firmware,
                                           _short_sha256(firmware))]
    if report.sev_es and _vcpu_type_given(args):
        return _es_by_vcpu_type(args, firmware)
    table, kernel_inputs = _kernel_table(args)
    vmsa, vmsa_inputs = _vmsa(args, report)
    digest = measurement.launch_digest(firmware, table, vmsa)
    return ExpectedLaunch(digest, tuple(inputs + kernel_inputs + vmsa_inputs))


def describe_report(report: measurement.LaunchReport) -> str:
    """The reported numbers, as the verdicts name them."""
    return 'policy %s, SEV API %d.%d build %d' % (
        measurement.describe_policy(report.policy), report.api_major,
        report.api_minor, report.build_id)


def describe_check(report: measurement.LaunchReport,
                   expected: ExpectedLaunch) -> str:
    """Which inputs a verdict was reached with, on one line."""
    return '%s; %s' % (', '.join(expected.inputs), describe_report(report))


MISMATCH_ADVICE = (
    '; if you expected a match, check that the firmware, kernel, initrd, '
    'command line and VMSA files are exactly those of the launch and that '
    'the key is this launch\'s TIK')
