"""``nova-sev build-secret``: the LAUNCH_SECRET header and payload that
carry the guest owner's secrets (a LUKS passphrase, keys) into a paused SEV
guest whose measurement checked.

Writes the base64 texts libvirt's ``setLaunchSecurityState`` takes as
``sev-secret-header`` and ``sev-secret``. The measurement is checked first,
as ``verify-measurement`` does, and nothing is written when it does not
match; ``--skip-verify`` builds without the check (for a measurement you
checked already). Run it on a machine you trust, never on the compute host.
Exit status: 0 written, 1 refused (measurement does not match), 2 bad
input.
"""

import argparse
import os

from nova_sev.attestation import measurement
from nova_sev.attestation import secret
from nova_sev.cmd import attestation_inputs as inputs
from nova_sev.cmd import common
from nova_sev import exception


def add_arguments(parser: argparse.ArgumentParser) -> None:
    inputs.add_report_arguments(parser)
    inputs.add_expected_arguments(parser)
    inputs.add_key_arguments(parser, need_tek=True)
    group = parser.add_argument_group('secrets and output')
    group.add_argument('--secret', action='append', default=[],
                       metavar='GUID=FILE',
                       help='a secret for OVMF\'s secret table, under GUID '
                            '(or the alias luks-key); repeatable')
    group.add_argument('--luks-key', metavar='FILE',
                       help='the LUKS passphrase GRUB reads (GUID %s)'
                       % secret.LUKS_KEY_GUID)
    group.add_argument('--header-out', metavar='FILE', required=True,
                       help='where to write sev-secret-header (base64)')
    group.add_argument('--payload-out', metavar='FILE', required=True,
                       help='where to write sev-secret (base64)')
    group.add_argument('--skip-verify', action='store_true',
                       help='build without checking the measurement first')
    common.add_config_argument(parser)


def secret_sources(secret_args: list[str],
                   luks_key: str | None) -> list[tuple[str, str]]:
    """(GUID or alias, file) pairs of the --secret and --luks-key options,
    in command-line order, --luks-key last.
    """
    sources = []
    for item in secret_args:
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            raise exception.InvalidInput(
                reason='--secret %r must be GUID=FILE (or luks-key=FILE)'
                % item)
        sources.append((name, path))
    if luks_key:
        sources.append(('luks-key', luks_key))
    return sources


def _write_private(path: str, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w', encoding='ascii') as f:
            f.write(text)
    except OSError as e:
        raise exception.InvalidInput(reason='cannot write %s: %s' % (
            path, e.strerror or e))


def run(args) -> int:
    transport = inputs.load_keys(args, need_tek=True)
    entries = [(secret.secret_guid(name),
                common.read_file(path, '--secret %s=' % name))
               for name, path in secret_sources(args.secret, args.luks_key)]
    table = secret.secret_table(entries)
    if args.skip_verify:
        fields = inputs.load_report_fields(args, ('measurement',))
        mac, _mnonce = measurement.parse_measurement(fields['measurement'])
        checked = 'measurement NOT verified (--skip-verify)'
    else:
        report = inputs.load_report(args)
        expected = inputs.load_expected(args, report)
        if not measurement.measurement_matches(transport.tik, report,
                                               expected.digest):
            return common.fail(common.EXIT_REFUSED, exception.
                               MeasurementMismatch(
                                   inputs=inputs.describe_check(
                                       report, expected),
                                   advice=inputs.MISMATCH_ADVICE))
        mac = report.mac
        checked = 'measurement verified'
    built = secret.build_launch_secret(transport.tek, transport.tik, mac,
                                       table, os.urandom(secret.IV_LEN))
    _write_private(args.header_out, built.header_b64)
    _write_private(args.payload_out, built.payload_b64)
    guids = ', '.join(str(guid) for guid, _data in entries)
    print('Secret built (%s): %d secret(s) (%s), header in %s, payload in '
          '%s.' % (checked, len(entries), guids, args.header_out,
                   args.payload_out))
    return common.EXIT_OK
