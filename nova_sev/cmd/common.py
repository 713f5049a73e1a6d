"""What every ``nova-sev`` sub-command shares: configuration, logging,
output format and the promise of one-line errors with a fixed exit code."""

import argparse
import contextlib
import dataclasses
import io
import json
import os
import re
import stat
import sys
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from nova_sev.cmd import connection
from nova_sev import conf as sev_conf
from nova_sev import exception
from nova_sev.virt.libvirt import host

CONF = sev_conf.CONF
LOG = logging.getLogger(__name__)

# Older python-openstackclient prints properties as one string,
# "hw:mem_encryption='true', trait:HW_CPU_X86_AMD_SEV='required'".
_OLD_PROPERTY = re.compile(
    r"\s*(?P<key>[^=,\s][^=]*?)='(?P<value>.*?)'\s*(?:,|$)")

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_ERROR = 2
EXIT_NOT_AUTHENTIC = 3

_logging_registered = False
_CLI_VALUE_ERROR = re.compile(
    r'argument --(?P<dest>[\w-]+): Invalid (?P<type>.+?) value')


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


def add_host_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the host facts come from: a libvirt connection or another
    host's domain capabilities, and the ``kvm_amd`` parameters.
    """
    source = parser.add_mutually_exclusive_group()
    add_connection_argument(source, 'libvirt URI to examine')
    source.add_argument(
        '--domcaps', metavar='FILE',
        help='use this output of "virsh domcapabilities --virttype kvm '
             '--arch x86_64 --machine q35" (from any host) instead of '
             'connecting; firmware on that host is not checked then')
    parser.add_argument(
        '--kvm-amd-params', metavar='DIR',
        help='directory with the kvm_amd "sev" and "sev_es" files (default: '
             '[sev]kvm_amd_parameters_dir, /sys/module/kvm_amd/parameters)')


@dataclasses.dataclass(frozen=True)
class HostReading:
    """A host's SEV capabilities and where they were read."""

    caps: host.SevHostCapabilities
    source: str
    versions: dict[str, str]


def kvm_amd_dir(args: argparse.Namespace) -> str:
    """The ``kvm_amd`` parameter directory to read; InvalidInput when
    ``--kvm-amd-params`` names no directory.
    """
    if args.kvm_amd_params and not os.path.isdir(args.kvm_amd_params):
        raise exception.InvalidInput(
            reason='--kvm-amd-params %s is not a directory'
            % args.kvm_amd_params)
    return args.kvm_amd_params or CONF.sev.kvm_amd_parameters_dir


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


def _read_domcaps_file(path: str, kvm_amd_dir: str) -> HostReading:
    xml = read_text_file(path, '--domcaps')
    caps = host.detect_sev(host.parse_domain_capabilities(xml, path),
                           host.read_kvm_amd_params(kvm_amd_dir))
    return HostReading(caps, path, {})


def _read_connection(uri: str | None, kvm_amd_dir: str) -> HostReading:
    if uri:
        conn = connection.open_connection(uri)
    else:
        conn, uri = connection.open_default_connection()
    try:
        # Firmware descriptors on this machine describe only this machine.
        firmware_dirs = (CONF.sev.firmware_descriptor_dirs
                         if connection.is_local(uri) else None)
        caps = host.SevHost(lambda: conn, kvm_amd_dir,
                            firmware_dirs).get_capabilities()
        versions = {
            'libvirt': connection.version_string(conn.getLibVersion()),
            'qemu': connection.version_string(conn.getVersion())}
    finally:
        conn.close()
    return HostReading(caps, uri, versions)


def read_host(args: argparse.Namespace) -> HostReading:
    """The SEV capabilities of the host that ``add_host_arguments``'
    options name; InvalidInput or HostCheckFailed when it cannot be read.
    """
    params_dir = kvm_amd_dir(args)
    if args.domcaps:
        return _read_domcaps_file(args.domcaps, params_dir)
    return _read_connection(args.connection, params_dir)


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


def conf_machine_types(config_files: list[str]) -> list[str] | None:
    """``[libvirt]hw_machine_type`` of the configuration files.

    Read into a private ConfigOpts: registering Nova's option on the global
    CONF would clash with Nova's own registration of it.
    """
    local = cfg.ConfigOpts()
    local.register_opt(cfg.ListOpt('hw_machine_type'), group='libvirt')
    args = []
    for path in config_files:
        args += ['--config-file', path]
    try:
        local(args, project='nova-sev', default_config_files=[],
              default_config_dirs=[])
        return local.libvirt.hw_machine_type
    except (cfg.Error, OSError) as e:
        raise exception.InvalidInput(
            reason='cannot read [libvirt]hw_machine_type: %s' % e)


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


def _check_config_text(config_files: list[str]) -> None:
    """Refuse a --config-file that is not UTF-8 text (a binary, say), by
    name, before oslo.config trips over it.
    """
    for path in config_files:
        try:
            # Only regular files: a pipe (--config-file <(...)) would be
            # consumed here and read empty by oslo.config.
            if not stat.S_ISREG(os.stat(path).st_mode):
                continue
            with open(path, 'rb') as f:
                data = f.read()
        except OSError:
            continue  # oslo.config says which file is missing
        try:
            data.decode('utf-8')
        except UnicodeDecodeError as e:
            raise exception.InvalidInput(
                reason='--config-file %s is not a text configuration file '
                       '(byte 0x%02x at offset %d is not UTF-8)' % (
                           path, data[e.start], e.start))


def _option_source(config_files: list[str], group: str, name: str
                   ) -> tuple[str, str]:
    """The file that sets ``[group]name`` and its raw value, as oslo.config
    reads them (the last file wins).
    """
    for path in reversed(config_files):
        sections: dict = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (cfg.Error, OSError, ValueError):
            continue
        values = sections.get(group, {}).get(name)
        if values:
            return path, repr(exception.excerpt(values[-1]))
    return ', '.join(config_files) or 'the configuration', '?'


def _check_option(conf, config_files: list[str], group: str,
                  name: str) -> Any:
    try:
        return conf[name]
    except (cfg.Error, ValueError) as e:
        path, value = _option_source(config_files, group, name)
        reason = str(e).partition(' is not valid: ')[2] or str(e)
        raise exception.InvalidConfigOption(
            group=group, option=name, value=value, path=path,
            reason=exception.excerpt(reason, 200))


def check_options(conf: cfg.ConfigOpts, config_files: list[str]) -> None:
    """Read every registered option once, so that a value of the wrong
    type or range is refused now, naming the option, the value and the
    file, rather than failing wherever the option is first used.
    """
    for name in sorted(conf):
        value = _check_option(conf, config_files, 'DEFAULT', name)
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            for opt in sorted(value):
                _check_option(value, config_files, name, opt)


def load_config(config_files: list[str], debug: bool = False) -> None:
    """Load ``config_files`` into CONF, check its values and set up
    oslo.log on stderr.
    """
    global _logging_registered
    if not _logging_registered:
        logging.register_options(CONF)
        _logging_registered = True
    _check_config_text(config_files)
    args = []
    for path in config_files:
        args += ['--config-file', path]
    # oslo.config checks the values of command-line options (oslo.log's
    # debug, log_file...) read from a file itself, and exits after
    # printing "argument --debug: Invalid Boolean value: maybe".
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            CONF(args, project='nova-sev', default_config_files=[],
                 default_config_dirs=[])
    except (cfg.Error, OSError, ValueError) as e:
        raise exception.InvalidInput(reason='cannot load configuration: %s'
                                     % exception.excerpt(e, 300))
    except SystemExit:
        match = _CLI_VALUE_ERROR.match(printed.getvalue())
        if not match:
            raise exception.InvalidInput(
                reason='cannot load configuration: %s' % exception.excerpt(
                    printed.getvalue().strip() or 'oslo.config exited', 300))
        path, value = _option_source(config_files, 'DEFAULT',
                                     match.group('dest'))
        raise exception.InvalidConfigOption(
            group='DEFAULT', option=match.group('dest'), value=value,
            path=path, reason='not a %s' % match.group('type'))
    if debug:
        CONF.set_override('debug', True)
    else:
        # The commands print their findings; the log repeats only problems.
        logging.set_defaults(default_log_levels=(
            logging.get_default_log_levels() + ['nova_sev=WARN']))
    # After set_defaults: oslo.config caches what is read, and set_defaults
    # does not clear that cache.
    check_options(CONF, config_files)
    try:
        logging.setup(CONF, 'nova-sev')
    except (OSError, ValueError) as e:
        raise exception.InvalidInput(
            reason='cannot set up logging as [DEFAULT] log_file, log_dir or '
                   'log_config_append say: %s' % exception.excerpt(e, 300))


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
