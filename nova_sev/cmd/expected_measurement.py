"""``nova-sev expected-measurement``: the launch digest an SEV, SEV-ES or
SEV-SNP guest must report when it was launched with these inputs.

The options are those of virtee's ``sev-snp-measure``, which computes the
digest. Take the inputs from ``nova-sev launch-info`` on the compute host
(firmware, vCPUs, vCPU type, policy) and the images you chose (kernel,
initrd, command line). For SEV and SEV-ES the digest is what
``verify-measurement --launch-digest`` takes; for SNP it is the
MEASUREMENT of the attestation report (``verify-report --measurement``).
Exit status: 0 printed, 2 bad input.
"""

import argparse
import hashlib

from nova_sev.attestation import launch_digest
from nova_sev.cmd import common


def _number(text: str) -> int:
    """An int in decimal or 0x hex, as sev-snp-measure reads them."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not a number' % text)


def add_vcpu_type_arguments(parser) -> None:
    """The vCPU type, with sev-snp-measure's option names."""
    parser.add_argument('--vcpu-type', metavar='NAME',
                        help='QEMU CPU model of the vCPUs, one of %s '
                             '(seves, snp)' % ', '.join(
                                 launch_digest.vcpu_type_names()))
    parser.add_argument('--vcpu-sig', metavar='N', type=_number,
                        help='CPUID signature of the vCPUs instead of '
                             '--vcpu-type (for -cpu host)')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--mode', choices=launch_digest.MODES,
                        required=True,
                        help='sev, seves (SEV-ES) or snp (SEV-SNP)')
    parser.add_argument('--ovmf', metavar='FILE', required=True,
                        help="the firmware the guest boots (the domain's "
                             "<loader>)")
    parser.add_argument('--vcpus', metavar='N', type=int,
                        help='number of vCPUs (seves, snp)')
    add_vcpu_type_arguments(parser)
    parser.add_argument('--kernel', metavar='FILE',
                        help='direct kernel boot with kernel hashes: the '
                             'kernel')
    parser.add_argument('--initrd', metavar='FILE', help='... its initrd')
    parser.add_argument('--append', metavar='CMDLINE',
                        help='... its command line')
    parser.add_argument('--guest-features', metavar='N', type=_number,
                        default=launch_digest.DEFAULT_GUEST_FEATURES,
                        help='SNP: SEV_FEATURES of the VMSA (default 0x1)')
    common.add_format_argument(parser)


def library_version() -> str:
    """The installed sev-snp-measure, for the record of a result."""
    # Only the JSON result names it: importlib.metadata (and the email
    # package it loads) would double the command's start-up.
    import importlib.metadata
    try:
        return importlib.metadata.version('sev-snp-measure')
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'


def result_dict(inputs: launch_digest.LaunchInputs, digest: bytes,
                firmware_sha384: str, library: str | None = None) -> dict:
    """The documented JSON result: the digest, what it was made of and the
    ``library`` that computed it (sev-snp-measure's version if None).
    """
    described = launch_digest.describe(inputs)
    described['ovmf_sha384'] = firmware_sha384
    return {
        'mode': inputs.mode,
        'digest': digest.hex(),
        'inputs': described,
        'library': library or 'sev-snp-measure %s' % library_version(),
    }


def format_text(result: dict) -> str:
    lines = ['Expected %s launch digest: %s' % (result['mode'],
                                                result['digest'])]
    lines.extend('  %s: %s' % (key, value)
                 for key, value in sorted(result['inputs'].items())
                 if value is not None)
    return '\n'.join(lines)


def run(args) -> int:
    inputs = launch_digest.LaunchInputs(
        mode=args.mode, ovmf=args.ovmf, vcpus=args.vcpus,
        vcpu_type=args.vcpu_type, vcpu_sig=args.vcpu_sig,
        kernel=args.kernel, initrd=args.initrd, append=args.append,
        guest_features=args.guest_features)
    launch_digest.check_inputs(inputs)
    firmware = common.read_file(args.ovmf, '--ovmf')
    digest = launch_digest.launch_digest(inputs)
    firmware_sha384 = hashlib.sha384(firmware).hexdigest()
    if args.format == 'json':
        common.print_json(result_dict(inputs, digest, firmware_sha384))
    else:
        # The text names no library: not worth its version's look-up.
        print(format_text(result_dict(inputs, digest, firmware_sha384,
                                      library='sev-snp-measure')))
    return common.EXIT_OK
