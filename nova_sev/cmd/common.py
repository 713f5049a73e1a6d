"""What every ``nova-sev`` sub-command shares: configuration, logging,
output format and the promise of one-line errors with a fixed exit code."""

import argparse
import dataclasses
import json
import os
import re
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

_logging_registered = False


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--config-file', action='append', default=[], metavar='FILE',
        help='oslo.config file with a [sev] section (nova.conf works); '
             'may be given more than once')


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--format', choices=('text', 'json'), default='text',
                        help='output format (default: text)')


def add_host_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the host facts come from: a libvirt connection or another
    host's domain capabilities, and the ``kvm_amd`` parameters.
    """
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        '--connection', metavar='URI',
        help='libvirt URI to examine (default: qemu:///system where a '
             'libvirt daemon runs, else the embedded QEMU driver)')
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


def _read_domcaps_file(path: str, kvm_amd_dir: str) -> HostReading:
    try:
        with open(path, encoding='utf-8') as f:
            xml = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise exception.InvalidInput(reason='cannot read --domcaps %s: %s'
                                     % (path, e))
    caps = host.detect_sev(host.parse_domain_capabilities(xml),
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


def load_config(config_files: list[str], debug: bool = False) -> None:
    """Load ``config_files`` into CONF and set up oslo.log on stderr."""
    global _logging_registered
    if not _logging_registered:
        logging.register_options(CONF)
        _logging_registered = True
    args = []
    for path in config_files:
        args += ['--config-file', path]
    try:
        CONF(args, project='nova-sev', default_config_files=[],
             default_config_dirs=[])
    except (cfg.Error, OSError) as e:
        raise exception.InvalidInput(reason='cannot load configuration: %s'
                                     % e)
    if debug:
        CONF.set_override('debug', True)
    else:
        # The commands print their findings; the log repeats only problems.
        logging.set_defaults(default_log_levels=(
            logging.get_default_log_levels() + ['nova_sev=WARN']))
    logging.setup(CONF, 'nova-sev')


def print_json(data: dict) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write('\n')


def fail(code: int, message: str) -> int:
    """Print ``message`` as the one line the user reads; return ``code``."""
    print('nova-sev: %s' % ' '.join(str(message).split()), file=sys.stderr)
    return code
