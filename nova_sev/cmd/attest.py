"""``nova-sev attest SERVER``: attest an SEV, SEV-ES or SEV-SNP server
through Nova's API, and for SEV release it with your secret.

SEV and SEV-ES (the server opted in with the metadata nova-sev:attest=true
or the image property nova_sev_attest=true): wait until the server awaits
its session; verify the platform certificates it publishes up to AMD's
root (exit 3 when they do not verify: nothing is sent); check the policy
and, with --firmware, that the host boots your firmware; make the launch
session (NAME_godh.b64, NAME_session.b64, NAME_tek.bin, NAME_tik.bin, as
"nova-sev session --name NAME" writes them) and send it; launch (reboot
--hard); wait for the measurement and verify it against the digest of
your firmware (--firmware with the kernel options, as verify-measurement
takes them, or --launch-digest); build the secret (--secret GUID=FILE) and
send it; release (reboot --soft) and wait until the guest runs. A
measurement that does not verify stops the flow: no secret is sent and
the guest is not released.

SEV-SNP: with --report FILE --vcek FILE (a report the guest took with your
nonce, --report-data), verify it against the inputs the server publishes:
the digest of your firmware with the published vCPUs and guest features,
the published policy, and HOST_DATA, which must be nova-sev's binding of
this server.

The cloud is the one of clouds.yaml (--os-cloud, OS_CLOUD) or the OS_*
variables, as for the openstack client. One progress line per step; each
wait ends after --timeout seconds. Run it on a machine you trust.

Exit status: 0 attested (and, for SEV, released and running); 1 refused
(the measurement or report does not match, the policy or firmware is not
the expected one, the server never opted in, or the host reports a
failure); 2 could not check (bad input, no answer within --timeout, the
API failed); 3 not authentic (the certificates or the report's signature
do not verify).
"""

import argparse
import dataclasses
import os
import time

from nova_sev.attestation import measurement
from nova_sev.attestation import owner
from nova_sev.attestation import server_metadata as sm
from nova_sev.cmd import attestation_inputs as inputs
from nova_sev.cmd import common
from nova_sev.cmd import servers
from nova_sev.cmd import session as session_cmd
from nova_sev import exception

DEFAULT_TIMEOUT = 600
DEFAULT_INTERVAL = 5.0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 10 ** 7:
        raise argparse.ArgumentTypeError('%r is not a number of seconds'
                                         % text)
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('server', metavar='SERVER',
                        help='the server, by name or ID')
    servers.add_cloud_arguments(parser)
    inputs.add_expected_arguments(parser)
    group = parser.add_argument_group('SEV and SEV-ES')
    group.add_argument('--name', default=session_cmd.DEFAULT_NAME,
                       help='prefix of the session files written and kept '
                            '(default: %s), as nova-sev session --name'
                       % session_cmd.DEFAULT_NAME)
    group.add_argument('--secret', action='append', default=[],
                       metavar='GUID=FILE',
                       help='a secret for OVMF\'s secret table, under GUID '
                            '(or the alias luks-key); repeatable; without '
                            'any the guest is released without a secret')
    group.add_argument('--luks-key', metavar='FILE',
                       help='the LUKS passphrase GRUB reads')
    group.add_argument('--expect-policy', metavar='P',
                       help='refuse unless the server will be launched with '
                            'exactly this policy (hex 0x33 or decimal)')
    group = parser.add_argument_group('SEV-SNP')
    group.add_argument('--report', metavar='FILE',
                       help='the attestation report the guest took')
    group.add_argument('--vcek', metavar='FILE',
                       help="the chip's VCEK certificate (PEM or DER)")
    group.add_argument('--report-data', metavar='HEX',
                       help='REPORT_DATA, your nonce (up to 64 bytes)')
    group.add_argument('--min-tcb', metavar='SPEC',
                       help='lowest acceptable REPORTED_TCB, e.g. '
                            'bootloader=3,tee=0,snp=8,microcode=115')
    group.add_argument('--allow-migration-agent', action='store_true',
                       help='accept a policy that allows a migration agent')
    group = parser.add_argument_group('trust and waiting')
    group.add_argument('--ask', metavar='FILE',
                       help='trust this ASK instead of the built-in AMD '
                            'roots (labs, tests; SEV: AMD\'s CA format, '
                            'SNP: X.509); needs --ark')
    group.add_argument('--ark', metavar='FILE',
                       help='the ARK that signed --ask')
    group.add_argument('--allow-debug', action='store_true',
                       help='accept a policy that lets the host debug the '
                            'guest')
    group.add_argument('--timeout', metavar='SECONDS', type=_seconds,
                       default=DEFAULT_TIMEOUT,
                       help='how long each step waits for the server '
                            '(default: %d)' % DEFAULT_TIMEOUT)
    group.add_argument('--interval', metavar='SECONDS', type=_seconds,
                       default=DEFAULT_INTERVAL,
                       help='how often a waiting step reads the server '
                            '(default: %g)' % DEFAULT_INTERVAL)
    common.add_format_argument(parser)
    common.add_config_argument(parser)
    # The chain always comes from the server: session's root loader takes
    # --ask/--ark as the root of that chain.
    # What verify-report's options would say, and attest takes from the
    # server: the expected measurement, HOST_DATA and the roots' product.
    parser.set_defaults(cert_chain=sm.CERT_CHAIN, product=None, at=None,
                        measurement=None, host_data=None, instance_uuid=None)


class Stop(Exception):
    """The flow ends here, with an exit code and the reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclasses.dataclass
class Record:
    """What the flow did and every value it used, for the progress lines
    and ``--format json``.
    """

    json: bool
    steps: list = dataclasses.field(default_factory=list)
    values: dict = dataclasses.field(default_factory=dict)

    def step(self, name: str, detail: str) -> None:
        self.steps.append({'step': name, 'detail': detail})
        # In JSON mode stdout carries the document only, which lists the
        # steps, and stderr the error line only.
        if not self.json:
            print('%-12s %s' % (name + ':', detail), flush=True)


def wait_for(api: servers.NovaServers, server_id: str, wanted: str,
             args: argparse.Namespace) -> owner.Server:
    """The server once it is in state ``wanted``; Stop when it never
    will be, or is not within ``--timeout``.
    """
    deadline = time.monotonic() + args.timeout
    while True:
        server = api.get(server_id)
        decision = owner.await_state(server, wanted)
        if decision.outcome == owner.READY:
            return server
        if decision.outcome != owner.WAIT:
            raise Stop(common.EXIT_REFUSED, decision.reason)
        if time.monotonic() >= deadline:
            raise Stop(common.EXIT_ERROR, 'not %s within %gs: %s' % (
                wanted, args.timeout, decision.reason))
        time.sleep(args.interval)


def _secret_table(args) -> tuple[bytes | None, list[str]]:
    """OVMF's secret table of ``--secret`` and ``--luks-key`` (None
    without any) and its GUIDs: read and checked before anything is sent.
    """
    from nova_sev.attestation import secret
    from nova_sev.cmd import build_secret

    entries = [(secret.secret_guid(name),
                common.read_file(path, '--secret %s=' % name))
               for name, path in build_secret.secret_sources(args.secret,
                                                             args.luks_key)]
    if not entries:
        return None, []
    return (secret.secret_table(entries),
            [str(guid) for guid, _data in entries])


def _check_sev_options(args) -> None:
    if args.firmware is None and args.launch_digest is None:
        raise exception.InvalidInput(
            reason='give --firmware FILE (your OVMF build, with --kernel '
            'etc. as it boots) or --launch-digest HEX: the measurement is '
            'checked against it before any secret is sent')
    snp_only = [o for o, v in (('--report', args.report),
                               ('--vcek', args.vcek),
                               ('--report-data', args.report_data),
                               ('--min-tcb', args.min_tcb)) if v]
    if snp_only:
        raise exception.InvalidInput(
            reason='%s: SEV-SNP options, and this server is SEV or SEV-ES'
            % ', '.join(snp_only))


def _verify_platform(server: owner.Server, args,
                     record: Record) -> owner.PlatformFacts:
    facts = owner.platform_facts(server)
    record.values['platform'] = owner.describe_platform(facts)
    try:
        root = owner.verify_platform(facts, session_cmd._roots(args))
    except exception.SevChainNotAuthentic as e:
        raise Stop(common.EXIT_NOT_AUTHENTIC, str(e))
    record.values['root'] = root.product
    expect = None
    if args.expect_policy is not None:
        expect = measurement.parse_number(
            args.expect_policy, '--expect-policy', 0xffffffff)
    refusal = owner.policy_refusal(facts.policy, expect, args.allow_debug)
    if refusal is None and args.firmware is not None:
        refusal = owner.firmware_refusal(
            common.read_file(args.firmware, '--firmware'),
            facts.firmware_sha256, sm.FIRMWARE_SHA256, 'sha256')
    if refusal:
        raise Stop(common.EXIT_REFUSED, refusal + '; nothing was sent')
    record.step('platform', 'PDH, PEK, OCA and CEK verified up to the AMD '
                '%s root; policy %s; firmware %s' % (
                    root.product,
                    measurement.describe_policy(facts.policy),
                    'sha256 %s is yours' % facts.firmware_sha256
                    if args.firmware else 'not compared (--launch-digest)'))
    return facts


def _send_session(api, server: owner.Server, facts, args,
                  record: Record):
    from nova_sev.attestation import session
    from nova_sev.attestation import sev_cert

    pdh = sev_cert.parse_sev_cert(facts.pdh, sm.PDH, sev_cert.USAGE_PDH)
    launch = session.new_session(pdh, session.check_policy(facts.policy))
    paths = session_cmd.write_session(args.name, launch)
    record.values['session_files'] = paths
    api.set_metadata(server.id, owner.session_items(launch.godh_b64,
                                                    launch.session_b64))
    record.step('session', 'made for policy %s and sent; kept in %s' % (
        sm.format_policy(facts.policy), ', '.join(paths.values())))
    return launch


def _expected(args, report, server: owner.Server):
    if report.sev_es and args.num_cpus is None and server.vcpus:
        # The flavor's vCPUs are the guest's: the owner need not repeat them.
        args = argparse.Namespace(**dict(vars(args), num_cpus=server.vcpus))
    return inputs.load_expected(args, report)


def _verify_measurement(server: owner.Server, launch, args,
                        record: Record):
    report = owner.launch_report(server)
    expected = _expected(args, report, server)
    record.values['measurement'] = {
        'reported': server.metadata[sm.MEASUREMENT],
        'api': sm.format_api(report.api_major, report.api_minor),
        'build': report.build_id, 'policy': sm.format_policy(report.policy),
        'expected_digest': expected.digest.hex(),
        'inputs': list(expected.inputs)}
    used = inputs.describe_check(report, expected)
    if not measurement.measurement_matches(launch.tik, report,
                                           expected.digest):
        raise Stop(common.EXIT_REFUSED, str(exception.MeasurementMismatch(
            inputs=used, advice=inputs.MISMATCH_ADVICE)) +
            '; no secret was sent and the guest stays paused')
    if report.policy != launch.policy:
        raise Stop(common.EXIT_REFUSED, 'the guest was launched with policy '
                   '%s, the session was made for %s; no secret was sent' % (
                       sm.format_policy(report.policy),
                       sm.format_policy(launch.policy)))
    record.step('measurement', 'OK: %s' % used)
    return report


def _send_secret(api, server_id: str, launch, report, table, guids,
                 record: Record) -> None:
    from nova_sev.attestation import secret

    record.values['secrets'] = guids
    if table is None:
        record.step('secret', 'none given: the guest is released without '
                    'a secret')
        return
    built = secret.build_launch_secret(launch.tek, launch.tik, report.mac,
                                       table, os.urandom(secret.IV_LEN))
    api.set_metadata(server_id, owner.secret_items(built.header_b64,
                                                   built.payload_b64))
    record.step('secret', '%d secret(s) (%s) sent' % (
        len(guids), ', '.join(guids)))


def attest_sev(api, server: owner.Server, args, record: Record) -> int:
    """The SEV and SEV-ES flow, from awaiting a session to running."""
    _check_sev_options(args)
    table, guids = _secret_table(args)
    server = wait_for(api, server.id, sm.AWAITING_SESSION, args)
    record.step('wait', 'server %s is %s' % (server.id, sm.AWAITING_SESSION))
    facts = _verify_platform(server, args, record)
    launch = _send_session(api, server, facts, args, record)
    api.reboot(server.id, servers.REBOOT_HARD)
    server = wait_for(api, server.id, sm.AWAITING_SECRET, args)
    record.step('launch', 'launched (reboot --hard); measurement published')
    report = _verify_measurement(server, launch, args, record)
    _send_secret(api, server.id, launch, report, table, guids, record)
    api.reboot(server.id, servers.REBOOT_SOFT)
    wait_for(api, server.id, sm.RUNNING, args)
    record.step('release', 'released (reboot --soft): server %s is %s' % (
        server.id, sm.RUNNING))
    return common.EXIT_OK


def attest_snp(api, server: owner.Server, args, record: Record) -> int:
    """The SNP check of a report against the server's published inputs."""
    from nova_sev.cmd import verify_report

    if not args.report or not args.vcek:
        raise exception.InvalidInput(
            reason='server %s is SEV-SNP: give --report FILE (taken in the '
            'guest with your nonce) and --vcek FILE' % server.id)
    server = wait_for(api, server.id, sm.RUNNING, args)
    record.step('wait', 'server %s is %s' % (server.id, sm.RUNNING))
    facts = owner.snp_facts(server)
    record.values['snp'] = owner.describe_snp(facts)
    digest, used = snp_expected_digest(facts, args)
    record.values['expected_digest'] = digest.hex()
    record.values['inputs'] = used
    record.step('inputs', 'expected digest %s (%s)' % (digest.hex(), used))
    expect = verify_report.load_expectations(args)
    expect = dataclasses.replace(expect, measurement=digest,
                                 host_data=facts.host_data,
                                 policy=facts.policy)
    result, line, document = verify_report.check_report(
        args, expect, [verify_report.binding_check(facts, server.id)])
    record.values['report'] = document
    if result != verify_report.VERDICT_OK:
        raise Stop(verify_report.VERDICT_EXIT[result], line)
    record.step('report', line)
    return common.EXIT_OK


def snp_expected_digest(facts: owner.SnpFacts, args) -> tuple[bytes, str]:
    """The digest the owner expects of an SNP server, and what it was
    computed from; Stop when the owner's firmware is not the host's.
    """
    from nova_sev.attestation import launch_digest
    from nova_sev.cmd import verify_report

    if args.launch_digest is not None:
        return (verify_report.parse_hex(
            args.launch_digest, '--launch-digest',
            launch_digest.DIGEST_LEN[launch_digest.MODE_SNP]),
            '--launch-digest')
    if args.firmware is None:
        raise exception.InvalidInput(
            reason='give --firmware FILE (your OVMF build) or '
            '--launch-digest HEX (48 bytes)')
    refusal = owner.firmware_refusal(
        common.read_file(args.firmware, '--firmware'),
        facts.firmware_sha384, sm.SNP_FIRMWARE_SHA384, 'sha384')
    if refusal:
        raise Stop(common.EXIT_REFUSED, refusal)
    vcpu_sig = None
    if args.vcpu_sig is not None:
        vcpu_sig = measurement.parse_number(args.vcpu_sig, '--vcpu-sig',
                                            0xffffffff)
    launch = launch_digest.snp_inputs(facts, args.firmware, args.kernel,
                                      args.initrd, args.cmdline,
                                      args.vcpu_type, vcpu_sig)
    return launch_digest.launch_digest(launch), (
        'firmware %s, %d vCPUs of signature %s, guest features 0x%x, '
        'kernel hashes %s' % (args.firmware, facts.vcpus,
                              launch_digest.describe(launch)['vcpu_sig'],
                              facts.guest_features,
                              'of %s' % args.kernel if args.kernel
                              else 'off'))


def _finish(record: Record, code: int, reason: str | None) -> int:
    if record.json:
        common.print_json({'exit_code': code, 'error': reason,
                           'steps': record.steps, 'values': record.values})
    if reason is not None:
        return common.fail(code, reason)
    return code


def run(args) -> int:
    record = Record(json=args.format == 'json')
    try:
        api = servers.NovaServers(servers.connect(args))
        server = api.find(args.server)
        family = owner.family(server.metadata)
        record.values['server'] = {'id': server.id, 'name': server.name,
                                   'family': family}
        record.step('server', '%s (%s), %s' % (
            server.id, server.name,
            'SEV-SNP' if family == owner.FAMILY_SNP else 'SEV or SEV-ES'))
        flow = attest_snp if family == owner.FAMILY_SNP else attest_sev
        code = flow(api, server, args, record)
    except Stop as e:
        return _finish(record, e.code, e.reason)
    except exception.NovaSevException as e:
        return _finish(record, common.EXIT_ERROR, str(e))
    return _finish(record, code, None)
