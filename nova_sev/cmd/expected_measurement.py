"""``nova-sev expected-measurement``: the launch digest an SEV, SEV-ES or
SEV-SNP guest must report when it was launched with these inputs.

The options are those of virtee's ``sev-snp-measure``, which computes the
digest. Take the inputs from ``nova-sev launch-info`` on the compute host
(firmware, vCPUs, vCPU type, policy) and the images you chose (kernel,
initrd, command line). For SEV and SEV-ES the digest is what
``verify-measurement --launch-digest`` takes; for SNP it is the
MEASUREMENT of the attestation report (``verify-report --measurement``).
With --server NAME_OR_ID (through Nova's API) or --server-json FILE
("openstack server show -f json" output), the mode, vCPUs, vCPU signature
and guest features are those the server publishes (nova-sev's attested
servers), and --ovmf must be the build the server's host boots (its
published SHA-384, or SHA-256 for SEV): the firmware itself is always
yours.
Exit status: 0 printed, 1 refused (your firmware is not the one the
server's host boots), 2 bad input.
"""

import argparse
import hashlib

from nova_sev.attestation import launch_digest
from nova_sev.cmd import common
from nova_sev.cmd import servers
from nova_sev import exception


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
                        help='sev, seves (SEV-ES) or snp (SEV-SNP); '
                             'required unless --server or --server-json '
                             'say it')
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
                        help='SNP: SEV_FEATURES of the VMSA (default 0x1)')
    servers.add_server_arguments(
        parser, 'mode, vCPUs, vCPU signature and guest features as it '
        'publishes them')
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


def _from_server(args, server
                 ) -> tuple[launch_digest.LaunchInputs, str | None, dict]:
    """The launch inputs ``server`` publishes, with the owner's files;
    the refusal when ``--ovmf`` is not the host's firmware; what was
    published.
    """
    from nova_sev.attestation import owner
    from nova_sev.attestation import server_metadata as sm

    given = [o for o, v in (('--vcpus', args.vcpus),
                            ('--guest-features', args.guest_features))
             if v is not None]
    firmware = common.read_file(args.ovmf, '--ovmf')
    if owner.family(server.metadata) == owner.FAMILY_SNP:
        if given or args.mode not in (None, launch_digest.MODE_SNP):
            raise exception.InvalidInput(
                reason='server %s publishes its SNP inputs: drop %s' % (
                    server.id, ', '.join(given + ['--mode'])))
        facts = owner.snp_facts(server)
        return (launch_digest.snp_inputs(facts, args.ovmf, args.kernel,
                                         args.initrd, args.append,
                                         args.vcpu_type, args.vcpu_sig),
                owner.firmware_refusal(firmware, facts.firmware_sha384,
                                       sm.SNP_FIRMWARE_SHA384, 'sha384'),
                dict(owner.describe_snp(facts), server=server.id))
    policy = server.metadata.get(sm.POLICY)
    if policy is None:
        raise exception.InvalidInput(
            reason='server %s publishes no %s: is it an attested SEV '
            'server (%s)?' % (server.id, sm.POLICY, owner.OPT_IN_ADVICE))
    policy = sm.parse_int(policy, sm.POLICY)
    mode = (launch_digest.MODE_SEV_ES if policy & owner.SEV_POLICY_ES
            else launch_digest.MODE_SEV)
    if args.mode not in (None, mode):
        raise exception.InvalidInput(
            reason='server %s is launched with policy 0x%04x, which is %s, '
            'not --mode %s' % (server.id, policy, mode, args.mode))
    refusal = None
    published = server.metadata.get(sm.FIRMWARE_SHA256)
    if published:
        refusal = owner.firmware_refusal(firmware, published,
                                         sm.FIRMWARE_SHA256, 'sha256')
    return (launch_digest.LaunchInputs(
        mode=mode, ovmf=args.ovmf, vcpus=args.vcpus or server.vcpus,
        vcpu_type=args.vcpu_type, vcpu_sig=args.vcpu_sig,
        kernel=args.kernel, initrd=args.initrd, append=args.append),
        refusal, {'server': server.id, 'policy': sm.format_policy(policy),
                  'firmware_sha256': published, 'vcpus': server.vcpus})


def run(args) -> int:
    server = servers.load_server(args)
    published = None
    if server is not None:
        inputs, refusal, published = _from_server(args, server)
        if refusal:
            return common.fail(common.EXIT_REFUSED, refusal)
    elif args.mode is None:
        raise exception.InvalidInput(
            reason='give --mode (sev, seves or snp), or --server or '
            '--server-json to take it from the server')
    else:
        inputs = launch_digest.LaunchInputs(
            mode=args.mode, ovmf=args.ovmf, vcpus=args.vcpus,
            vcpu_type=args.vcpu_type, vcpu_sig=args.vcpu_sig,
            kernel=args.kernel, initrd=args.initrd, append=args.append,
            guest_features=(launch_digest.DEFAULT_GUEST_FEATURES
                            if args.guest_features is None
                            else args.guest_features))
    launch_digest.check_inputs(inputs)
    firmware = common.read_file(args.ovmf, '--ovmf')
    digest = launch_digest.launch_digest(inputs)
    firmware_sha384 = hashlib.sha384(firmware).hexdigest()
    if args.format == 'json':
        result = result_dict(inputs, digest, firmware_sha384)
        if published is not None:
            result['published'] = published
        common.print_json(result)
    else:
        # The text names no library: not worth its version's look-up.
        result = result_dict(inputs, digest, firmware_sha384,
                             library='sev-snp-measure')
        if published is not None:
            result['published'] = published
        print(format_text(result))
    return common.EXIT_OK
