"""How the host commands (``host-check``, ``guest-xml``) read a host's SEV
capabilities: from a libvirt connection or another host's domain
capabilities, and the ``kvm_amd`` parameters.
"""

import argparse
import dataclasses
import os
from typing import Any

from nova_sev.cmd import common
from nova_sev.cmd import connection
from nova_sev import exception
from nova_sev.virt.libvirt import firmware as fw
from nova_sev.virt.libvirt import host

# The defaults of the [sev] options these commands read
# (nova_sev/conf/sev.py; a unit test holds them equal), for a run without
# --config-file: that needs no oslo.config.
_SEV_DEFAULTS = {
    'kvm_amd_parameters_dir': host.KVM_AMD_PARAMETERS_DIR,
    'firmware_descriptor_dirs': list(fw.DEFAULT_DESCRIPTOR_DIRS),
}


def sev_option(args: argparse.Namespace, name: str) -> Any:
    """``[sev]name`` as ``--config-file`` sets it, else its default."""
    if getattr(args, 'config_file', None):
        from nova_sev.cmd import config  # loaded by common.setup already
        return config.CONF.sev[name]
    return _SEV_DEFAULTS[name]


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
    return args.kvm_amd_params or sev_option(
        args, 'kvm_amd_parameters_dir')


def firmware_dirs(args: argparse.Namespace) -> list[str]:
    """The ``--firmware-dir`` directories; InvalidInput for one that is
    not a directory.
    """
    for path in args.firmware_dir:
        if not os.path.isdir(path):
            raise exception.InvalidInput(
                reason='--firmware-dir %s is not a directory' % path)
    return list(args.firmware_dir)


def _cpuinfo(args: argparse.Namespace) -> str | None:
    """The ``--cpuinfo`` file, once it is known to be readable."""
    if args.cpuinfo:
        common.read_text_file(args.cpuinfo, '--cpuinfo')
    return args.cpuinfo


def _read_domcaps_file(path: str, kvm_amd_dir: str,
                       firmware: list[str], cpuinfo: str | None
                       ) -> HostReading:
    xml = common.read_text_file(path, '--domcaps')
    caps = host.detect_sev(
        host.parse_domain_capabilities(xml, path),
        host.read_kvm_amd_params(kvm_amd_dir),
        fw.load_descriptors(firmware) if firmware else None,
        virtual_machine=host.read_cpuinfo(cpuinfo) if cpuinfo else None)
    return HostReading(caps, path, {})


def _read_connection(uri: str | None, kvm_amd_dir: str,
                     firmware: list[str], cpuinfo: str | None,
                     args: argparse.Namespace) -> HostReading:
    if uri:
        conn = connection.open_connection(uri)
    else:
        conn, uri = connection.open_default_connection()
    try:
        # This machine's firmware descriptors and CPU flags describe only
        # this machine.
        if connection.is_local(uri):
            firmware = firmware or sev_option(args,
                                              'firmware_descriptor_dirs')
            cpuinfo = cpuinfo or host.CPUINFO
        caps = host.SevHost(lambda: conn, kvm_amd_dir, firmware or None,
                            cpuinfo).get_capabilities()
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
    firmware = firmware_dirs(args)
    cpuinfo = _cpuinfo(args)
    if args.domcaps:
        return _read_domcaps_file(args.domcaps, params_dir, firmware,
                                  cpuinfo)
    return _read_connection(args.connection, params_dir, firmware, cpuinfo,
                            args)
