"""The guest owner's SEV launch session (what ``sevctl session`` makes;
AMD SEV API, pub. 55766, 6.2 LAUNCH_START).

The owner makes a fresh TEK and TIK and wraps them for one platform: an
ephemeral P-384 key pair (the GODH) agrees a secret with the platform's
PDH, a NIST SP 800-108 KDF turns it into a key-encryption key (KEK) and a
key-integrity key (KIK), and the session blob carries

    nonce (16) || wrap_tk = AES-128-CTR(KEK, wrap_iv, TEK || TIK) (32) ||
    wrap_iv (16) || wrap_mac = HMAC-SHA256(KIK, wrap_tk) (32) ||
    policy_mac = HMAC-SHA256(TIK, LE32(policy)) (32)

Only the firmware holding the PDH's private key opens it, and it refuses
to launch a policy other than the one MACed. QEMU takes the GODH
certificate and the blob in base64 (``dh-cert-file``, ``session-file``;
libvirt's ``<dhCert>`` and ``<session>``).
"""

import base64
import dataclasses
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.asymmetric import ec

from nova_sev.attestation import keys
from nova_sev.attestation import secret
from nova_sev.attestation import sev_cert
from nova_sev import exception

NONCE_LEN = 16
WRAP_IV_LEN = 16
SESSION_LEN = 128

LABEL_MASTER = b'sev-master-secret'
LABEL_KEK = b'sev-kek'
LABEL_KIK = b'sev-kik'

# Guest policy (AMD SEV API, section 3): flags in bits 0-5, bits 6-15
# reserved (the firmware refuses them), the minimum API version above.
POLICY_RESERVED = 0xFFC0
POLICY_MAX = 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class LaunchSession:
    """What LAUNCH_START takes (the GODH certificate and session blob)
    and the keys the guest owner keeps.
    """

    godh_cert: bytes
    session: bytes
    tek: bytes
    tik: bytes
    policy: int

    @property
    def godh_b64(self) -> str:
        """QEMU's ``dh-cert-file`` content (libvirt's ``<dhCert>``)."""
        return base64.b64encode(self.godh_cert).decode('ascii')

    @property
    def session_b64(self) -> str:
        """QEMU's ``session-file`` content (libvirt's ``<session>``)."""
        return base64.b64encode(self.session).decode('ascii')


def check_policy(policy: int) -> int:
    """``policy`` when the firmware can launch it; InvalidGuestPolicy
    when it sets reserved bits or is no u32.
    """
    if not 0 <= policy <= POLICY_MAX:
        raise exception.InvalidGuestPolicy(
            policy=policy, reason='it is not a 32-bit number')
    if policy & POLICY_RESERVED:
        raise exception.InvalidGuestPolicy(
            policy='0x%x' % policy, reason='bits 6-15 (0x%04x here) are '
            'reserved and the firmware refuses them'
            % (policy & POLICY_RESERVED))
    return policy


def kdf(key: bytes, label: bytes, context: bytes = b'',
        length: int = keys.KEY_LEN) -> bytes:
    """NIST SP 800-108 counter-mode KDF with HMAC-SHA256, as the SEV
    firmware has it: the counter and the length in bits are little-endian
    u32 (so not ``cryptography``'s KBKDFHMAC, which has them big-endian).
    """
    out = b''
    counter = 1
    while len(out) < length:
        out += hmac.new(key, struct.pack('<I', counter) + label + b'\0' +
                        context + struct.pack('<I', 8 * length),
                        hashlib.sha256).digest()
        counter += 1
    return out[:length]


def session_keys(shared: bytes, nonce: bytes) -> tuple[bytes, bytes]:
    """The KEK and KIK for the ECDH ``shared`` secret and ``nonce``."""
    master = kdf(shared, LABEL_MASTER, nonce)
    return kdf(master, LABEL_KEK), kdf(master, LABEL_KIK)


def policy_mac(tik: bytes, policy: int) -> bytes:
    """The MAC binding the session to exactly ``policy`` (its LE u32)."""
    return hmac.new(tik, struct.pack('<I', policy), hashlib.sha256).digest()


def session_blob(shared: bytes, nonce: bytes, wrap_iv: bytes, tek: bytes,
                 tik: bytes, policy: int) -> bytes:
    """The 128-byte session blob wrapping ``tek`` and ``tik`` under the
    keys derived from ``shared`` and ``nonce``.
    """
    for name, value, size in (('nonce', nonce, NONCE_LEN),
                              ('wrap IV', wrap_iv, WRAP_IV_LEN),
                              ('TEK', tek, keys.KEY_LEN),
                              ('TIK', tik, keys.KEY_LEN)):
        if len(value) != size:
            raise exception.InvalidInput(
                reason='the session %s must be %d bytes, not %d'
                % (name, size, len(value)))
    kek, kik = session_keys(shared, nonce)
    wrap_tk = secret.aes_ctr(kek, wrap_iv, tek + tik)
    wrap_mac = hmac.new(kik, wrap_tk, hashlib.sha256).digest()
    return (nonce + wrap_tk + wrap_iv + wrap_mac +
            policy_mac(tik, check_policy(policy)))


def godh_certificate(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The guest owner's DH certificate for ``public_key``: usage PDH,
    ECDH_SHA256 on P-384, API 0.0, both signature slots empty (the
    firmware checks only the body of it).
    """
    numbers = public_key.public_numbers()
    key = (struct.pack('<I', sev_cert.CURVE_P384) +
           numbers.x.to_bytes(sev_cert.COORD_LEN, 'little') +
           numbers.y.to_bytes(sev_cert.COORD_LEN, 'little'))
    body = struct.pack('<IBBHII', sev_cert.CERT_VERSION, 0, 0, 0,
                       sev_cert.USAGE_PDH, sev_cert.ALGO_ECDH_SHA256) + key
    body = body.ljust(sev_cert.BODY_LEN, b'\0')
    empty = struct.pack('<II', sev_cert.USAGE_INVALID,
                        sev_cert.ALGO_INVALID) + bytes(sev_cert.SIG_LEN)
    return body + empty + empty


def shared_secret(private_key: ec.EllipticCurvePrivateKey,
                  pdh: sev_cert.SevCert) -> bytes:
    """The ECDH secret with the platform's PDH: the big-endian x
    coordinate (48 bytes), which is what ``exchange`` returns.
    """
    if pdh.usage != sev_cert.USAGE_PDH:
        raise exception.InvalidSevCertificate(
            source=pdh.source, reason='the session needs the PDH, this is '
            'the %s' % pdh.name)
    return private_key.exchange(ec.ECDH(), pdh.public_key)


def build_session(pdh: sev_cert.SevCert, policy: int,
                  godh_key: ec.EllipticCurvePrivateKey, nonce: bytes,
                  wrap_iv: bytes, tek: bytes, tik: bytes) -> LaunchSession:
    """The launch session for ``pdh`` and ``policy`` from the given keys
    and randomness (``new_session`` draws them).
    """
    blob = session_blob(shared_secret(godh_key, pdh), nonce, wrap_iv, tek,
                        tik, policy)
    return LaunchSession(godh_certificate(godh_key.public_key()), blob,
                         tek, tik, policy)


def new_session(pdh: sev_cert.SevCert, policy: int) -> LaunchSession:
    """A fresh launch session for ``pdh``: new GODH key pair, nonce,
    wrap IV, TEK and TIK from the operating system's random source.
    """
    return build_session(pdh, check_policy(policy),
                         ec.generate_private_key(ec.SECP384R1()),
                         os.urandom(NONCE_LEN), os.urandom(WRAP_IV_LEN),
                         os.urandom(keys.KEY_LEN), os.urandom(keys.KEY_LEN))
