"""The expected launch digest of an SEV, SEV-ES or SEV-SNP guest.

The digest itself is virtee's ``sev-snp-measure`` (the ``sevsnpmeasure``
package): firmware pages, QEMU's kernel hashes table, the VMSA QEMU builds
for each vCPU of the given type and, for SNP, the metadata pages OVMF
declares, in the order the firmware measures them. This module is the only
place nova-sev calls it: it names the inputs as QEMU launches with them
and turns the library's errors into one that says which input to change.

What nova-sev adds is the inputs: ``nova-sev launch-info`` reads them from
the domain libvirt really runs (``nova_sev.attestation.launch_inputs``).
"""

import typing

from nova_sev import exception

# sev-snp-measure is the guest owner's: the [owner] extra (setup.cfg), not
# in OpenStack's upper constraints, so absent from a compute host's
# environment. Without it the commands that measure say how to install it.
try:
    from sevsnpmeasure import guest as snp_guest
    from sevsnpmeasure import sev_mode as snp_sev_mode
    from sevsnpmeasure import vcpu_types as snp_vcpu_types
    from sevsnpmeasure import vmm_types as snp_vmm_types
except ImportError as e:
    _LIBRARY_MISSING: ImportError | None = e
else:
    _LIBRARY_MISSING = None

MODE_SEV = 'sev'
MODE_SEV_ES = 'seves'
MODE_SNP = 'snp'
MODES = (MODE_SEV, MODE_SEV_ES, MODE_SNP)

# The library's names of the modes (sevsnpmeasure.sev_mode.SevMode).
_LIBRARY_MODES = {MODE_SEV: 'SEV', MODE_SEV_ES: 'SEV_ES', MODE_SNP: 'SEV_SNP'}

# SEV_FEATURES of an SNP guest's VMSA when nothing else is asked: SNPActive
# (bit 0), what QEMU sets for a sev-snp-guest without other features and
# the library's default.
DEFAULT_GUEST_FEATURES = 0x1

# How long each digest is: SHA-256 for SEV and SEV-ES (LAUNCH_MEASURE),
# SHA-384 for SNP (SNP ABI, the MEASUREMENT of the attestation report).
DIGEST_LEN = {MODE_SEV: 32, MODE_SEV_ES: 32, MODE_SNP: 48}


class LaunchInputs(typing.NamedTuple):
    """What a launch measures, as the host launches it.

    A named tuple rather than a dataclass: ``expected-measurement`` would
    load ``dataclasses`` (and ``inspect``, ``ast``) for this class alone.

    ``vcpu_sig`` is the CPUID signature (family, model, stepping) QEMU puts
    in each vCPU's RDX at reset, which is the part of the VMSA the vCPU type
    decides; it is derived from ``vcpu_type`` unless given directly (for
    ``-cpu host``, whose signature is the host's).
    """

    mode: str
    ovmf: str
    vcpus: int | None = None
    vcpu_type: str | None = None
    vcpu_sig: int | None = None
    kernel: str | None = None
    initrd: str | None = None
    append: str | None = None
    guest_features: int = DEFAULT_GUEST_FEATURES


def require_library() -> None:
    """OwnerToolsMissing unless sev-snp-measure can be imported."""
    if _LIBRARY_MISSING is not None:
        raise exception.OwnerToolsMissing(error=_LIBRARY_MISSING)


def vcpu_type_names() -> tuple[str, ...]:
    """The QEMU CPU models whose signature is known, in the library's
    order; none without the library (for help texts, which must work).
    """
    if _LIBRARY_MISSING is not None:
        return ()
    return tuple(snp_vcpu_types.CPU_SIGS)


def vcpu_signature(vcpu_type: str) -> int:
    """The CPUID signature of QEMU CPU model ``vcpu_type``; InvalidInput
    listing the known models otherwise.
    """
    require_library()
    try:
        return snp_vcpu_types.CPU_SIGS[vcpu_type]
    except KeyError:
        raise exception.InvalidInput(
            reason='unknown vCPU type %r: give one of %s, or --vcpu-sig '
            'with the CPUID signature of the guest CPU (for -cpu host)'
            % (vcpu_type, ', '.join(vcpu_type_names())))


def cpu_signature(family: int, model: int, stepping: int) -> int:
    """The CPUID Fn0000_0001_EAX signature of a CPU (AMD pub. 25481)."""
    require_library()
    return snp_vcpu_types.cpu_sig(family, model, stepping)


def check_inputs(inputs: LaunchInputs) -> int:
    """The vCPU signature ``inputs`` measure with (0 for SEV, which
    measures no VMSA); InvalidLaunchInputs naming the option that is
    missing or does not belong.
    """
    def refuse(reason):
        raise exception.InvalidLaunchInputs(mode=inputs.mode, reason=reason)

    if inputs.mode not in MODES:
        refuse('unknown mode: give one of %s' % ', '.join(MODES))
    if inputs.kernel is None and (inputs.initrd is not None or
                                  inputs.append is not None):
        refuse('--initrd and --append are measured only with a direct '
               'kernel boot: give --kernel too')
    if inputs.vcpu_type is not None and inputs.vcpu_sig is not None:
        refuse('give --vcpu-type or --vcpu-sig, not both')
    if inputs.mode == MODE_SEV:
        # SEV measures no vCPU state: these cannot change the digest.
        return 0
    if inputs.vcpus is None or inputs.vcpus < 1:
        refuse('%s measures one VMSA per vCPU: give --vcpus N (N >= 1, '
               'the domain\'s <vcpu>)' % inputs.mode)
    if inputs.mode != MODE_SNP and (inputs.guest_features !=
                                    DEFAULT_GUEST_FEATURES):
        refuse('--guest-features is an SNP input')
    if not 0 <= inputs.guest_features < 2 ** 64:
        refuse('--guest-features must fit in 64 bits')
    if inputs.vcpu_sig is not None:
        if not 0 <= inputs.vcpu_sig < 2 ** 32:
            refuse('--vcpu-sig must fit in 32 bits')
        return inputs.vcpu_sig
    if inputs.vcpu_type is None:
        refuse('%s measures the vCPU type: give --vcpu-type NAME (the '
               'QEMU -cpu model) or --vcpu-sig' % inputs.mode)
    return vcpu_signature(inputs.vcpu_type)


def launch_digest(inputs: LaunchInputs) -> bytes:
    """The launch digest the firmware will report for ``inputs``: what
    LAUNCH_MEASURE's HMAC covers (SEV, SEV-ES) or the MEASUREMENT of the
    SNP attestation report. InvalidLaunchInputs when the inputs cannot
    be measured (unreadable files, a firmware without what the mode
    needs).
    """
    require_library()
    vcpu_sig = check_inputs(inputs)
    try:
        return snp_guest.calc_launch_digest(
            snp_sev_mode.SevMode[_LIBRARY_MODES[inputs.mode]], inputs.vcpus,
            vcpu_sig, inputs.ovmf, inputs.kernel, inputs.initrd, inputs.append,
            inputs.guest_features, vmm_type=snp_vmm_types.VMMType.QEMU)
    except OSError as e:
        raise exception.InvalidLaunchInputs(
            mode=inputs.mode, reason='cannot read %s: %s' % (
                e.filename, e.strerror or e))
    except (RuntimeError, ValueError, KeyError, AssertionError) as e:
        # The library's own words: a firmware without the SEV-ES reset
        # block, SNP metadata or kernel hashes table, or too short to
        # hold OVMF's footer table.
        raise exception.InvalidLaunchInputs(
            mode=inputs.mode, reason='%s (is %s an OVMF build for %s%s?)' % (
                e or type(e).__name__, inputs.ovmf, inputs.mode,
                ' with kernel hashes' if inputs.kernel else ''))


def describe(inputs: LaunchInputs) -> dict:
    """The inputs as the output of ``expected-measurement`` lists them."""
    sig = None
    if inputs.mode != MODE_SEV:
        sig = check_inputs(inputs)
    return {
        'mode': inputs.mode,
        'ovmf': inputs.ovmf,
        'vcpus': inputs.vcpus if inputs.mode != MODE_SEV else None,
        'vcpu_type': inputs.vcpu_type if inputs.mode != MODE_SEV else None,
        'vcpu_sig': '0x%x' % sig if sig is not None else None,
        'kernel': inputs.kernel,
        'initrd': inputs.initrd,
        'append': inputs.append,
        'guest_features': ('0x%x' % inputs.guest_features
                           if inputs.mode == MODE_SNP else None),
    }


def snp_inputs(facts, ovmf: str, kernel: str | None, initrd: str | None,
               append: str | None, vcpu_type: str | None = None,
               vcpu_sig: int | None = None) -> LaunchInputs:
    """The SNP launch the guest owner expects: their own firmware and
    kernel files with the vCPUs and guest features a server publishes
    (``owner.SnpFacts``); ``vcpu_type`` or ``vcpu_sig`` where it publishes
    no signature (host-passthrough vCPUs). InvalidLaunchInputs when the
    kernel files and the published kernel hashes disagree, or the
    signature is missing or given twice.
    """
    given = vcpu_type is not None or vcpu_sig is not None
    if facts.vcpu_sig is not None and given:
        raise exception.InvalidLaunchInputs(
            mode=MODE_SNP, reason='the server publishes its vCPU signature '
            '(nova-sev:snp-vcpu-sig=0x%x): drop --vcpu-type and --vcpu-sig'
            % facts.vcpu_sig)
    if facts.vcpu_sig is None and not given:
        raise exception.InvalidLaunchInputs(
            mode=MODE_SNP, reason='the server publishes no vCPU signature '
            '(its vCPUs are the host\'s): give --vcpu-sig, the signature '
            'of the host CPU, or --vcpu-type')
    if facts.kernel_hashes and kernel is None:
        raise exception.InvalidLaunchInputs(
            mode=MODE_SNP, reason='the server launches with kernel hashes '
            '(nova-sev:snp-kernel-hashes=on): give --kernel (and --initrd, '
            '--append) of the kernel you expect')
    if not facts.kernel_hashes and kernel is not None:
        raise exception.InvalidLaunchInputs(
            mode=MODE_SNP, reason='the server launches without kernel '
            'hashes (nova-sev:snp-kernel-hashes=off), so the kernel is not '
            'measured: drop --kernel, --initrd and --append')
    return LaunchInputs(mode=MODE_SNP, ovmf=ovmf, vcpus=facts.vcpus,
                        vcpu_type=vcpu_type,
                        vcpu_sig=(facts.vcpu_sig if facts.vcpu_sig is not None
                                  else vcpu_sig),
                        kernel=kernel, initrd=initrd, append=append,
                        guest_features=facts.guest_features)
