"""``nova-sev session``: the guest owner's launch session for one SEV
platform, as ``sevctl session`` makes it.

Wraps a fresh TEK and TIK for the platform's PDH (libvirt's
``getSEVInfo()`` "pdh", ``virsh domcapabilities``' ``<sev>``, or ``sevctl
export``) and the guest POLICY (decimal or 0x hex), and writes
NAME_godh.b64 and NAME_session.b64 (for QEMU's dh-cert-file and
session-file, libvirt's <dhCert> and <session>) and NAME_tek.bin and
NAME_tik.bin (the keys; readable by you only) - NAME is "vm" unless
--name says otherwise. Keep the keys: verify-measurement and build-secret
read them with --name NAME.

--cert-chain checks first that the PDH belongs to a genuine AMD chip: PEK
-> PDH, OCA and CEK -> PEK, ASK -> CEK and ARK -> ASK, up to the built-in
AMD roots of Naples, Rome, Milan and Genoa (or --ask/--ark). Without it
the PDH is NOT verified and a host could have given its own key. Run it
on a machine you trust, never on the compute host.

Exit status: 0 written; 2 bad input (nothing written); 3 the certificates
are not authentic (nothing written).
"""

import argparse
import errno
import os
import stat
import tempfile

from nova_sev.attestation import measurement
from nova_sev.cmd import common
from nova_sev import exception

DEFAULT_NAME = 'vm'
# Far above a full sevctl chain in base64 (about 16 KiB): anything larger
# is not a certificate.
MAX_INPUT_BYTES = 64 * 1024
OUTPUTS = (('godh', '_godh.b64', 0o644), ('session', '_session.b64', 0o644),
           ('tek', '_tek.bin', 0o600), ('tik', '_tik.bin', 0o600))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('pdh', metavar='PDH',
                        help="the platform's PDH certificate (raw or "
                             "base64)")
    parser.add_argument('policy', metavar='POLICY',
                        help='the guest policy the launch will have, '
                             'decimal or 0x hex (e.g. 0x3)')
    parser.add_argument('--name', default=DEFAULT_NAME,
                        help='prefix of the files written (default: %s)'
                        % DEFAULT_NAME)
    group = parser.add_argument_group('verifying the PDH')
    group.add_argument('--cert-chain', metavar='FILE',
                       help='PEK|OCA|CEK (libvirt getSEVInfo() '
                            '"cert-chain", raw or base64) or a sevctl '
                            'export chain (PDH|PEK|OCA|CEK[|ASK|ARK])')
    group.add_argument('--ask', metavar='FILE',
                       help='trust this ASK instead of the built-in AMD '
                            'roots (labs, tests); needs --ark')
    group.add_argument('--ark', metavar='FILE',
                       help='the ARK that signed --ask')
    # No --config-file: the command reads no configuration option.
    common.add_format_argument(parser)


def output_paths(name: str) -> dict[str, str]:
    """The files ``sevctl session --name NAME`` writes, by what they
    hold.
    """
    return {what: name + suffix for what, suffix, _mode in OUTPUTS}


def read_regular_file(path: str, option: str, limit: int) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most
    ``limit`` bytes; InvalidInput naming ``option`` otherwise (a FIFO or
    a device would block or never end).
    """
    try:
        info = os.stat(path)
    except OSError:
        info = None  # read_file names the error as every command does
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise exception.InvalidInput(
            reason='%s %s is not a regular file (it is a %s): give the '
            'file itself' % (option, path, _file_kind(info.st_mode)))
    if info is not None and info.st_size > limit:
        raise exception.InvalidInput(
            reason='%s %s is larger than %d bytes: that is not what it '
            'should hold' % (option, path, limit))
    return common.read_file(path, option)


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, 'FIFO'), (stat.S_ISDIR, 'directory'),
                       (stat.S_ISCHR, 'character device'),
                       (stat.S_ISBLK, 'block device'),
                       (stat.S_ISSOCK, 'socket')):
        if test(mode):
            return kind
    return 'special file'


def _read_cert_file(path: str, option: str) -> bytes:
    from nova_sev.attestation import sev_cert
    data = read_regular_file(path, option, MAX_INPUT_BYTES)
    return sev_cert.decode_blob(data, '%s %s' % (option, path))


def _roots(args):
    from nova_sev.attestation import sev_cert
    if (args.ask is None) != (args.ark is None):
        raise exception.InvalidInput(
            reason='--ask and --ark trust another root together: give both')
    if args.ask is None:
        return sev_cert.builtin_roots()
    if args.cert_chain is None:
        raise exception.InvalidInput(
            reason='--ask/--ark are the root of --cert-chain: give it too')
    ask = sev_cert.parse_ca_cert(_read_cert_file(args.ask, '--ask'),
                                 '--ask ' + args.ask, sev_cert.USAGE_ASK)
    ark = sev_cert.parse_ca_cert(_read_cert_file(args.ark, '--ark'),
                                 '--ark ' + args.ark, sev_cert.USAGE_ARK)
    return (sev_cert.check_root(ark, ask, '--ark ' + args.ark),)


def _write_all(files: dict[str, tuple[bytes, int]]) -> None:
    """Write every file or none: each goes to a temporary file beside it
    first, and only when all are written are they renamed into place.
    """
    temps = []
    renamed = []
    try:
        for path, (data, mode) in files.items():
            directory = os.path.dirname(path) or '.'
            fd, temp = tempfile.mkstemp(dir=directory, prefix='.tmp-',
                                        suffix='-' + os.path.basename(path))
            temps.append((temp, path))
            with os.fdopen(fd, 'wb') as f:
                f.write(data)
            if mode != 0o600:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(temp, mode & ~umask)
        for _temp, path in temps:
            if os.path.isdir(path):
                raise IsADirectoryError(errno.EISDIR, 'is a directory', path)
        for temp, path in temps:
            os.replace(temp, path)
            renamed.append(path)
    except OSError as e:
        # Remove what this run made, renamed or not, so that a failure
        # leaves no half of a session behind.
        for path in [t for t, _p in temps] + renamed:
            try:
                os.unlink(path)
            except OSError:
                pass
        raise exception.InvalidInput(reason='cannot write %s: %s' % (
            getattr(e, 'filename', None) or 'the session files',
            e.strerror or e))


def write_session(name: str, launch) -> dict[str, str]:
    """Write ``launch``'s four files under ``name`` (all or none, the
    keys readable by the owner only); their paths.
    """
    paths = output_paths(name)
    contents = {'godh': launch.godh_b64.encode('ascii'),
                'session': launch.session_b64.encode('ascii'),
                'tek': launch.tek, 'tik': launch.tik}
    _write_all({paths[what]: (contents[what], mode)
                for what, _suffix, mode in OUTPUTS})
    return paths


def run(args) -> int:
    # cryptography is imported only by the command that needs it.
    from nova_sev.attestation import session
    from nova_sev.attestation import sev_cert

    policy = session.check_policy(measurement.parse_number(
        args.policy, 'POLICY', session.POLICY_MAX))
    pdh = sev_cert.parse_sev_cert(_read_cert_file(args.pdh, 'PDH'),
                                  'PDH ' + args.pdh, sev_cert.USAGE_PDH)
    product = None
    try:
        roots = _roots(args)
        if args.cert_chain is not None:
            chain = sev_cert.parse_chain(
                _read_cert_file(args.cert_chain, '--cert-chain'),
                '--cert-chain ' + args.cert_chain)
            product = sev_cert.verify_platform(chain, pdh, roots).product
    except exception.SevChainNotAuthentic as e:
        return common.fail(common.EXIT_NOT_AUTHENTIC, e)
    launch = session.new_session(pdh, policy)
    paths = write_session(args.name, launch)
    if args.format == 'json':
        common.print_json({
            'files': paths, 'policy': '0x%04x' % policy,
            'pdh_verified': product is not None, 'root': product,
            'pdh_api_version': '%d.%d' % (pdh.api_major, pdh.api_minor)})
        return common.EXIT_OK
    print('Session for policy %s written: %s and %s for the launch, %s and '
          '%s to keep (readable by you only).' % (
              measurement.describe_policy(policy), paths['godh'],
              paths['session'], paths['tek'], paths['tik']))
    if product is None:
        print('The PDH was NOT verified: give --cert-chain (libvirt '
              'getSEVInfo() "cert-chain", or sevctl export) to check that '
              'it belongs to a genuine AMD chip.')
    else:
        print('PDH verified: PEK, OCA and CEK up to the AMD %s root.'
              % product)
    return common.EXIT_OK
