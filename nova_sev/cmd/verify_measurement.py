"""``nova-sev verify-measurement``: does the SEV launch measurement prove
that the guest was launched with the guest owner's firmware (and kernel,
initrd, command line, vCPU state)?

Run it on a machine you trust, never on the compute host: the check is
only as trustworthy as the machine that runs it and the TIK it holds.
Exit status: 0 the measurement matches, 1 it does not (or the policy is not
the --expect-policy), 2 bad input.
"""

import argparse

from nova_sev.attestation import measurement
from nova_sev.cmd import attestation_inputs as inputs
from nova_sev.cmd import common


def add_arguments(parser: argparse.ArgumentParser) -> None:
    inputs.add_report_arguments(parser)
    inputs.add_expected_arguments(parser)
    inputs.add_key_arguments(parser, need_tek=False)
    parser.add_argument('--expect-policy', metavar='P',
                        help='also refuse unless the reported policy is '
                             'exactly P (hex 0x33 or decimal)')
    common.add_config_argument(parser)


def verdict(matches: bool, policy_ok: bool, report: measurement.LaunchReport,
            expected: inputs.ExpectedLaunch,
            expect_policy: int | None) -> tuple[int, str]:
    """The exit code and the one line that says why."""
    used = inputs.describe_check(report, expected)
    if not matches:
        return common.EXIT_REFUSED, (
            'Measurement does NOT match: %s. Do not trust this guest%s.'
            % (used, inputs.MISMATCH_ADVICE))
    if not policy_ok:
        return common.EXIT_REFUSED, (
            'Measurement matches but the policy is %s, not the expected '
            '%s: do not trust this guest.' % (
                measurement.describe_policy(report.policy),
                measurement.describe_policy(expect_policy)))
    return common.EXIT_OK, 'Measurement OK: %s.' % used


def run(args) -> int:
    expect_policy = None
    if args.expect_policy is not None:
        expect_policy = measurement.parse_number(
            args.expect_policy, '--expect-policy', 0xffffffff)
    report = inputs.load_report(args)
    tik = inputs.load_keys(args, need_tek=False).tik
    expected = inputs.load_expected(args, report)
    matches = measurement.measurement_matches(tik, report, expected.digest)
    policy_ok = expect_policy is None or expect_policy == report.policy
    code, line = verdict(matches, policy_ok, report, expected, expect_policy)
    print(line)
    return code
