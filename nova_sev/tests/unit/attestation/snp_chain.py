"""A test ARK -> ASK -> VCEK chain, made with ``cryptography``, and SNP
attestation reports signed by its VCEK.

The certificates are shaped as AMD's: RSA-PSS with SHA-384 for the ARK
(self-signed) and the ASK, an EC P-384 VCEK with AMD's extensions (product
name, TCB security patch levels, hardware id). Keys are made once per
process: RSA key generation is the slow part.
"""

import datetime
import functools

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric import utils as ec_utils
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography import x509

from nova_sev.attestation import snp_report
from nova_sev.attestation import snp_verify

CHIP_ID = bytes(range(64))
# bootloader 3, tee 0, snp 8, microcode 115 (Milan's byte layout).
TCB = {'bootloader': 3, 'tee': 0, 'snp': 8, 'microcode': 115}
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


def tcb_value(levels: dict, layout=snp_report.TCB_FIELDS_MILAN) -> int:
    raw = bytearray(8)
    for name, offset in layout:
        raw[offset] = levels.get(name, 0)
    return int.from_bytes(raw, 'little')


@functools.lru_cache(maxsize=None)
def rsa_key(label: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.lru_cache(maxsize=None)
def ec_key(label: str, curve: str = 'secp384r1'):
    return ec.generate_private_key(
        ec.SECP384R1() if curve == 'secp384r1' else ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(x509.NameOID.ORGANIZATIONAL_UNIT_NAME,
                           'Engineering'),
        x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])


def _der_int(value: int) -> bytes:
    return bytes([0x02, 0x01, value])


NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
NOT_AFTER = datetime.datetime(2099, 1, 1, tzinfo=datetime.timezone.utc)


def certificate(subject: str, issuer: str, public_key, signing_key,
                extensions=(), rsa_pss: bool = True,
                not_after=NOT_AFTER) -> x509.Certificate:
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(public_key).serial_number(1)
               .not_valid_before(NOT_BEFORE)
               .not_valid_after(not_after))
    for oid, value in extensions:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value),
            critical=False)
    if isinstance(signing_key, rsa.RSAPrivateKey) and rsa_pss:
        return builder.sign(signing_key, hashes.SHA384(), rsa_padding=PSS)
    return builder.sign(signing_key, hashes.SHA384())


def vcek_extensions(tcb=None, chip_id=CHIP_ID, product=b'Milan-B0'):
    tcb = TCB if tcb is None else tcb
    exts = [(snp_verify.OID_PRODUCT_NAME,
             bytes([0x16, len(product)]) + product)]
    for name, oid in snp_verify.SPL_OIDS:
        if name in tcb:
            exts.append((oid, _der_int(tcb[name])))
    exts.append((snp_verify.OID_HWID, chip_id))
    return exts


class Chain:
    """ARK, ASK and VCEK certificates; ``make`` builds variants."""

    def __init__(self, ark='ark', ask='ask', vcek='vcek', ark_signer=None,
                 ask_signer=None, vcek_signer=None, vcek_curve='secp384r1',
                 vcek_exts=None, rsa_pss=True, ark_name='ARK-Test',
                 ask_name='SEV-Test', vcek_not_after=NOT_AFTER):
        ark_key, ask_key = rsa_key(ark), rsa_key(ask)
        self.vcek_key = ec_key(vcek, vcek_curve)
        self.ark = certificate(ark_name, ark_name, ark_key.public_key(),
                               rsa_key(ark_signer or ark))
        self.ask = certificate(ask_name, ark_name, ask_key.public_key(),
                               rsa_key(ask_signer or ark), rsa_pss=rsa_pss)
        self.vcek = certificate(
            'SEV-VCEK', ask_name, self.vcek_key.public_key(),
            rsa_key(vcek_signer or ask),
            vcek_extensions() if vcek_exts is None else vcek_exts,
            not_after=vcek_not_after)

    @staticmethod
    def pem(cert) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    @staticmethod
    def der(cert) -> bytes:
        return cert.public_bytes(serialization.Encoding.DER)


def report_fields(**changes) -> dict:
    """The fields of a valid version 2 report, with ``changes``."""
    fields = {
        'version': 2, 'guest_svn': 7, 'policy': 0x30000,
        'family_id': bytes(range(16, 32)), 'image_id': bytes(range(32, 48)),
        'vmpl': 0, 'signature_algo': 1, 'current_tcb': tcb_value(TCB),
        'platform_info': 0x5, 'key_info': 0,
        'report_data': bytes(range(100, 164)),
        'measurement': bytes(range(150, 198)),
        'host_data': bytes(range(200, 232)),
        'id_key_digest': b'\x11' * 48, 'author_key_digest': b'\x22' * 48,
        'report_id': b'\x33' * 32, 'report_id_ma': b'\xff' * 32,
        'reported_tcb': tcb_value(TCB), 'cpuid_fam_id': 0,
        'cpuid_mod_id': 0, 'cpuid_step': 0, 'chip_id': CHIP_ID,
        'committed_tcb': tcb_value(TCB), 'current_build': 4,
        'current_minor': 55, 'current_major': 1, 'committed_build': 3,
        'committed_minor': 54, 'committed_major': 1,
        'launch_tcb': tcb_value(TCB),
    }
    fields.update(changes)
    return fields


def unsigned_report(fields: dict) -> bytearray:
    raw = bytearray(snp_report.REPORT_LEN)
    for name, offset, length, kind in snp_report.LAYOUT:
        value = fields.get(name)
        if kind == 'r' or value is None:
            continue
        if kind == 'u':
            value = value.to_bytes(length, 'little')
        assert len(value) == length, name
        raw[offset:offset + length] = value
    return raw


def sign(raw: bytearray, key) -> bytes:
    """``raw`` with the ECDSA P-384 signature of its first 2A0h bytes, R
    and S little-endian in 72-byte fields.
    """
    der = key.sign(bytes(raw[:snp_report.SIGNED_LEN]),
                   ec.ECDSA(hashes.SHA384()))
    r, s = ec_utils.decode_dss_signature(der)
    raw[0x2a0:0x2e8] = r.to_bytes(72, 'little')
    raw[0x2e8:0x330] = s.to_bytes(72, 'little')
    return bytes(raw)


def signed_report(key, **changes) -> bytes:
    return sign(unsigned_report(report_fields(**changes)), key)
