"""SEV platform certificates and their chain up to AMD's root (legacy SEV
and SEV-ES; AMD SEV API, pub. 55766, Appendix B.1 and C.1).

Before the guest owner wraps the launch keys for a platform's PDH, they
check that the PDH belongs to a genuine AMD chip: the PDH is signed by the
PEK, the PEK by the owner's OCA and by the chip's CEK, the CEK by AMD's ASK
(RSA-PSS) and the ASK by AMD's ARK. The ARK and ASK of Naples, Rome, Milan
and Genoa are built in (``sev_roots/``, with the URLs they came from in its
README).

A platform certificate is 2084 bytes, little-endian throughout, big numbers
included. Hosts give them raw or in base64: libvirt's ``getSEVInfo()`` and
QEMU's ``query-sev-capabilities`` give ``pdh`` and ``cert-chain`` (PEK |
OCA | CEK) in base64, ``sevctl export`` writes PDH | PEK | OCA | CEK raw
(``--full``: then ASK | ARK). Every malformed field is an
InvalidSevCertificate naming it; a signature that does not verify is a
SevChainNotAuthentic.
"""

import base64
import binascii
import dataclasses
import importlib.resources
import struct

from cryptography import exceptions as crypto_exceptions
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric import utils as ec_utils
from cryptography.hazmat.primitives import hashes

from nova_sev import exception

CERT_LEN = 2084
BODY_LEN = 0x414
CERT_VERSION = 1
COORD_LEN = 72
KEY_BYTES = 48
SIG_SLOTS = (0x414, 0x61C)
SIG_LEN = 512

USAGE_ARK = 0x0000
USAGE_ASK = 0x0013
USAGE_INVALID = 0x1000
USAGE_OCA = 0x1001
USAGE_PEK = 0x1002
USAGE_PDH = 0x1003
USAGE_CEK = 0x1004
USAGE_NAMES = {USAGE_ARK: 'ARK', USAGE_ASK: 'ASK', USAGE_INVALID: 'none',
               USAGE_OCA: 'OCA', USAGE_PEK: 'PEK', USAGE_PDH: 'PDH',
               USAGE_CEK: 'CEK'}

ALGO_INVALID = 0x000
ALGO_RSA_SHA256 = 0x001
ALGO_ECDSA_SHA256 = 0x002
ALGO_ECDH_SHA256 = 0x003
ALGO_RSA_SHA384 = 0x101
ALGO_ECDSA_SHA384 = 0x102
ALGO_ECDH_SHA384 = 0x103
ECDSA_ALGOS = (ALGO_ECDSA_SHA256, ALGO_ECDSA_SHA384)
ECDH_ALGOS = (ALGO_ECDH_SHA256, ALGO_ECDH_SHA384)
RSA_ALGOS = (ALGO_RSA_SHA256, ALGO_RSA_SHA384)
_HASHES = {ALGO_RSA_SHA256: hashes.SHA256, ALGO_ECDSA_SHA256: hashes.SHA256,
           ALGO_RSA_SHA384: hashes.SHA384, ALGO_ECDSA_SHA384: hashes.SHA384}

CURVE_P384 = 2

# The algorithms each platform key may have (firmware sev_cert.c).
PLATFORM_ALGOS = {USAGE_OCA: ECDSA_ALGOS, USAGE_PEK: ECDSA_ALGOS,
                  USAGE_CEK: ECDSA_ALGOS, USAGE_PDH: ECDH_ALGOS}

# AMD CA certificate (Appendix B.1): the fixed header, then the public
# exponent, modulus and signature, each modulus_size / 8 bytes.
CA_HEADER = struct.Struct('<I16s16sI16sII')
CA_KEY_BITS = {2048: hashes.SHA256, 4096: hashes.SHA384}

PRODUCTS = ('naples', 'rome', 'milan', 'genoa')

# The chain forms hosts give, by their number of platform certificates.
CHAIN_ROLES = {3: (USAGE_PEK, USAGE_OCA, USAGE_CEK),
               4: (USAGE_PDH, USAGE_PEK, USAGE_OCA, USAGE_CEK)}


@dataclasses.dataclass(frozen=True)
class Signature:
    """One signature slot: the signer's usage and algorithm, its bytes."""

    usage: int
    algo: int
    data: bytes


@dataclasses.dataclass(frozen=True)
class SevCert:
    """A parsed 2084-byte SEV platform certificate."""

    raw: bytes
    api_major: int
    api_minor: int
    usage: int
    algo: int
    public_key: ec.EllipticCurvePublicKey
    signatures: tuple[Signature, ...]
    source: str

    @property
    def name(self) -> str:
        return USAGE_NAMES[self.usage]


@dataclasses.dataclass(frozen=True)
class CaCert:
    """A parsed AMD CA certificate (ARK or ASK)."""

    raw: bytes
    key_id: bytes
    certifying_id: bytes
    usage: int
    public_key: rsa.RSAPublicKey
    signed: bytes
    signature: bytes
    source: str

    @property
    def name(self) -> str:
        return USAGE_NAMES[self.usage]


@dataclasses.dataclass(frozen=True)
class PlatformChain:
    """A platform's certificates as a host gives them: the PDH when the
    chain carries it, PEK, OCA, CEK, and the ASK and ARK of ``sevctl
    export --full``.
    """

    pek: SevCert
    oca: SevCert
    cek: SevCert
    pdh: SevCert | None = None
    ask: CaCert | None = None
    ark: CaCert | None = None


@dataclasses.dataclass(frozen=True)
class AmdRoot:
    """One product's ARK and the ASK it signed."""

    product: str
    ark: CaCert
    ask: CaCert


def _bad(source: str, reason: str) -> exception.InvalidSevCertificate:
    return exception.InvalidSevCertificate(source=source, reason=reason)


def _le(data: bytes) -> int:
    return int.from_bytes(data, 'little')


def decode_blob(data: bytes, source: str) -> bytes:
    """The raw bytes of certificate data given raw or in base64.

    Raw certificates (platform or CA) begin with their version, 1 as a
    little-endian u32, whose first byte is no base64 character.
    """
    if data[:4] == CERT_VERSION.to_bytes(4, 'little'):
        return bytes(data)
    try:
        text = data.decode('ascii')
    except UnicodeDecodeError as e:
        raise _bad(source, 'it is neither a raw certificate (which begins '
                   'with version 1) nor base64 text (byte 0x%02x at offset '
                   '%d)' % (data[e.start], e.start))
    try:
        raw = base64.b64decode(''.join(text.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise _bad(source, 'it is neither a raw certificate (which begins '
                   'with version 1) nor base64 (%s)' % e)
    if not raw:
        raise _bad(source, 'it is empty')
    return raw


def _check_zero(data: bytes, start: int, end: int, what: str,
                source: str) -> None:
    # Bytes no key or signature uses: zero in every certificate AMD's
    # firmware makes, and unsigned in a signature slot, so anything else
    # there is a changed certificate.
    if any(data[start:end]):
        raise _bad(source, 'bytes 0x%x-0x%x (%s) must be zero' % (
            start, end - 1, what))


def _ec_key(cert: bytes, source: str) -> ec.EllipticCurvePublicKey:
    curve = _le(cert[0x10:0x14])
    if curve != CURVE_P384:
        raise _bad(source, 'its key is on curve %d; SEV platform keys are '
                   'on P-384 (curve 2)' % curve)
    for start, what in ((0x14, 'the top of qx'), (0x5C, 'the top of qy')):
        _check_zero(cert, start + KEY_BYTES, start + COORD_LEN, what, source)
    _check_zero(cert, 0x14 + 2 * COORD_LEN, BODY_LEN,
                'after the public key', source)
    x = _le(cert[0x14:0x14 + COORD_LEN])
    y = _le(cert[0x14 + COORD_LEN:0x14 + 2 * COORD_LEN])
    try:
        return ec.EllipticCurvePublicNumbers(
            x, y, ec.SECP384R1()).public_key()
    except ValueError:
        raise _bad(source, 'its public key is not a point on P-384')


def _signature(cert: bytes, offset: int, source: str) -> Signature | None:
    usage, algo = struct.unpack_from('<II', cert, offset)
    data = offset + 8
    if usage == USAGE_INVALID and algo == ALGO_INVALID:
        _check_zero(cert, data, data + SIG_LEN, 'an empty signature slot',
                    source)
        return None
    if usage == USAGE_INVALID or algo == ALGO_INVALID:
        # Firmware sev_cert_validate_sig: half an empty slot is malformed.
        raise _bad(source, 'signature slot at 0x%x has usage 0x%x with '
                   'algorithm 0x%x: a slot is either empty (0x1000, 0) or '
                   'both are set' % (offset, usage, algo))
    if algo not in _HASHES:
        raise _bad(source, 'signature slot at 0x%x has the unknown '
                   'algorithm 0x%x' % (offset, algo))
    if algo in ECDSA_ALGOS:
        for start, what in ((data, 'the top of r'),
                            (data + COORD_LEN, 'the top of s')):
            _check_zero(cert, start + KEY_BYTES, start + COORD_LEN, what,
                        source)
        _check_zero(cert, data + 2 * COORD_LEN, data + SIG_LEN,
                    'after the ECDSA signature', source)
    return Signature(usage, algo, cert[data:data + SIG_LEN])


def parse_sev_cert(data: bytes, source: str,
                   usage: int | None = None) -> SevCert:
    """The SEV platform certificate ``data`` (raw, 2084 bytes), checked
    field by field as the firmware does, and to have ``usage`` if given.
    """
    if len(data) != CERT_LEN:
        raise _bad(source, 'it is %d bytes; an SEV certificate is %d'
                   % (len(data), CERT_LEN))
    version, api_major, api_minor, _res, key_usage, algo = (
        struct.unpack_from('<IBBHII', data, 0))
    if version != CERT_VERSION:
        raise _bad(source, 'version %d; only version 1 exists' % version)
    if key_usage not in PLATFORM_ALGOS:
        raise _bad(source, 'key usage 0x%x is not that of a platform key '
                   '(OCA 0x1001, PEK 0x1002, PDH 0x1003, CEK 0x1004)'
                   % key_usage)
    if usage is not None and key_usage != usage:
        raise _bad(source, 'it is a %s certificate (usage 0x%x) where a %s '
                   'belongs (usage 0x%x)' % (USAGE_NAMES[key_usage],
                                             key_usage, USAGE_NAMES[usage],
                                             usage))
    if algo not in PLATFORM_ALGOS[key_usage]:
        raise _bad(source, 'a %s key cannot have algorithm 0x%x (%s)' % (
            USAGE_NAMES[key_usage], algo, ', '.join(
                '0x%03x' % a for a in PLATFORM_ALGOS[key_usage])))
    key = _ec_key(data, source)
    signatures = tuple(s for s in (_signature(data, offset, source)
                                   for offset in SIG_SLOTS) if s)
    return SevCert(bytes(data), api_major, api_minor, key_usage, algo, key,
                   signatures, source)


def ca_cert_len(data: bytes, source: str) -> int:
    """The length of the AMD CA certificate at the start of ``data``."""
    if len(data) < CA_HEADER.size:
        raise _bad(source, 'it is %d bytes, shorter than the %d-byte header '
                   'of an AMD CA certificate' % (len(data), CA_HEADER.size))
    modulus_bits = CA_HEADER.unpack_from(data)[6]
    if modulus_bits not in CA_KEY_BITS:
        raise _bad(source, 'its modulus is %d bits; AMD CA keys are %s' % (
            modulus_bits, ' or '.join(str(b) for b in CA_KEY_BITS)))
    return CA_HEADER.size + 3 * modulus_bits // 8


def parse_ca_cert(data: bytes, source: str,
                  usage: int | None = None) -> CaCert:
    """The AMD CA certificate ``data`` (raw ARK or ASK), checked field by
    field, and to have ``usage`` if given.
    """
    length = ca_cert_len(data, source)
    if len(data) != length:
        raise _bad(source, 'it is %d bytes; an AMD CA certificate with this '
                   'modulus is %d' % (len(data), length))
    (version, key_id, certifying_id, key_usage, _res, exp_bits,
     modulus_bits) = CA_HEADER.unpack_from(data)
    if version != CERT_VERSION:
        raise _bad(source, 'version %d; only version 1 exists' % version)
    if key_usage not in (USAGE_ARK, USAGE_ASK):
        raise _bad(source, 'key usage 0x%x is neither ARK (0x0) nor ASK '
                   '(0x13)' % key_usage)
    if usage is not None and key_usage != usage:
        raise _bad(source, 'it is an %s where the %s belongs' % (
            USAGE_NAMES[key_usage], USAGE_NAMES[usage]))
    if not 0 < exp_bits <= modulus_bits:
        raise _bad(source, 'its public exponent is %d bits' % exp_bits)
    size = modulus_bits // 8
    offset = CA_HEADER.size
    exponent = _le(data[offset:offset + size])
    modulus = _le(data[offset + size:offset + 2 * size])
    try:
        key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError as e:
        raise _bad(source, 'its RSA key is not valid (%s)' % e)
    if key.key_size != modulus_bits:
        raise _bad(source, 'its modulus is %d bits, not the %d it declares'
                   % (key.key_size, modulus_bits))
    return CaCert(bytes(data), key_id, certifying_id, key_usage, key,
                  bytes(data[:offset + 2 * size]),
                  bytes(data[offset + 2 * size:]), source)


def parse_chain(data: bytes, source: str) -> PlatformChain:
    """A platform chain as hosts give it (raw or base64): PEK | OCA | CEK
    (libvirt's ``cert-chain``), PDH | PEK | OCA | CEK (``sevctl export``),
    or that and ASK | ARK (``sevctl export --full``). The order is checked:
    each certificate must have the usage of its place.
    """
    raw = decode_blob(data, source)
    if len(raw) in (3 * CERT_LEN, 4 * CERT_LEN):
        count = len(raw) // CERT_LEN
    elif len(raw) > 4 * CERT_LEN:
        count = 4
    else:
        raise _bad(source, 'it is %d bytes; a chain is PEK|OCA|CEK (%d '
                   'bytes), PDH|PEK|OCA|CEK (%d) or that and ASK|ARK' % (
                       len(raw), 3 * CERT_LEN, 4 * CERT_LEN))
    roles = CHAIN_ROLES[count]
    certs = {}
    for i, usage in enumerate(roles):
        certs[usage] = parse_sev_cert(
            raw[i * CERT_LEN:(i + 1) * CERT_LEN],
            '%s (certificate %d of %s)' % (source, i + 1, '|'.join(
                USAGE_NAMES[u] for u in roles)), usage)
    ask = ark = None
    rest = raw[count * CERT_LEN:]
    if rest:
        where = '%s (ASK after the CEK)' % source
        ask_len = ca_cert_len(rest, where)
        ask = parse_ca_cert(rest[:ask_len], where, USAGE_ASK)
        ark = parse_ca_cert(rest[ask_len:], '%s (ARK after the ASK)'
                            % source, USAGE_ARK)
    return PlatformChain(pek=certs[USAGE_PEK], oca=certs[USAGE_OCA],
                         cek=certs[USAGE_CEK], pdh=certs.get(USAGE_PDH),
                         ask=ask, ark=ark)


def _not_authentic(reason: str) -> exception.SevChainNotAuthentic:
    return exception.SevChainNotAuthentic(reason=reason)


def _ecdsa_ok(key: ec.EllipticCurvePublicKey, sig: Signature,
              body: bytes) -> bool:
    r = _le(sig.data[:COORD_LEN])
    s = _le(sig.data[COORD_LEN:2 * COORD_LEN])
    try:
        key.verify(ec_utils.encode_dss_signature(r, s), body,
                   ec.ECDSA(_HASHES[sig.algo]()))
    except (crypto_exceptions.InvalidSignature, ValueError):
        return False
    return True


def _pss_ok(key: rsa.RSAPublicKey, signature_le: bytes, body: bytes,
            hash_cls) -> bool:
    # Stored little-endian: reversed, it is the big-endian RSA signature.
    value = _le(signature_le)
    size = key.key_size // 8
    if value.bit_length() > 8 * size:
        return False
    digest = hash_cls()
    try:
        key.verify(value.to_bytes(size, 'big'), body,
                   padding.PSS(mgf=padding.MGF1(hash_cls()),
                               salt_length=digest.digest_size), digest)
    except crypto_exceptions.InvalidSignature:
        return False
    return True


def sev_signed_by(cert: SevCert, signer: SevCert | CaCert) -> bool:
    """Whether a signature slot of ``cert`` made by ``signer`` (same usage
    and algorithm) verifies over its body.
    """
    body = cert.raw[:BODY_LEN]
    for sig in cert.signatures:
        if isinstance(signer, CaCert):
            if sig.usage == signer.usage and sig.algo in RSA_ALGOS and (
                    _pss_ok(signer.public_key, sig.data, body,
                            _HASHES[sig.algo])):
                return True
        elif (sig.usage, sig.algo) == (signer.usage, signer.algo) and (
                _ecdsa_ok(signer.public_key, sig, body)):
            return True
    return False


def ca_signed_by(cert: CaCert, signer: CaCert) -> bool:
    """Whether AMD CA certificate ``cert`` is signed by ``signer``."""
    if cert.certifying_id != signer.key_id:
        return False
    return _pss_ok(signer.public_key, cert.signature, cert.signed,
                   CA_KEY_BITS[signer.public_key.key_size])


def check_root(ark: CaCert, ask: CaCert, product: str) -> AmdRoot:
    """An AmdRoot when the ARK is self-signed and signs the ASK;
    SevChainNotAuthentic otherwise.
    """
    if ark.usage != USAGE_ARK or ask.usage != USAGE_ASK:
        raise _not_authentic('%s and %s are not an ARK and an ASK' % (
            ark.source, ask.source))
    if not ca_signed_by(ark, ark):
        raise _not_authentic('the ARK %s is not self-signed' % ark.source)
    if not ca_signed_by(ask, ark):
        raise _not_authentic('the ASK %s is not signed by the ARK %s' % (
            ask.source, ark.source))
    return AmdRoot(product, ark, ask)


def builtin_roots() -> tuple[AmdRoot, ...]:
    """AMD's SEV ARK and ASK of each product, shipped as data
    (``sev_roots/PRODUCT-{ark,ask}.cert``), each ARK checked to sign its
    ASK.
    """
    base = importlib.resources.files('nova_sev.attestation') / 'sev_roots'
    roots = []
    for product in PRODUCTS:
        certs = {}
        for name, usage in (('ark', USAGE_ARK), ('ask', USAGE_ASK)):
            path = base / ('%s-%s.cert' % (product, name))
            certs[name] = parse_ca_cert(path.read_bytes(), str(path), usage)
        roots.append(check_root(certs['ark'], certs['ask'], product))
    return tuple(roots)


def verify_platform(chain: PlatformChain, pdh: SevCert,
                    roots: tuple[AmdRoot, ...]) -> AmdRoot:
    """The trusted root that the platform's chain and ``pdh`` verify up
    to: PEK -> PDH, OCA -> OCA, OCA -> PEK, CEK -> PEK, ASK -> CEK and
    ARK -> ASK. SevChainNotAuthentic names the first link that fails.

    An ASK and ARK inside the chain are not trusted for what they are:
    they must be, byte for byte, the ASK and ARK of one of ``roots``.
    """
    if chain.pdh is not None and chain.pdh.raw != pdh.raw:
        raise _not_authentic('%s is not the PDH in %s' % (
            pdh.source, chain.pdh.source))
    for cert, signer in ((pdh, chain.pek), (chain.oca, chain.oca),
                         (chain.pek, chain.oca), (chain.pek, chain.cek)):
        if not sev_signed_by(cert, signer):
            raise _not_authentic('the %s is not signed by the %s (%s)' % (
                cert.name, signer.name, cert.source))
    candidates = roots
    if chain.ark is not None:
        candidates = tuple(r for r in roots if r.ark.raw == chain.ark.raw
                           and r.ask.raw == chain.ask.raw)
        if not candidates:
            raise _not_authentic('the ASK and ARK in the chain are not those '
                                 'of a trusted AMD root (%s)' % ', '.join(
                                     r.product for r in roots))
    for root in candidates:
        if sev_signed_by(chain.cek, root.ask):
            return root
    raise _not_authentic('the CEK %s is not signed by the ASK of any '
                         'trusted AMD root (%s)' % (
                             chain.cek.source,
                             ', '.join(r.product for r in candidates)))
