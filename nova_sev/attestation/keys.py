"""The transport keys of an SEV launch session.

The guest owner creates them with the launch session (``sevctl session``):
the TEK (transport encryption key) encrypts the launch secret, the TIK
(transport integrity key) keys the measurement HMAC and the secret's header
MAC. A combined key file holds the TEK then the TIK, 16 bytes each.
"""

import dataclasses

from nova_sev import exception

KEY_LEN = 16


@dataclasses.dataclass(frozen=True)
class TransportKeys:
    """TIK and, where a secret is to be built, TEK (raw bytes)."""

    tik: bytes
    tek: bytes | None = None


def check_key(data: bytes, what: str, source: str) -> bytes:
    """``data`` when it is a 16-byte key; InvalidTransportKey otherwise."""
    if len(data) != KEY_LEN:
        raise exception.InvalidTransportKey(
            what=what, source=source, length=len(data), expected=KEY_LEN)
    return bytes(data)


def split_tk(data: bytes, source: str) -> TransportKeys:
    """The TEK and TIK of a combined key file (TEK first, then TIK)."""
    if len(data) != 2 * KEY_LEN:
        raise exception.InvalidTransportKey(
            what='TEK+TIK key file', source=source, length=len(data),
            expected=2 * KEY_LEN)
    return TransportKeys(tik=bytes(data[KEY_LEN:]), tek=bytes(data[:KEY_LEN]))
