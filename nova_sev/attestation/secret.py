"""The launch secret (AMD SEV API 6.6, LAUNCH_SECRET) and OVMF's secret
table.

Once the measurement checks, the guest owner sends secrets into the paused
guest: a table of GUID-keyed entries (OVMF's layout, read in the guest by
the ``efi_secret`` driver and by GRUB's cryptodisk for the LUKS key),
encrypted with AES-128-CTR under the TEK, and a header

    FLAGS (u32 LE) || IV (16 bytes) || MAC

with MAC = HMAC-SHA256(key=TIK, 0x01 || FLAGS || IV || GUEST_LENGTH ||
TRANS_LENGTH || ciphertext || measurement). Binding the measurement into
the MAC makes the secret usable only by the launch that was checked.
libvirt's ``setLaunchSecurityState`` takes both in base64, as
``sev-secret-header`` and ``sev-secret``.
"""

import base64
import binascii
import dataclasses
import hashlib
import hmac
import re
import uuid

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers import modes

from nova_sev.attestation import guid_table
from nova_sev.attestation import measurement
from nova_sev import exception

SECRET_TABLE_GUID = uuid.UUID('1e74f542-71dd-4d66-963e-ef4287ff173b')
# The disk passphrase GRUB's cryptodisk (efisecret) reads to open a LUKS
# volume; libvirt's virt-qemu-sev-validate calls it "luks-key".
LUKS_KEY_GUID = uuid.UUID('736869e5-84f0-4973-92ec-06879ce3da0b')
GUID_ALIASES = {'luks-key': LUKS_KEY_GUID}
SECRET_LEN_SIZE = 4
# OVMF reserves one page for the secret (PcdSevLaunchSecretSize) and KVM
# refuses a secret that crosses a page.
MAX_TABLE_LEN = 4096

HEADER_CONTEXT = 0x01
HEADER_FLAGS = 0
IV_LEN = 16
HEADER_LEN = 4 + IV_LEN + 32

_GUID_RE = re.compile(r'^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$')


@dataclasses.dataclass(frozen=True)
class LaunchSecret:
    """The LAUNCH_SECRET packet header and encrypted payload."""

    header: bytes
    payload: bytes

    @property
    def header_b64(self) -> str:
        """libvirt's ``sev-secret-header``."""
        return base64.b64encode(self.header).decode('ascii')

    @property
    def payload_b64(self) -> str:
        """libvirt's ``sev-secret``."""
        return base64.b64encode(self.payload).decode('ascii')


def secret_guid(name: str) -> uuid.UUID:
    """The GUID a secret is stored under: a GUID as text, or an alias
    (``luks-key``).
    """
    if _GUID_RE.match(name):
        return uuid.UUID(name)
    if name in GUID_ALIASES:
        return GUID_ALIASES[name]
    raise exception.InvalidSecret(
        reason='%r is neither a GUID nor a known alias (%s)' % (
            name, ', '.join(sorted(GUID_ALIASES))))


def secret_table(entries: list[tuple[uuid.UUID, bytes]]) -> bytes:
    """OVMF's secret table holding ``entries``, padded to 16 bytes.

    Refused: no entry, the same GUID twice, a table beyond one page.
    """
    if not entries:
        raise exception.InvalidSecret(reason='no secret to send: give at '
                                      'least one --secret or --luks-key')
    seen = set()
    for guid, _data in entries:
        if guid in seen:
            raise exception.InvalidSecret(
                reason='GUID %s is given twice' % guid)
        seen.add(guid)
    table = guid_table.pad_to_block(guid_table.build_table(
        SECRET_TABLE_GUID, entries, SECRET_LEN_SIZE))
    if len(table) > MAX_TABLE_LEN:
        raise exception.InvalidSecret(
            reason='the secret table is %d bytes, OVMF has room for %d: '
            'send fewer or smaller secrets' % (len(table), MAX_TABLE_LEN))
    return table


def parse_secret_table(table: bytes) -> list[tuple[uuid.UUID, bytes]]:
    """The entries of a (decrypted) secret table."""
    return guid_table.parse_table(table, SECRET_TABLE_GUID, SECRET_LEN_SIZE)


def aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-128-CTR of ``data`` from the 16-byte counter block ``iv``, as
    the SEV firmware wraps keys and secrets; CTR is its own inverse, so
    the same call encrypts and decrypts.
    """
    crypt = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return crypt.update(data) + crypt.finalize()


def header_mac(tik: bytes, flags: int, iv: bytes, guest_length: int,
               ciphertext: bytes, measurement_mac: bytes) -> bytes:
    """The header MAC the SEV firmware checks before it decrypts."""
    length = guest_length.to_bytes(4, 'little')
    message = (bytes([HEADER_CONTEXT]) + flags.to_bytes(4, 'little') + iv +
               length + len(ciphertext).to_bytes(4, 'little') + ciphertext +
               measurement_mac)
    return hmac.new(tik, message, hashlib.sha256).digest()


def build_launch_secret(tek: bytes, tik: bytes, measurement_mac: bytes,
                        table: bytes, iv: bytes) -> LaunchSecret:
    """The header and payload carrying ``table`` into the launch whose
    measurement is ``measurement_mac``. ``iv`` must be fresh random bytes
    for every secret (CTR mode leaks the plaintext when an IV repeats).
    """
    if len(iv) != IV_LEN:
        raise exception.InvalidSecret(reason='the IV must be %d bytes'
                                      % IV_LEN)
    if len(measurement_mac) != measurement.MAC_LEN:
        raise exception.InvalidSecret(
            reason='the measurement must be %d bytes' % measurement.MAC_LEN)
    payload = aes_ctr(tek, iv, table)
    mac = header_mac(tik, HEADER_FLAGS, iv, len(table), payload,
                     measurement_mac)
    header = HEADER_FLAGS.to_bytes(4, 'little') + iv + mac
    return LaunchSecret(header=header, payload=payload)


def parse_header(header: bytes) -> tuple[int, bytes, bytes]:
    """FLAGS, IV and MAC of a LAUNCH_SECRET header."""
    if len(header) != HEADER_LEN:
        raise exception.InvalidSecret(
            reason='the secret header is %d bytes, not %d'
            % (len(header), HEADER_LEN))
    return (int.from_bytes(header[:4], 'little'), header[4:4 + IV_LEN],
            header[4 + IV_LEN:])


def decode_b64(text: str | bytes, what: str) -> bytes:
    """Strict base64 ``text`` as bytes; InvalidSecret naming ``what``."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise exception.InvalidSecret(reason='%s is not base64: %s'
                                      % (what, e))


def header_mac_matches(tik: bytes, measurement_mac: bytes,
                       secret: LaunchSecret) -> bool:
    """Whether the header's MAC is right for the payload and measurement
    under ``tik``, as the SEV firmware checks it (constant-time).
    """
    flags, iv, mac = parse_header(secret.header)
    expected = header_mac(tik, flags, iv, len(secret.payload),
                          secret.payload, measurement_mac)
    return hmac.compare_digest(expected, mac)


def decrypt_payload(tek: bytes, secret: LaunchSecret) -> bytes:
    """The secret table inside ``secret``, as the SEV firmware writes it
    into guest memory.
    """
    _flags, iv, _mac = parse_header(secret.header)
    return aes_ctr(tek, iv, secret.payload)
