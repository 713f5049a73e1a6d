"""The SEV launch measurement and its check (AMD SEV API 6.5).

The SEV firmware hashes everything measured into the guest before it runs
(the launch digest) and proves it to the guest owner with

    measurement = HMAC-SHA256(key=TIK, 0x04 || API_MAJOR || API_MINOR ||
                              BUILD || POLICY (u32 LE) || digest || MNONCE)

libvirt reports ``sev-measurement`` = base64(measurement || MNONCE), and the
API version, build and policy next to it. The host cannot forge a
measurement without the TIK, which only the guest owner and the SEV
firmware hold: so the reported numbers can be taken as they are, and the
guest owner recomputes the digest from the images they chose.
"""

import base64
import binascii
import dataclasses
import hashlib
import hmac
import uuid

from nova_sev.attestation import guid_table
from nova_sev import exception

MEASURE_CONTEXT = 0x04
MAC_LEN = 32
MNONCE_LEN = 16
DIGEST_LEN = 32
VMSA_LEN = 4096

# Guest policy bits (AMD SEV API, section 3, Table 2).
POLICY_ES = 0x4
POLICY_FLAGS = ((0x1, 'NODBG'), (0x2, 'NOKS'), (POLICY_ES, 'ES'),
                (0x8, 'NOSEND'), (0x10, 'DOMAIN'), (0x20, 'SEV'))

# QEMU's SEV hashes table (target/i386/sev.c), read by OVMF's
# BlobVerifierLibSevHashes to check what QEMU loaded with -kernel.
HASHES_TABLE_GUID = uuid.UUID('9438d606-4f22-4cc9-b479-a793d411fd21')
CMDLINE_HASH_GUID = uuid.UUID('97d02dd8-bd20-4c94-aa78-e7714d36ab2a')
INITRD_HASH_GUID = uuid.UUID('44baf731-3a2f-4bd7-9af1-41e29169781d')
KERNEL_HASH_GUID = uuid.UUID('4de79437-abd2-427f-b835-d5b172d2045b')
HASHES_LEN_SIZE = 2

# Where a launch's reported values travel: libvirt's launchSecurityInfo()
# key -> the server property that carries it to the guest owner. Fixed here
# so that the side that publishes them and the owner's tools agree.
LAUNCH_PROPERTIES = (
    ('sev-measurement', 'sev_measurement'),
    ('sev-api-major', 'sev_api_major'),
    ('sev-api-minor', 'sev_api_minor'),
    ('sev-build-id', 'sev_build_id'),
    ('sev-policy', 'sev_policy'),
)


def launch_properties(launch_security_info: dict) -> dict:
    """The server properties for libvirt's launch security info of an
    SEV guest (a missing value is None).
    """
    return {prop: launch_security_info.get(key)
            for key, prop in LAUNCH_PROPERTIES}


@dataclasses.dataclass(frozen=True)
class LaunchReport:
    """What the host reports about a launch (libvirt's launch security
    info): the measurement with its nonce, and the numbers it covers.
    """

    mac: bytes
    mnonce: bytes
    api_major: int
    api_minor: int
    build_id: int
    policy: int

    @property
    def sev_es(self) -> bool:
        """Whether the policy asks for SEV-ES (VMSA pages are measured)."""
        return bool(self.policy & POLICY_ES)


def parse_measurement(text: str) -> tuple[bytes, bytes]:
    """The measurement MAC and MNONCE of libvirt's base64
    ``sev-measurement``; InvalidMeasurement when it is not 48 bytes of
    strict base64.
    """
    if not isinstance(text, str):
        raise exception.InvalidMeasurement(measurement=text,
                                           reason='not text')
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise exception.InvalidMeasurement(
            measurement=text, reason='not base64 (%s)' % e)
    if len(raw) != MAC_LEN + MNONCE_LEN:
        raise exception.InvalidMeasurement(
            measurement=text, reason='it decodes to %d bytes, not %d '
            '(measurement and nonce)' % (len(raw), MAC_LEN + MNONCE_LEN))
    return raw[:MAC_LEN], raw[MAC_LEN:]


def encode_measurement(mac: bytes, mnonce: bytes) -> str:
    """libvirt's ``sev-measurement`` text for ``mac`` and ``mnonce``."""
    return base64.b64encode(mac + mnonce).decode('ascii')


def parse_number(value: int | str, name: str, maximum: int) -> int:
    """``value`` (an int, or text in decimal or ``0x`` hex) as an int in
    0..``maximum``; InvalidLaunchValue naming ``name`` otherwise.
    """
    if isinstance(value, bool):
        raise exception.InvalidLaunchValue(name=name, value=value,
                                           maximum=maximum)
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip().lower()
        try:
            number = int(text, 16) if text.startswith('0x') else int(text, 10)
        except ValueError:
            raise exception.InvalidLaunchValue(name=name, value=value,
                                               maximum=maximum)
    if not 0 <= number <= maximum:
        raise exception.InvalidLaunchValue(name=name, value=value,
                                           maximum=maximum)
    return number


def launch_report(measurement: str, api_major: int | str,
                  api_minor: int | str, build_id: int | str,
                  policy: int | str) -> LaunchReport:
    """A LaunchReport from the values as libvirt or Nova print them."""
    mac, mnonce = parse_measurement(measurement)
    return LaunchReport(
        mac=mac, mnonce=mnonce,
        api_major=parse_number(api_major, 'API major version', 0xff),
        api_minor=parse_number(api_minor, 'API minor version', 0xff),
        build_id=parse_number(build_id, 'build id', 0xff),
        policy=parse_number(policy, 'policy', 0xffffffff))


def describe_policy(policy: int) -> str:
    """``0x0033 (NODBG,NOKS,DOMAIN,SEV)``: the policy and its flags."""
    flags = [name for bit, name in POLICY_FLAGS if policy & bit]
    return '0x%04x (%s)' % (policy, ','.join(flags) or 'no flags')


def cmdline_sha256(cmdline: str | None) -> bytes:
    """What QEMU hashes for the kernel command line: its UTF-8 bytes and
    the trailing NUL; an absent command line is the empty string.
    """
    return hashlib.sha256((cmdline or '').encode('utf-8') + b'\0').digest()


def kernel_hashes_table(kernel: bytes, initrd: bytes | None,
                        cmdline: str | None) -> bytes:
    """QEMU's padded SEV hashes table for a direct kernel boot with
    ``kernelHashes='yes'``: command line, initrd and kernel hashes, in
    that order, padded to 16 bytes. An absent initrd hashes as empty.
    """
    entries = [
        (CMDLINE_HASH_GUID, cmdline_sha256(cmdline)),
        (INITRD_HASH_GUID, hashlib.sha256(initrd or b'').digest()),
        (KERNEL_HASH_GUID, hashlib.sha256(kernel).digest()),
    ]
    return guid_table.pad_to_block(guid_table.build_table(
        HASHES_TABLE_GUID, entries, HASHES_LEN_SIZE))


def vmsa_pages(num_cpus: int, vmsa_cpu0: bytes,
               vmsa_cpu1: bytes | None) -> bytes:
    """The VMSA pages an SEV-ES launch measures: the boot CPU's, then the
    same page for every other vCPU (LAUNCH_UPDATE_VMSA, one per vCPU).
    """
    if num_cpus < 1:
        raise exception.InvalidVmsa(reason='the guest must have at least '
                                    'one vCPU, not %d (--num-cpus)'
                                    % num_cpus)
    if num_cpus > 1 and vmsa_cpu1 is None:
        raise exception.InvalidVmsa(
            reason='%d vCPUs need the VMSA of the other vCPUs too '
            '(--vmsa-cpu1)' % num_cpus)
    for name, page in (('--vmsa-cpu0', vmsa_cpu0), ('--vmsa-cpu1', vmsa_cpu1)):
        if page is not None and len(page) != VMSA_LEN:
            raise exception.InvalidVmsa(
                reason='%s is %d bytes, a VMSA page is %d' % (
                    name, len(page), VMSA_LEN))
    return vmsa_cpu0 + (vmsa_cpu1 or b'') * (num_cpus - 1)


def launch_digest(firmware: bytes, hashes_table: bytes = b'',
                  vmsa: bytes = b'') -> bytes:
    """SHA-256 of what the launch measured, in QEMU's order: the
    firmware, the kernel hashes table (empty without kernel hashes), then
    for SEV-ES the VMSA pages.
    """
    digest = hashlib.sha256(firmware)
    digest.update(hashes_table)
    digest.update(vmsa)
    return digest.digest()


def parse_digest(text: str) -> bytes:
    """A launch digest given as 64 hex digits."""
    try:
        digest = bytes.fromhex(text.strip())
    except ValueError:
        digest = b''
    if len(digest) != DIGEST_LEN:
        raise exception.InvalidLaunchDigest(digest=text)
    return digest


def measurement_message(report: LaunchReport, digest: bytes) -> bytes:
    """The bytes the SEV firmware MACs for LAUNCH_MEASURE."""
    return (bytes([MEASURE_CONTEXT, report.api_major, report.api_minor,
                   report.build_id]) +
            report.policy.to_bytes(4, 'little') + digest + report.mnonce)


def compute_measurement(tik: bytes, report: LaunchReport,
                        digest: bytes) -> bytes:
    """The measurement the SEV firmware gives for ``digest``."""
    return hmac.new(tik, measurement_message(report, digest),
                    hashlib.sha256).digest()


def measurement_matches(tik: bytes, report: LaunchReport,
                        digest: bytes) -> bool:
    """Whether the reported measurement proves a launch of ``digest``.

    The comparison is constant-time: a timing difference must not tell a
    forger how much of a guessed MAC was right.
    """
    return hmac.compare_digest(compute_measurement(tik, report, digest),
                               report.mac)
