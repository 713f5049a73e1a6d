"""Detection of the host's SEV capabilities (spec: "Add detection of host
SEV capabilities").

Two checks are required and neither implies the other: libvirt's domain
capabilities must report ``<sev supported='yes'>`` (QEMU and the AMD Secure
Processor support SEV), and the ``kvm_amd`` module parameter ``sev`` must be
on (the kernel enabled it). Where firmware descriptors are available, an
OVMF build with the ``amd-sev`` feature must exist as well.

SEV-SNP is decided by the same function from the same facts: SEV usable,
the ``kvm_amd`` parameter ``sev_snp`` on, ``sev-snp`` among the
``<launchSecurity>`` sectypes (libvirt >= 10.5 with QEMU >= 9.1), stateless
firmware whose descriptor lists ``amd-sev-snp``, and ES/SNP ASID slots.

``detect_sev`` decides from facts already read (pure); ``SevHost`` reads
the facts once per process from libvirt and sysfs and caches the answer.
"""

from collections.abc import Callable
import dataclasses
import logging
import os
import stat

from nova_sev import exception
from nova_sev.virt.libvirt import config as vconfig
from nova_sev.virt.libvirt import firmware as fw

# The standard library's logger: oslo.log, in nova-compute, configures it
# all the same, and host-check need not load oslo.log to run.
LOG = logging.getLogger(__name__)

KVM_AMD_PARAMETERS_DIR = '/sys/module/kvm_amd/parameters'
CPUINFO = '/proc/cpuinfo'
# Values of a boolean module parameter: old kernels print 1/0, newer Y/N.
_PARAM_ON = ('1', 'Y', 'y')
_PARAM_OFF = ('0', 'N', 'n')

REMEDY_BIOS = ('enable SEV (and for SEV-ES the SEV-ES ASID space) in the '
               'BIOS/firmware settings of this AMD EPYC host')
REMEDY_STACK = ('SEV needs kernel >= 4.16, QEMU >= 2.12, libvirt >= 4.5 and '
                'an OVMF build with SEV support')
# Inside a virtual machine SEV is the hypervisor's to give: the BIOS and
# kernel remedies are the physical host's, not this one's.
REASON_VIRTUAL_MACHINE = (
    'this host is a virtual machine (its CPU flags in /proc/cpuinfo include '
    '"hypervisor") whose hypervisor offers it no SEV: SEV guests need a '
    'bare-metal AMD EPYC compute host, or a hypervisor that passes SEV '
    'through to this machine')
REMEDY_KERNEL = ('boot the host kernel with "mem_encrypt=on kvm_amd.sev=1" '
                 '(add "kvm_amd.sev_es=1" for SEV-ES) and reload kvm_amd')
REMEDY_MODULE = ('is the kvm_amd module loaded, and does '
                 '[sev]kvm_amd_parameters_dir (or --kvm-amd-params) name its '
                 'parameters directory?')
# CPU vendors, as libvirt names them, whose processors can have SEV: AMD
# EPYC, and Hygon's licensed Zen design (Linux's kvm_amd drives both).
SEV_CPU_VENDORS = ('AMD', 'Hygon')
REMEDY_SNP_KERNEL = ('SEV-SNP needs a host kernel >= 6.11 with SNP enabled '
                     'in the BIOS (SNP memory coverage, SEV-ES ASIDs) and '
                     '"kvm_amd.sev_snp=1"')
REMEDY_SNP_STACK = 'SEV-SNP needs libvirt >= 10.5 and QEMU >= 9.1'
REMEDY_SNP_FIRMWARE = (
    'install a stateless OVMF build with SEV-SNP support (an AmdSev or '
    'OVMF.fd build) and a QEMU firmware descriptor for it in '
    '/etc/qemu/firmware whose "features" list "amd-sev-snp" and whose '
    'mapping device is "memory"')
# AMD's firmware fix for CVE-2025-48514 disables SEV-ES once SNP is
# initialised, and Nova ignores SEV-ES on SNP hosts for that reason
# (Nova LP#2157891).
SEV_ES_OFF_WITH_SNP = (
    'kvm_amd parameter \'sev_snp\' is on: with SEV-SNP enabled, AMD\'s '
    'firmware fix for CVE-2025-48514 disables SEV-ES (Nova LP#2157891); '
    'ask for SEV-SNP (hw:mem_encryption_model=amd-sev-snp) instead')
KVM_AMD_PARAMETERS = ('sev', 'sev_es', 'sev_snp')


@dataclasses.dataclass(frozen=True)
class KvmAmdParam:
    """One ``kvm_amd`` parameter: on or off, and why it counts as off."""

    name: str
    enabled: bool
    reason: str | None = None


def parse_kvm_amd_param(name: str, raw: str | None,
                        error: str | None = None) -> KvmAmdParam:
    """Whether a ``kvm_amd`` parameter's file content means "on".

    ``raw`` is None when the file could not be read, ``error`` says why.
    Anything but 1/Y (0/N, garbage, a missing file) counts as off.
    """
    path = 'kvm_amd parameter %r' % name
    if raw is None:
        return KvmAmdParam(name, False, '%s could not be read (%s)'
                           % (path, error))
    value = raw.strip()
    if value in _PARAM_ON:
        return KvmAmdParam(name, True)
    if value in _PARAM_OFF:
        return KvmAmdParam(name, False, '%s is %r: the kernel has not '
                           'enabled it' % (path, value))
    return KvmAmdParam(name, False, '%s holds unexpected value %r, '
                       'expected 1/Y or 0/N' % (path, value[:40]))


# A parameter file is a few bytes; anything longer is not one.
_PARAM_READ_BYTES = 64
_FILE_KINDS = ((stat.S_ISFIFO, 'a FIFO'), (stat.S_ISDIR, 'a directory'),
               (stat.S_ISCHR, 'a character device'),
               (stat.S_ISBLK, 'a block device'), (stat.S_ISSOCK, 'a socket'))


def read_param_file(path: str) -> tuple[str | None, str | None]:
    """The start of the regular file ``path`` and None, or None and why it
    could not be read.

    Opened without blocking and read only when fstat says it is a regular
    file: a FIFO or a device in place of a sysfs file must not hang the
    caller (nova-compute's startup, host-check).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as e:
        return None, '%s: %s' % (path, e.strerror or e)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((k for test, k in _FILE_KINDS if test(mode)),
                        'not a regular file')
            return None, '%s: %s, not a regular file' % (path, kind)
        data = os.read(fd, _PARAM_READ_BYTES)
    except OSError as e:
        return None, '%s: %s' % (path, e.strerror or e)
    finally:
        os.close(fd)
    return data.decode('ascii', errors='replace'), None


def read_kvm_amd_params(directory: str = KVM_AMD_PARAMETERS_DIR
                        ) -> dict[str, KvmAmdParam]:
    """Read the ``sev``, ``sev_es`` and ``sev_snp`` parameters from
    ``directory``.
    """
    params = {}
    for name in KVM_AMD_PARAMETERS:
        raw, error = read_param_file(os.path.join(directory, name))
        params[name] = parse_kvm_amd_param(name, raw, error)
    return params


@dataclasses.dataclass(frozen=True)
class SevHostCapabilities:
    """What this host can do for SEV guests, and every reason it cannot.

    ``max_guests`` / ``max_es_guests`` are the ASID slots libvirt reports
    (libvirt >= 8.0); None when unknown. SEV-ES and SEV-SNP guests share
    the ``max_es_guests`` slots. ``firmware`` holds the descriptors with
    ``amd-sev``, ``snp_firmware`` the stateless ones with ``amd-sev-snp``;
    None when firmware was not examined (a domain capabilities file from
    another host). ``virtual_machine``: whether the CPU flags say the host
    runs under a hypervisor; None when they were not read.
    """

    sev_usable: bool
    sev_es_usable: bool
    cbitpos: int | None = None
    reduced_phys_bits: int | None = None
    max_guests: int | None = None
    max_es_guests: int | None = None
    sev_reasons: tuple[str, ...] = ()
    sev_es_reasons: tuple[str, ...] = ()
    firmware: tuple[fw.FirmwareDescriptor, ...] | None = None
    cpu_vendor: str | None = None
    sev_snp_usable: bool = False
    sev_snp_reasons: tuple[str, ...] = ()
    snp_firmware: tuple[fw.FirmwareDescriptor, ...] | None = None
    virtual_machine: bool | None = None


def _sev_offered(caps: vconfig.LibvirtConfigDomainCaps) -> bool:
    if caps.sev is not None and caps.sev.supported:
        return True
    lsec = caps.launch_security
    return bool(lsec and lsec.supported and 'sev' in lsec.sectypes)


def cpu_vendor_reason(vendor: str | None) -> str | None:
    """Why a host whose CPU comes from ``vendor`` cannot run SEV guests;
    None for an AMD (or Hygon) CPU, or when libvirt named no vendor.
    """
    if not vendor or vendor in SEV_CPU_VENDORS:
        return None
    return ('the host CPU is made by %s (libvirt\'s host CPU model): SEV '
            'needs an AMD EPYC processor (7001 "Naples" or later); run SEV '
            'guests on AMD EPYC compute hosts' % vendor)


def runs_under_hypervisor(cpuinfo: str) -> bool:
    """Whether ``/proc/cpuinfo``'s first ``flags`` line has the CPUID
    ``hypervisor`` bit, which every hypervisor sets for its guests.
    """
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(':')
        if sep and key.strip() == 'flags':
            return 'hypervisor' in value.split()
    return False


def read_cpuinfo(path: str = CPUINFO) -> bool | None:
    """``runs_under_hypervisor`` of the file ``path``; None when it cannot
    be read (the hypervisor question stays open then).
    """
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return runs_under_hypervisor(f.read())
    except OSError as e:
        LOG.debug('cannot read %s: %s', path, e)
        return None


def _kernel_reason(param: KvmAmdParam, amd: bool) -> str:
    # The kernel remedies mean nothing on a CPU that has no SEV, or in a
    # virtual machine.
    if not amd:
        return str(param.reason)
    if 'could not be read' in str(param.reason):
        return '%s: %s; %s' % (param.reason, REMEDY_MODULE, REMEDY_KERNEL)
    return '%s; %s' % (param.reason, REMEDY_KERNEL)


def _snp_reasons(domcaps: vconfig.LibvirtConfigDomainCaps | None,
                 snp_param: KvmAmdParam, sev_usable: bool,
                 max_es: int | None,
                 snp_fw: tuple[fw.FirmwareDescriptor, ...] | None,
                 amd: bool = True) -> list[str]:
    """Every reason SEV-SNP is not usable; empty when it is. ``amd``
    False (a CPU without SEV) leaves out the BIOS and kernel remedies.
    """
    reasons = []
    if not sev_usable:
        reasons.append('SEV itself is not usable')
    if not snp_param.enabled:
        reasons.append('%s; %s' % (snp_param.reason, REMEDY_SNP_KERNEL)
                       if amd else str(snp_param.reason))
    lsec = domcaps.launch_security if domcaps is not None else None
    if domcaps is not None and not (lsec and lsec.supported and
                                    'sev-snp' in lsec.sectypes):
        # libvirt 9.0 lists launch security types without sev-snp; older
        # ones have no <launchSecurity> element at all.
        offered = (', '.join(lsec.sectypes) or 'none') if lsec else (
            'no <launchSecurity> element')
        reasons.append(
            'libvirt domain capabilities offer no sev-snp launch security '
            '(sectypes: %s%s): libvirt or QEMU is too old; %s' % (
                offered, '' if lsec is None or lsec.supported else
                ", supported='no'", REMEDY_SNP_STACK))
    if max_es == 0:
        reasons.append('libvirt reports no ASID slots for SEV-ES and '
                       'SEV-SNP guests (maxESGuests=0): %s' % REMEDY_BIOS)
    if snp_fw is not None and not snp_fw:
        reasons.append('no QEMU firmware descriptor of stateless firmware '
                       'lists the amd-sev-snp feature: %s' %
                       REMEDY_SNP_FIRMWARE)
    return reasons


def detect_sev(domcaps: vconfig.LibvirtConfigDomainCaps | None,
               kvm_params: dict[str, KvmAmdParam],
               firmware: list[fw.FirmwareDescriptor] | None = None,
               domcaps_error: str | None = None,
               virtual_machine: bool | None = None) -> SevHostCapabilities:
    """Decide whether SEV, SEV-ES and SEV-SNP are usable on a host from its
    facts.

    ``domcaps`` are the KVM x86_64 q35 domain capabilities (None, with
    ``domcaps_error``, when libvirt could not give them); ``kvm_params``
    the ``kvm_amd`` parameters; ``firmware`` the QEMU firmware descriptors,
    or None to leave firmware unchecked; ``virtual_machine`` whether the
    CPU flags say a hypervisor runs the host (None: not read). With
    ``sev_snp`` on, SEV-ES is reported off, as AMD's firmware fix leaves it.
    """
    reasons = []
    es_reasons = []
    cbitpos = reduced = max_guests = max_es = None
    # The checks are of function, as the spec wants. Where libvirt offers
    # no SEV, the CPU vendor explains why, first, and drops the remedies
    # (BIOS, kernel) that an Intel host does not have; on an AMD CPU, a
    # hypervisor that offers no SEV does, the remedies being its own host's.
    first_reason = None
    if domcaps is not None and not _sev_offered(domcaps):
        first_reason = cpu_vendor_reason(domcaps.cpu_vendor)
        if first_reason is None and virtual_machine:
            first_reason = REASON_VIRTUAL_MACHINE
    amd = first_reason is None
    if domcaps is None:
        reasons.append('libvirt gave no domain capabilities for KVM x86_64 '
                       'q35 guests (%s): check that libvirt and QEMU are '
                       'installed and /dev/kvm exists' % (
                           domcaps_error or 'unknown error'))
    else:
        if domcaps.arch != 'x86_64' or domcaps.domain != 'kvm':
            reasons.append(
                'domain capabilities are for %s/%s guests, SEV needs '
                'kvm/x86_64' % (domcaps.domain, domcaps.arch))
        if 'q35' not in (domcaps.machine or ''):
            reasons.append('QEMU offers no q35 machine type (got %r): %s' %
                           (domcaps.machine, REMEDY_STACK))
        if not _sev_offered(domcaps):
            no_sev = ("libvirt domain capabilities report no SEV "
                      "(<sev supported='no'/>)")
            reasons.append('%s: %s; %s' % (no_sev, REMEDY_BIOS, REMEDY_STACK)
                           if amd else no_sev)
        sev = domcaps.sev
        if sev is not None and sev.supported:
            cbitpos, reduced = sev.cbitpos, sev.reduced_phys_bits
            # libvirt prints 0 when it could not read the ASID counts.
            max_guests = sev.max_guests or None
            max_es = sev.max_es_guests
            if cbitpos is None or reduced is None:
                reasons.append('libvirt reports SEV without cbitpos and '
                               'reducedPhysBits: upgrade to libvirt >= 4.5')
    sev_param = kvm_params.get('sev') or parse_kvm_amd_param('sev', None,
                                                             'not read')
    if not sev_param.enabled:
        reasons.append(_kernel_reason(sev_param, amd))
    sev_fw = es_fw = snp_fw = None
    if firmware is not None:
        snp_fw = tuple(d for d in firmware
                       if fw.FEATURE_AMD_SEV_SNP in d.features
                       and fw.is_stateless(d))
        sev_fw = tuple(d for d in firmware
                       if fw.FEATURE_AMD_SEV in d.features)
        es_fw = tuple(d for d in sev_fw
                      if fw.FEATURE_AMD_SEV_ES in d.features)
        if not sev_fw:
            reasons.append('no QEMU firmware descriptor lists the amd-sev '
                           'feature: install an OVMF build with SEV support '
                           '(Debian/Ubuntu package "ovmf")')
    sev_usable = not reasons

    if not sev_usable:
        es_reasons.append('SEV itself is not usable')
    es_param = kvm_params.get('sev_es') or parse_kvm_amd_param(
        'sev_es', None, 'not read')
    if not es_param.enabled:
        es_reasons.append(_kernel_reason(es_param, amd))
    if max_es == 0:
        es_reasons.append('libvirt reports no ASID slots for SEV-ES guests '
                          '(maxESGuests=0): %s' % REMEDY_BIOS)
    if first_reason and reasons:
        reasons.insert(0, first_reason)
    if es_fw is not None and not es_fw:
        es_reasons.append('no QEMU firmware descriptor lists the amd-sev-es '
                          'feature: install an OVMF build with SEV-ES '
                          'support')
    snp_param = kvm_params.get('sev_snp') or parse_kvm_amd_param(
        'sev_snp', None, 'not read')
    if snp_param.enabled:
        es_reasons.append(SEV_ES_OFF_WITH_SNP)
    snp_reasons = _snp_reasons(domcaps, snp_param, sev_usable, max_es,
                               snp_fw, amd)
    return SevHostCapabilities(
        sev_usable=sev_usable,
        sev_es_usable=not es_reasons,
        cbitpos=cbitpos,
        reduced_phys_bits=reduced,
        max_guests=max_guests,
        max_es_guests=max_es or None,
        sev_reasons=tuple(reasons),
        sev_es_reasons=tuple(es_reasons),
        firmware=sev_fw,
        cpu_vendor=domcaps.cpu_vendor if domcaps else None,
        sev_snp_usable=not snp_reasons,
        sev_snp_reasons=tuple(snp_reasons),
        snp_firmware=snp_fw,
        virtual_machine=virtual_machine)


def parse_domain_capabilities(xmlstr: str | bytes,
                              source: str | None = None
                              ) -> vconfig.LibvirtConfigDomainCaps:
    """Parse ``virsh domcapabilities`` output; InvalidLibvirtXML (naming
    ``source``, where it came from) if malformed, InvalidDomainCapabilities
    if it states impossible SEV facts.
    """
    caps = vconfig.LibvirtConfigDomainCaps()
    caps.parse_str(xmlstr, source)
    return caps


class SevHost:
    """Asks libvirt and sysfs about SEV once, and remembers the answer.

    ``get_connection`` returns an open ``virConnect``; it is called only
    when the answer is not cached yet. Call ``reset()`` after libvirt
    reconnects, so that the next question detects again. ``cpuinfo``
    names the host's ``/proc/cpuinfo`` (None: the hypervisor question is
    not asked).
    """

    def __init__(self, get_connection: Callable[[], object],
                 kvm_amd_dir: str = KVM_AMD_PARAMETERS_DIR,
                 firmware_dirs: list[str] | None = None,
                 cpuinfo: str | None = None) -> None:
        self._get_connection = get_connection
        self._kvm_amd_dir = kvm_amd_dir
        self._firmware_dirs = firmware_dirs
        self._cpuinfo = cpuinfo
        self._caps: SevHostCapabilities | None = None
        self.domcaps: vconfig.LibvirtConfigDomainCaps | None = None

    def reset(self) -> None:
        self._caps = None
        self.domcaps = None

    def _read_domcaps(self) -> tuple[vconfig.LibvirtConfigDomainCaps | None,
                                     str | None]:
        import libvirt
        try:
            conn = self._get_connection()
            xml = conn.getDomainCapabilities(None, 'x86_64', 'q35', 'kvm', 0)
        except libvirt.libvirtError as e:
            return None, str(e)
        try:
            return parse_domain_capabilities(xml), None
        except exception.InvalidLibvirtXML as e:
            return None, str(e)

    def get_capabilities(self) -> SevHostCapabilities:
        """This host's SEV capabilities, detected on the first call."""
        if self._caps is None:
            self.domcaps, error = self._read_domcaps()
            firmware = (fw.load_descriptors(self._firmware_dirs)
                        if self._firmware_dirs is not None else None)
            self._caps = detect_sev(
                self.domcaps, read_kvm_amd_params(self._kvm_amd_dir),
                firmware, error,
                read_cpuinfo(self._cpuinfo) if self._cpuinfo else None)
            log_capabilities(self._caps)
        return self._caps


def log_capabilities(caps: SevHostCapabilities) -> None:
    if caps.sev_usable:
        LOG.info('AMD SEV is usable on this host (cbitpos=%s, '
                 'reducedPhysBits=%s, ASID slots=%s); SEV-ES %s',
                 caps.cbitpos, caps.reduced_phys_bits,
                 caps.max_guests or 'unknown',
                 'usable' if caps.sev_es_usable else
                 'not usable: ' + '; '.join(caps.sev_es_reasons))
        LOG.info('AMD SEV-SNP is %s on this host',
                 'usable' if caps.sev_snp_usable else
                 'not usable: ' + '; '.join(caps.sev_snp_reasons))
    else:
        LOG.info('AMD SEV is not usable on this host: %s',
                 '; '.join(caps.sev_reasons))
