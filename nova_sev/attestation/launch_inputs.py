"""The inputs of an instance's expected launch measurement, read from the
domain libvirt runs.

What the firmware measures is what QEMU is started with: the firmware
image (``<os><loader>``: ``-bios`` for a ROM, pflash unit 0 otherwise),
the vCPUs present at launch (``<vcpu current=...>``: ``-smp N``), the CPU
model (``<cpu><model>``: ``-cpu MODEL``, which decides the VMSA's CPUID
signature), with ``kernelHashes='yes'`` the kernel, initrd and command
line, and the policy (and for SNP the HOST_DATA) of ``<launchSecurity>``.
The functional tests hold these to libvirt's own qemu-argv of the domain.

Pure: domain XML in, a ``DomainLaunch`` out.
"""

import dataclasses
import hashlib

from lxml import etree

from nova_sev.attestation import launch_digest
from nova_sev.attestation import measurement
from nova_sev import exception

# <cpu mode> values whose -cpu is not a named model: QEMU's "host" and
# "max" take the host CPU's signature.
_HOST_CPU_MODES = {'host-passthrough': 'host', 'maximum': 'max'}


@dataclasses.dataclass(frozen=True)
class DomainLaunch:
    """What a domain's launch measures; ``mode`` None: not SEV at all.

    ``vcpu_type`` is the QEMU CPU model (None where the XML does not name
    it: host-model before libvirt expands it at start), ``host_cpu`` the
    ``-cpu host``/``max`` case, whose signature is the host CPU's.
    """

    mode: str | None
    policy: int | None
    firmware: str | None
    firmware_type: str | None
    vcpus: int
    vcpu_type: str | None
    cpu_mode: str | None
    host_cpu: bool
    kernel: str | None
    initrd: str | None
    cmdline: str | None
    kernel_hashes: bool
    host_data: str | None


def _text(node, path: str) -> str | None:
    found = node.find(path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _launch_mode(sec) -> tuple[str | None, int | None]:
    if sec is None:
        return None, None
    kind = sec.get('type')
    policy_text = _text(sec, 'policy')
    policy = (measurement.parse_number(policy_text, 'launchSecurity policy',
                                       0xffffffffffffffff)
              if policy_text is not None else None)
    if kind == 'sev':
        # The ES bit of the policy makes the launch SEV-ES (VMSAs are
        # measured); a missing <policy> reads as 0.
        return (launch_digest.MODE_SEV_ES
                if (policy or 0) & measurement.POLICY_ES
                else launch_digest.MODE_SEV), policy
    if kind == 'sev-snp':
        return launch_digest.MODE_SNP, policy
    return None, policy


def domain_launch(xml: str) -> DomainLaunch:
    """The measured inputs of the domain ``xml`` (libvirt's XMLDesc);
    InvalidLibvirtXML when it does not parse.
    """
    try:
        root = etree.fromstring(xml.encode('utf-8') if isinstance(xml, str)
                                else xml)
    except etree.XMLSyntaxError as e:
        raise exception.InvalidLibvirtXML(what='domain', reason=e)
    sec = root.find('launchSecurity')
    mode, policy = _launch_mode(sec)
    loader = root.find('os/loader')
    vcpu = root.find('vcpu')
    vcpus = 1
    if vcpu is not None and vcpu.text:
        vcpus = int(vcpu.get('current') or vcpu.text)
    cpu = root.find('cpu')
    cpu_mode = cpu.get('mode', 'custom') if cpu is not None else None
    model = _text(cpu, 'model') if cpu is not None else None
    host_cpu = cpu_mode in _HOST_CPU_MODES
    vcpu_type = _HOST_CPU_MODES[cpu_mode] if host_cpu else model
    kernel_hashes = sec is not None and sec.get('kernelHashes') == 'yes'
    return DomainLaunch(
        mode=mode, policy=policy,
        firmware=loader.text.strip() if loader is not None and loader.text
        else None,
        firmware_type=loader.get('type') if loader is not None else None,
        vcpus=vcpus, vcpu_type=vcpu_type, cpu_mode=cpu_mode,
        host_cpu=host_cpu,
        kernel=_text(root, 'os/kernel'), initrd=_text(root, 'os/initrd'),
        cmdline=_text(root, 'os/cmdline'), kernel_hashes=kernel_hashes,
        host_data=_text(sec, 'hostData') if sec is not None else None)


def file_digest(path: str | None, algorithm: str) -> str | None:
    """The ``algorithm`` (hashlib's name) digest of the file at ``path``,
    in hex, as the firmware's digest is published; None when there is no
    such file to read.
    """
    if not path:
        return None
    digest = hashlib.new(algorithm)
    try:
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def cpuinfo_signature(cpuinfo: str) -> int | None:
    """The CPUID signature of the first CPU in /proc/cpuinfo (what ``-cpu
    host`` gives the guest); None when it does not say.
    """
    values = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if values:
                break
            continue
        key, _sep, value = line.partition(':')
        values[key.strip()] = value.strip()
    try:
        return launch_digest.cpu_signature(int(values['cpu family']),
                                           int(values['model']),
                                           int(values['stepping']))
    except (KeyError, ValueError):
        return None


def expected_measurement_argv(launch: DomainLaunch,
                              host_sig: int | None = None) -> list[str]:
    """The ``nova-sev expected-measurement`` options for ``launch``;
    the kernel, initrd and command line only when they are measured.
    """
    argv = ['--mode', launch.mode, '--ovmf', launch.firmware or 'FILE']
    if launch.mode != launch_digest.MODE_SEV:
        argv += ['--vcpus', str(launch.vcpus)]
        if launch.host_cpu:
            argv += ['--vcpu-sig', '0x%x' % host_sig if host_sig is not None
                     else 'HOST_CPU_SIGNATURE']
        else:
            argv += ['--vcpu-type', launch.vcpu_type or 'MODEL']
    if launch.kernel_hashes and launch.kernel:
        argv += ['--kernel', launch.kernel]
        if launch.initrd:
            argv += ['--initrd', launch.initrd]
        if launch.cmdline:
            argv += ['--append', launch.cmdline]
    return argv
