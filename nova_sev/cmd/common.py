"""What every ``nova-sev`` sub-command shares: its arguments, input files,
output format, logging and the promise of one-line errors with a fixed
exit code.

Light by design: every command imports it, ``nova-sev --help`` too. The
configuration (oslo.config, oslo.log) is in ``nova_sev.cmd.config``, the
host reading (libvirt, sysfs) in ``nova_sev.cmd.host_reading``.
"""

import argparse
import json
import re
import sys
from typing import Any

from nova_sev import exception

# Older python-openstackclient prints properties as one string,
# "hw:mem_encryption='true', trait:HW_CPU_X86_AMD_SEV='required'".
_OLD_PROPERTY = re.compile(
    r"\s*(?P<key>[^=,\s][^=]*?)='(?P<value>.*?)'\s*(?:,|$)")

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_ERROR = 2
EXIT_NOT_AUTHENTIC = 3


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--config-file', action='append', default=[], metavar='FILE',
        help='oslo.config file with a [sev] section (nova.conf works); '
             'may be given more than once')


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--format', choices=('text', 'json'), default='text',
                        help='output format (default: text)')


def add_connection_argument(parser, what: str = 'libvirt URI') -> None:
    """``--connection URI``, as ``connection.open_default_connection``
    chooses without it; ``parser`` may be a group.
    """
    parser.add_argument(
        '--connection', metavar='URI',
        help='%s (default: qemu:///system where a libvirt daemon runs, '
             'else the embedded QEMU driver)' % what)


def add_host_arguments(parser: argparse.ArgumentParser,
                       unnamed_firmware: str) -> None:
    """Where the host facts come from: a libvirt connection or another
    host's domain capabilities, firmware descriptors, ``kvm_amd``
    parameters and CPU flags. ``unnamed_firmware`` says what the command
    does about firmware for a ``--domcaps`` file without ``--firmware-dir``.
    """
    source = parser.add_mutually_exclusive_group()
    add_connection_argument(source, 'libvirt URI to examine')
    source.add_argument(
        '--domcaps', metavar='FILE',
        help='use this output of "virsh domcapabilities --virttype kvm '
             '--arch x86_64 --machine q35" (from any host) instead of '
             'connecting; give that host\'s firmware descriptors with '
             '--firmware-dir, else %s' % unnamed_firmware)
    parser.add_argument(
        '--firmware-dir', action='append', default=[], metavar='DIR',
        help='a directory of QEMU firmware descriptors of the host '
             'examined, e.g. a copy of another host\'s /etc/qemu/firmware '
             'and /usr/share/qemu/firmware; may be given more than once, an '
             'earlier one hides the same file name in later ones (default: '
             '[sev]firmware_descriptor_dirs for a local host)')
    parser.add_argument(
        '--kvm-amd-params', metavar='DIR',
        help='directory with the kvm_amd "sev", "sev_es" and "sev_snp" '
             'files (default: [sev]kvm_amd_parameters_dir, '
             '/sys/module/kvm_amd/parameters)')
    parser.add_argument(
        '--cpuinfo', metavar='FILE',
        help='the /proc/cpuinfo of the host examined, whose "hypervisor" '
             'flag says it is a virtual machine (default: /proc/cpuinfo for '
             'a local host; not read for a --domcaps file or a remote URI)')


def _unreadable(option: str, path: str, error: OSError
                ) -> exception.InvalidInput:
    return exception.InvalidInput(reason='cannot read %s %s: %s' % (
        option, path, error.strerror or error))


def read_file(path: str, option: str) -> bytes:
    """The bytes of ``path``; InvalidInput naming ``option`` if unreadable."""
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as e:
        raise _unreadable(option, path, e)


def read_text_file(path: str, option: str) -> str:
    """The UTF-8 text of ``path`` ("-": stdin), whatever the locale;
    InvalidInput naming ``option`` and the file when it cannot be read.
    """
    if path != '-':
        data = read_file(path, option)
    else:
        try:
            data = getattr(sys.stdin, 'buffer', sys.stdin).read()
        except OSError as e:
            raise _unreadable(option, path, e)
    if isinstance(data, str):
        return data
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as e:
        raise exception.InvalidInput(
            reason='%s %s is not UTF-8 text (byte 0x%02x at offset %d): '
                   'convert it (iconv -t UTF-8) or give it as virsh or '
                   'openstack print it' % (
                       option, 'from stdin' if path == '-' else path,
                       data[e.start], e.start))


def parse_json(text: str | bytes, option: str, path: str) -> Any:
    """``text`` as JSON; InvalidInput naming ``option`` and ``path`` when
    it is not JSON, or is nested deeper than Python can follow.
    """
    try:
        return json.loads(text)
    except ValueError as e:
        raise exception.InvalidInput(reason='%s %s is not JSON: %s' % (
            option, path, exception.excerpt(e, 200)))
    except RecursionError:
        raise exception.InvalidInput(
            reason='%s %s is nested too deeply to be what "openstack ... '
                   'show -f json" prints' % (option, path))


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """``--extra-spec`` and ``--image-property``: what a flavor and image
    ask, as an admin would write them.
    """
    parser.add_argument(
        '--extra-spec', action='append', default=[], metavar='K=V',
        help='a flavor extra spec, e.g. trait:HW_CPU_X86_AMD_SEV=required; '
             'may be given more than once')
    parser.add_argument(
        '--image-property', action='append', default=[], metavar='K=V',
        help='an image property, e.g. hw_mem_encryption=true; may be given '
             'more than once')


def parse_key_values(pairs: list[str], option: str) -> dict[str, str]:
    """``K=V`` arguments as a dict; InvalidInput names the bad one."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep or not key.strip():
            raise exception.InvalidInput(
                reason='%s %r is not KEY=VALUE' % (option, pair))
        result[key.strip()] = value.strip()
    return result


def parse_property_string(text: str, what: str) -> dict[str, str]:
    """Properties as older OpenStack clients print them in one string:
    ``key='value', key2='value2'``; InvalidInput naming ``what`` otherwise.
    """
    result = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _OLD_PROPERTY.match(text, pos)
        if not match:
            raise exception.InvalidInput(
                reason="%s properties %r are neither a JSON object nor "
                       "key='value' pairs" % (what, text[pos:pos + 40]))
        result[match.group('key').strip()] = match.group('value')
        pos = match.end()
    return result


def osc_properties(value: Any, what: str) -> dict[str, Any]:
    """The ``properties`` of an ``openstack ... show -f json`` document as
    a dict, whether the client printed an object (newer) or one string
    (older); InvalidInput naming ``what`` for anything else.
    """
    if value is None or value == '':
        return {}
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, str):
        return parse_property_string(value, what)
    raise exception.InvalidInput(
        reason='%s properties must be an object or a string, got %s' % (
            what, type(value).__name__))


def print_json(data: dict) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write('\n')


# The longest error line a command prints: a message that quotes its
# input is cut where it quotes, this is the last guard.
MAX_ERROR_CHARS = 2000


def one_line(message: object) -> str:
    """``message`` as one line of at most about MAX_ERROR_CHARS."""
    return exception.excerpt(' '.join(str(message).split()),
                             MAX_ERROR_CHARS)


def fail(code: int, message: str) -> int:
    """Print ``message`` as the one line the user reads; return ``code``."""
    print('nova-sev: %s' % one_line(message), file=sys.stderr)
    return code


def setup(config_files: list[str], debug: bool = False) -> None:
    """Load ``config_files`` with oslo.config and log through oslo.log, or,
    without configuration files, leave the options at their defaults and
    log through the standard library: warnings on stderr (its last-resort
    handler), everything with ``debug``. A command that reads no options
    pays for neither oslo library.
    """
    if config_files:
        from nova_sev.cmd import config  # oslo.config: only for a file
        config.load_config(config_files, debug)
    elif debug:
        import logging  # only to debug: the command's start-up otherwise
        logging.basicConfig(
            level=logging.DEBUG, force=True,
            format='%(asctime)s %(process)d %(levelname)s %(name)s '
                   '%(message)s')


def log_unexpected() -> None:
    """Log the exception being handled, with its traceback, for --debug."""
    import logging
    logging.getLogger(__name__).debug('unexpected error', exc_info=True)
