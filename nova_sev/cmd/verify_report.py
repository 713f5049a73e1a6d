"""``nova-sev verify-report``: is an SEV-SNP attestation report authentic,
and does it describe the guest you expect?

The guest gets the report from its CPU (``snpguest report``, with your
nonce as REPORT_DATA); the VCEK certificate comes from AMD's KDS for the
report's chip and TCB (``snpguest fetch vcek``) or from the host. The
report must be signed by the VCEK, the VCEK by AMD's ASK and the ASK by
AMD's root key (ARK): the ARK and ASK of Milan, Genoa and Turin are built
in, and only those are trusted unless --ark names another root (for labs
and tests). Then every check you ask for: --measurement (from nova-sev
expected-measurement --mode snp), --host-data or --instance-uuid (the
binding nova-sev's driver puts in HOST_DATA), --report-data (your nonce),
--min-tcb, and always the policy: no DEBUG and no migration agent unless
allowed. Run it on a machine you trust.

Exit status: 0 authentic and as expected; 1 authentic but a check you
asked for failed (refused); 2 bad input (unreadable or malformed report
or certificate, bad option); 3 not authentic (signature, certificate
chain or root does not verify). Every failed check is named.
"""

import argparse
import dataclasses
import datetime
import re
import uuid

from nova_sev.attestation import host_data
from nova_sev.attestation import snp_report
from nova_sev.attestation import snp_verify
from nova_sev.cmd import common
from nova_sev.cmd import servers
from nova_sev import exception

EXIT_NOT_AUTHENTIC = common.EXIT_NOT_AUTHENTIC

VERDICT_OK = 'OK'
VERDICT_REFUSED = 'REFUSED'
VERDICT_NOT_AUTHENTIC = 'NOT AUTHENTIC'
VERDICT_EXIT = {VERDICT_OK: common.EXIT_OK,
                VERDICT_REFUSED: common.EXIT_REFUSED,
                VERDICT_NOT_AUTHENTIC: EXIT_NOT_AUTHENTIC}

_HEX_TEXT = re.compile(rb'^[0-9a-fA-F\s]+$')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--report', metavar='FILE', required=True,
                        help='the attestation report (1184 bytes raw, or '
                             'the same in hex)')
    group = parser.add_argument_group('certificates (PEM or DER)')
    group.add_argument('--vcek', metavar='FILE', required=True,
                       help="the chip's VCEK certificate")
    group.add_argument('--ask', metavar='FILE',
                       help='the ASK (or AMD\'s cert_chain, ASK first); '
                            'default: the built-in ASKs')
    group.add_argument('--ark', metavar='FILE',
                       help='trust this root instead of the built-in AMD '
                            'ARKs (labs, tests); needs --ask')
    group.add_argument('--product', choices=snp_verify.PRODUCTS,
                       help='trust only this product\'s built-in root')
    group.add_argument('--at', metavar='DATE',
                       help='check that the certificates are valid at this '
                            'ISO 8601 date or time (UTC), not now: for a '
                            'report checked again later')
    group = parser.add_argument_group('what you expect')
    group.add_argument('--measurement', metavar='HEX',
                       help='the launch digest, 48 bytes (nova-sev '
                            'expected-measurement --mode snp)')
    source = group.add_mutually_exclusive_group()
    source.add_argument('--host-data', metavar='HEX',
                        help='HOST_DATA, 32 bytes')
    source.add_argument('--instance-uuid', metavar='UUID',
                        help="the Nova instance: HOST_DATA must be nova-"
                             "sev's binding of it")
    group.add_argument('--report-data', metavar='HEX',
                       help='REPORT_DATA, your nonce (up to 64 bytes; '
                            'shorter is padded with zeros)')
    group.add_argument('--min-tcb', metavar='SPEC',
                       help='lowest acceptable REPORTED_TCB, e.g. '
                            'bootloader=3,tee=0,snp=8,microcode=115')
    group.add_argument('--allow-debug', action='store_true',
                       help='accept a policy that allows DEBUG')
    group.add_argument('--allow-migration-agent', action='store_true',
                       help='accept a policy that allows a migration agent')
    servers.add_server_arguments(
        parser, 'its published HOST_DATA and policy are expected; '
        'HOST_DATA must bind the server')
    common.add_format_argument(parser)


def parse_hex(text: str, option: str, length: int,
              pad: bool = False) -> bytes:
    """``text`` as ``length`` bytes (``pad``: at most, zero-padded);
    InvalidInput naming ``option`` otherwise.
    """
    try:
        value = bytes.fromhex(text.strip().removeprefix('0x'))
    except ValueError:
        value = None
    if value is None or len(value) > length or (
            not pad and len(value) != length):
        raise exception.InvalidInput(
            reason='%s must be %s%d bytes in hex (%d hex digits)' % (
                option, 'at most ' if pad else '', length, 2 * length))
    return value + bytes(length - len(value))


def read_report(path: str) -> snp_report.Report:
    """The report of ``path``, raw or hex text."""
    data = common.read_file(path, '--report')
    if len(data) != snp_report.REPORT_LEN and _HEX_TEXT.match(data):
        try:
            data = bytes.fromhex(data.decode('ascii'))
        except ValueError:
            pass
    return snp_report.parse_report(data, '--report %s' % path)


def read_certificates(path: str, option: str) -> list:
    return snp_verify.load_certificates(common.read_file(path, option),
                                        '%s %s' % (option, path))


def load_roots(args) -> snp_verify.Roots:
    """The roots to trust: --ark alone, or the built-in ones (of
    --product).
    """
    if args.ark:
        if not args.ask:
            raise exception.InvalidInput(
                reason='--ark replaces the built-in AMD roots, so their '
                'ASKs too: give the ASK it signed with --ask')
        if args.product:
            raise exception.InvalidInput(
                reason='--product chooses a built-in root: give it or '
                '--ark, not both')
        ark = read_certificates(args.ark, '--ark')[0]
        return snp_verify.Roots({'given': ark}, {})
    roots = snp_verify.builtin_roots()
    if args.product:
        return snp_verify.Roots({args.product: roots.arks[args.product]},
                                {args.product: roots.asks[args.product]})
    return roots


def load_expectations(args) -> snp_verify.Expectations:
    expected_host_data = None
    if args.host_data is not None:
        expected_host_data = parse_hex(args.host_data, '--host-data',
                                       host_data.HOST_DATA_LEN)
    elif args.instance_uuid is not None:
        try:
            uuid.UUID(args.instance_uuid)
        except ValueError:
            raise exception.InvalidInput(
                reason='--instance-uuid %r is not a UUID' % args.instance_uuid)
        expected_host_data = host_data.instance_host_data(args.instance_uuid)
    return snp_verify.Expectations(
        measurement=(parse_hex(args.measurement, '--measurement', 48)
                     if args.measurement is not None else None),
        host_data=expected_host_data,
        report_data=(parse_hex(args.report_data, '--report-data', 64, True)
                     if args.report_data is not None else None),
        min_tcb=(snp_verify.parse_min_tcb(args.min_tcb)
                 if args.min_tcb is not None else None),
        allow_debug=args.allow_debug,
        allow_migration_agent=args.allow_migration_agent)


def parse_at(text: str | None) -> datetime.datetime:
    """--at as an aware UTC datetime; now without it."""
    if text is None:
        return datetime.datetime.now(datetime.timezone.utc)
    try:
        at = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise exception.InvalidInput(
            reason='--at %r is not an ISO 8601 date or time, e.g. '
            '2026-01-31 or 2026-01-31T12:00:00' % text)
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.timezone.utc)
    return at


def verdict(checks: list[snp_verify.Check]) -> str:
    """NOT AUTHENTIC when an authenticity check failed, REFUSED when
    another did, else OK.
    """
    failed = {c.name for c in checks if not c.ok}
    if failed & set(snp_verify.AUTHENTICITY_CHECKS):
        return VERDICT_NOT_AUTHENTIC
    return VERDICT_REFUSED if failed else VERDICT_OK


def verdict_line(result: str, checks: list[snp_verify.Check],
                 product: str | None) -> str:
    """The one line that says the verdict and names every failed check."""
    failed = [c for c in checks if not c.ok]
    if result == VERDICT_OK:
        return ('SNP report OK: authentic (VCEK -> ASK -> ARK of %s) and '
                'as expected: %s.' % (product, ', '.join(
                    c.name for c in checks)))
    return 'SNP report %s: failed %s. Do not trust this guest.' % (
        result, '; '.join('%s (%s)' % (c.name, c.detail) for c in failed))


def binding_check(facts, server_id: str) -> snp_verify.Check:
    """The check that the server's published HOST_DATA
    (``owner.SnpFacts``) is nova-sev's binding of ``server_id``.
    """
    from nova_sev.attestation import owner

    refusal = owner.host_data_refusal(facts, server_id)
    return snp_verify.Check('host_data_binding', refusal is None,
                            refusal or 'published HOST_DATA binds server %s'
                            % server_id)


def check_report(args, expect: snp_verify.Expectations,
                 extra: list[snp_verify.Check] = ()
                 ) -> tuple[str, str, dict]:
    """The verdict on the report and VCEK of ``args`` under ``expect``
    (and the ``extra`` checks made already), its one line, and the JSON
    document that lists every check.
    """
    report = read_report(args.report)
    vcek = read_certificates(args.vcek, '--vcek')[0]
    snp_verify.check_vcek_key(vcek, '--vcek %s' % args.vcek)
    ask = read_certificates(args.ask, '--ask')[0] if args.ask else None
    roots = load_roots(args)
    at = parse_at(args.at)
    chain, product = snp_verify.chain_checks(vcek, ask, roots, at)
    checks = chain + snp_verify.report_checks(report, vcek)
    turin = snp_verify.vcek_is_turin(vcek)
    checks += snp_verify.expectation_checks(report, expect, turin)
    checks += list(extra)
    result = verdict(checks)
    line = verdict_line(result, checks, product)
    return result, line, {
        'verdict': result,
        'exit_code': VERDICT_EXIT[result],
        'summary': line,
        'product': product,
        'failed': [c.name for c in checks if not c.ok],
        'checks': [{'name': c.name, 'ok': c.ok, 'detail': c.detail}
                   for c in checks],
        'report': snp_report.to_dict(report, turin),
    }


def server_expectations(args, expect: snp_verify.Expectations
                        ) -> tuple[snp_verify.Expectations,
                                   list[snp_verify.Check], dict | None]:
    """``expect`` with what the server of --server or --server-json
    publishes: its HOST_DATA (unless --host-data or --instance-uuid say
    otherwise) and policy; the check that HOST_DATA binds the server; and
    the published inputs, for the JSON document.
    """
    from nova_sev.attestation import owner

    server = servers.load_server(args)
    if server is None:
        return expect, [], None
    facts = owner.snp_facts(server)
    if expect.host_data is None:
        expect = dataclasses.replace(expect, host_data=facts.host_data)
    expect = dataclasses.replace(expect, policy=facts.policy)
    return expect, [binding_check(facts, server.id)], dict(
        owner.describe_snp(facts), server=server.id)


def run(args) -> int:
    expect, extra, published = server_expectations(
        args, load_expectations(args))
    result, line, document = check_report(args, expect, extra)
    if args.format == 'json':
        if published is not None:
            document['published'] = published
        common.print_json(document)
    else:
        print(line)
    return VERDICT_EXIT[result]
