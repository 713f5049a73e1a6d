"""The SEV-SNP attestation report: its layout, parsed field by field.

The guest asks its CPU's security processor for a report (MSG_REPORT_REQ,
``/dev/sev-guest``, ``snpguest report``); the firmware fills it and signs
it with the chip's VCEK. Layout: AMD SEV Secure Nested Paging Firmware ABI
Specification (pub. 56860), section 7.3 (MSG_REPORT_REQ), table
"ATTESTATION_REPORT Structure", with the guest policy of section 4.3
(table "Guest Policy Structure"), TCB_VERSION of section 2.2 and
PLATFORM_INFO of the report table's row 40h. Version 3 adds the CPUID
family, model and stepping at 188h-18Ah, which version 2 keeps reserved;
version 5 (SNP firmware 1.58, as Turin chips report) adds the mitigation
vectors at 1F8h and 200h; all are 1184 (4A0h) bytes.

Pure: bytes in, a ``Report`` out.
"""

import dataclasses

from nova_sev import exception

# The SEV-SNP product lines whose AMD roots nova-sev knows (snp_verify's
# built-in ARKs and ASKs); here, where ``verify-report --help`` can name
# them without the X.509 stack.
PRODUCTS = ('milan', 'genoa', 'turin')

REPORT_LEN = 0x4a0
SIGNED_LEN = 0x2a0      # the signature covers bytes 0h-29Fh
# Version 3 adds the CPUID family, model and stepping (188h-18Ah); 4 keeps
# 3's layout; 5 adds the launch and current mitigation vectors (1F8h,
# 200h). Reserved bytes of an older version are not read.
SUPPORTED_VERSIONS = (2, 3, 4, 5)
SIG_ALGO_ECDSA_P384_SHA384 = 1
SIGNATURE_COMPONENT_LEN = 72   # R and S, little-endian, zero-extended

# The report table's row 48h: bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY,
# bits 4:2 SIGNING_KEY.
SIGNING_KEY_VCEK = 0
SIGNING_KEY_VLEK = 1
SIGNING_KEY_NONE = 7

# Guest policy bits (section 4.3).
POLICY_SMT = 1 << 16
POLICY_RESERVED_ONE = 1 << 17
POLICY_MIGRATE_MA = 1 << 18
POLICY_DEBUG = 1 << 19
POLICY_FLAGS = ((POLICY_SMT, 'SMT'), (POLICY_RESERVED_ONE, 'RESERVED1'),
                (POLICY_MIGRATE_MA, 'MIGRATE_MA'), (POLICY_DEBUG, 'DEBUG'),
                (1 << 20, 'SINGLE_SOCKET'), (1 << 21, 'CXL_ALLOW'),
                (1 << 22, 'MEM_AES_256_XTS'), (1 << 23, 'RAPL_DIS'),
                (1 << 24, 'CIPHERTEXT_HIDING'),
                (1 << 25, 'PAGE_SWAP_DISABLE'))

# PLATFORM_INFO bits (the report table's row 40h).
PLATFORM_FLAGS = ((1 << 0, 'SMT_EN'), (1 << 1, 'TSME_EN'),
                  (1 << 2, 'ECC_EN'), (1 << 3, 'RAPL_DIS'),
                  (1 << 4, 'CIPHERTEXT_HIDING_EN'),
                  (1 << 5, 'ALIAS_CHECK_COMPLETE'))

# TCB_VERSION components (section 2.2): byte offsets in the u64. Milan
# and Genoa (family 19h); Turin (family 1Ah) adds FMC and moves the SPLs.
TCB_FIELDS_MILAN = (('bootloader', 0), ('tee', 1), ('snp', 6),
                    ('microcode', 7))
TCB_FIELDS_TURIN = (('fmc', 0), ('bootloader', 1), ('tee', 2), ('snp', 3),
                    ('microcode', 7))
FAMILY_TURIN = 0x1a

# (name, offset, length, kind) in table order; kind 'u' is a
# little-endian unsigned integer, 'b' raw bytes, 'r' reserved.
LAYOUT = (
    ('version', 0x000, 4, 'u'),
    ('guest_svn', 0x004, 4, 'u'),
    ('policy', 0x008, 8, 'u'),
    ('family_id', 0x010, 16, 'b'),
    ('image_id', 0x020, 16, 'b'),
    ('vmpl', 0x030, 4, 'u'),
    ('signature_algo', 0x034, 4, 'u'),
    ('current_tcb', 0x038, 8, 'u'),
    ('platform_info', 0x040, 8, 'u'),
    ('key_info', 0x048, 4, 'u'),
    ('reserved_04c', 0x04c, 4, 'r'),
    ('report_data', 0x050, 64, 'b'),
    ('measurement', 0x090, 48, 'b'),
    ('host_data', 0x0c0, 32, 'b'),
    ('id_key_digest', 0x0e0, 48, 'b'),
    ('author_key_digest', 0x110, 48, 'b'),
    ('report_id', 0x140, 32, 'b'),
    ('report_id_ma', 0x160, 32, 'b'),
    ('reported_tcb', 0x180, 8, 'u'),
    ('cpuid_fam_id', 0x188, 1, 'u'),     # version 3; reserved in 2
    ('cpuid_mod_id', 0x189, 1, 'u'),     # version 3
    ('cpuid_step', 0x18a, 1, 'u'),       # version 3
    ('reserved_18b', 0x18b, 21, 'r'),
    ('chip_id', 0x1a0, 64, 'b'),
    ('committed_tcb', 0x1e0, 8, 'u'),
    ('current_build', 0x1e8, 1, 'u'),
    ('current_minor', 0x1e9, 1, 'u'),
    ('current_major', 0x1ea, 1, 'u'),
    ('reserved_1eb', 0x1eb, 1, 'r'),
    ('committed_build', 0x1ec, 1, 'u'),
    ('committed_minor', 0x1ed, 1, 'u'),
    ('committed_major', 0x1ee, 1, 'u'),
    ('reserved_1ef', 0x1ef, 1, 'r'),
    ('launch_tcb', 0x1f0, 8, 'u'),
    ('launch_mit_vector', 0x1f8, 8, 'u'),    # version 5; reserved before
    ('current_mit_vector', 0x200, 8, 'u'),   # version 5
    ('reserved_208', 0x208, 0x2a0 - 0x208, 'r'),
    ('signature_r', 0x2a0, SIGNATURE_COMPONENT_LEN, 'b'),
    ('signature_s', 0x2e8, SIGNATURE_COMPONENT_LEN, 'b'),
    ('reserved_330', 0x330, REPORT_LEN - 0x330, 'r'),
)
# Fields by the first version that has them.
_SINCE = {'cpuid_fam_id': 3, 'cpuid_mod_id': 3, 'cpuid_step': 3,
          'launch_mit_vector': 5, 'current_mit_vector': 5}


@dataclasses.dataclass(frozen=True)
class Report:
    """A parsed attestation report: ``fields`` by LAYOUT name (reserved
    fields left out), and the bytes the signature covers.
    """

    fields: dict
    signed: bytes
    raw: bytes

    def __getattr__(self, name):
        try:
            return self.__dict__['fields'][name]
        except KeyError:
            raise AttributeError(name)

    @property
    def signing_key(self) -> int:
        """Which key signed (0 VCEK, 1 VLEK, 7 none): KEY_INFO bits 4:2."""
        return (self.fields['key_info'] >> 2) & 0x7

    @property
    def author_key_en(self) -> bool:
        return bool(self.fields['key_info'] & 0x1)

    @property
    def mask_chip_key(self) -> bool:
        return bool(self.fields['key_info'] & 0x2)

    @property
    def signature_rs(self) -> tuple[int, int]:
        """R and S of the ECDSA signature (little-endian in the report)."""
        return (int.from_bytes(self.fields['signature_r'], 'little'),
                int.from_bytes(self.fields['signature_s'], 'little'))


def parse_report(data: bytes, source: str = 'the report') -> Report:
    """The fields of an attestation report; InvalidAttestationReport
    naming what is wrong when ``data`` is not a version 2 or 3 report.
    """
    if len(data) != REPORT_LEN:
        raise exception.InvalidAttestationReport(
            source=source, reason='it is %d bytes, an SNP attestation '
            'report is %d (0x4A0)' % (len(data), REPORT_LEN))
    fields = {}
    for name, offset, length, kind in LAYOUT:
        chunk = bytes(data[offset:offset + length])
        if kind == 'u':
            fields[name] = int.from_bytes(chunk, 'little')
        elif kind == 'b':
            fields[name] = chunk
    version = fields['version']
    if version not in SUPPORTED_VERSIONS:
        raise exception.InvalidAttestationReport(
            source=source, reason='report version %d: nova-sev reads '
            'versions %s of the SNP ABI layout' % (
                version, ', '.join(map(str, SUPPORTED_VERSIONS))))
    for name, since in _SINCE.items():
        if version < since:
            fields[name] = None
    return Report(fields=fields, signed=bytes(data[:SIGNED_LEN]),
                  raw=bytes(data))


def tcb_fields(report: Report, turin: bool | None = None) -> tuple:
    """The TCB_VERSION layout of the report's product: Turin's where the
    report (version 3 on) or the caller says the CPU is family 1Ah.
    """
    if turin is None:
        turin = report.fields.get('cpuid_fam_id') == FAMILY_TURIN
    return TCB_FIELDS_TURIN if turin else TCB_FIELDS_MILAN


def decode_tcb(value: int, layout: tuple) -> dict[str, int]:
    """A TCB_VERSION as its security patch levels by component."""
    raw = value.to_bytes(8, 'little')
    return {name: raw[offset] for name, offset in layout}


def describe_flags(value: int, flags: tuple) -> list[str]:
    return [name for bit, name in flags if value & bit]


def to_dict(report: Report, turin: bool | None = None) -> dict:
    """Every field for the JSON output: bytes in lower-case hex, the
    policy, platform info and TCBs also decoded.
    """
    out = {}
    for name, value in report.fields.items():
        out[name] = value.hex() if isinstance(value, bytes) else value
    layout = tcb_fields(report, turin)
    for name in ('current_tcb', 'reported_tcb', 'committed_tcb',
                 'launch_tcb'):
        out[name + '_decoded'] = decode_tcb(report.fields[name], layout)
    out['policy_flags'] = describe_flags(report.policy, POLICY_FLAGS)
    out['policy_abi'] = '%d.%d' % ((report.policy >> 8) & 0xff,
                                   report.policy & 0xff)
    out['platform_flags'] = describe_flags(report.platform_info,
                                           PLATFORM_FLAGS)
    out['signing_key'] = {SIGNING_KEY_VCEK: 'VCEK', SIGNING_KEY_VLEK: 'VLEK',
                          SIGNING_KEY_NONE: 'none'}.get(
        report.signing_key, 'reserved (%d)' % report.signing_key)
    out['author_key_en'] = report.author_key_en
    out['mask_chip_key'] = report.mask_chip_key
    return out
