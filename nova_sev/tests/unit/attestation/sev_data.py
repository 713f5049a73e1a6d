"""The public SEV test data of ``nova_sev/tests/data/sev`` (see its
README for where each file comes from).
"""

import os

DATA = os.path.join(os.path.dirname(__file__), '..', '..', 'data', 'sev')


def path(name: str) -> str:
    return os.path.join(DATA, name)


def read(name: str) -> bytes:
    with open(path(name), 'rb') as f:
        return f.read()


def platform(product: str) -> dict[str, bytes]:
    """The real PDH, PEK, OCA and CEK of a Naples or Rome chip."""
    return {role: read('%s-%s.cert' % (product, role))
            for role in ('pdh', 'pek', 'oca', 'cek')}


def cert_chain(product: str) -> bytes:
    """PEK | OCA | CEK, as libvirt's ``cert-chain`` holds them."""
    certs = platform(product)
    return certs['pek'] + certs['oca'] + certs['cek']


def flip_bit(data: bytes, bit: int) -> bytes:
    """``data`` with bit ``bit`` (counted from the first byte's LSB)
    inverted.
    """
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)
