"""The names and the layout of the attestation flow in a server's metadata.

A cloud user reaches the compute host only through Nova's API, so the
attestation of an SEV launch travels in the server's metadata
(``openstack server set/show --property``): the compute driver publishes
the host's facts, the launch measurement and a state, and the guest owner
writes the launch session and the secret. Both sides take every name and
the chunking from here, so that they cannot drift apart; nothing here
imports Nova or libvirt.

Nova limits a value to 255 characters and a key to
``^[a-zA-Z0-9-_:. ]{1,255}$``. A value that may be longer is *chunked*:
``<name>.0``, ``<name>.1``, ... each at most 255 characters, read back in
order up to the first missing index. The names in ``CHUNKED`` are always
chunked, even when short, so that a reader never guesses. Binary values are
standard base64; a fixed-size value is checked by its decoded length, which
also catches a lost or stale chunk.
"""

import base64
import binascii
import re

from nova_sev import exception

PREFIX = 'nova-sev:'
# Nova's limit on a metadata value (and on a key), in characters.
MAX_VALUE_CHARS = 255

# The opt-in: server metadata at create, or an image property (Nova keeps
# unknown image properties in system_metadata as ``image_<name>``).
ATTEST = PREFIX + 'attest'
IMAGE_ATTEST_PROPERTY = 'nova_sev_attest'
# A stricter policy than [sev]policy: the owner's image property, the
# admin's flavor extra spec.
IMAGE_POLICY_PROPERTY = 'nova_sev_policy'
FLAVOR_POLICY_SPEC = PREFIX + 'policy'

# Published by the compute driver.
STATE = PREFIX + 'state'
PDH = PREFIX + 'pdh'
CERT_CHAIN = PREFIX + 'cert-chain'
CPU0_ID = PREFIX + 'cpu0-id'
API = PREFIX + 'api'
BUILD = PREFIX + 'build'
POLICY = PREFIX + 'policy'
FIRMWARE_SHA256 = PREFIX + 'firmware-sha256'
MEASUREMENT = PREFIX + 'measurement'

# Written by the guest owner.
GODH = PREFIX + 'godh'
SESSION = PREFIX + 'session'
SECRET_HEADER = PREFIX + 'secret-header'
SECRET = PREFIX + 'secret'

# SEV-SNP: the inputs of the expected digest, published at launch.
SNP_FIRMWARE_SHA384 = PREFIX + 'snp-firmware-sha384'
SNP_VCPUS = PREFIX + 'snp-vcpus'
SNP_VCPU_SIG = PREFIX + 'snp-vcpu-sig'
SNP_POLICY = PREFIX + 'snp-policy'
SNP_GUEST_FEATURES = PREFIX + 'snp-guest-features'
SNP_KERNEL_HASHES = PREFIX + 'snp-kernel-hashes'
SNP_HOST_DATA = PREFIX + 'snp-host-data'
SNP_DIGEST = PREFIX + 'snp-digest'

CHUNKED = frozenset({PDH, CERT_CHAIN, GODH, SECRET})

# What the driver publishes once the guest is placed, and deletes once
# they have been used (by a launch) or have gone stale (a new host).
HOST_FACTS = (PDH, CERT_CHAIN, CPU0_ID, API, BUILD, POLICY, FIRMWARE_SHA256)
LAUNCH_RESULT = (MEASUREMENT,)
SESSION_KEYS = (GODH, SESSION)
SECRET_KEYS = (SECRET_HEADER, SECRET)
SNP_INPUTS = (SNP_FIRMWARE_SHA384, SNP_VCPUS, SNP_VCPU_SIG, SNP_POLICY,
              SNP_GUEST_FEATURES, SNP_KERNEL_HASHES, SNP_HOST_DATA,
              SNP_DIGEST)
# Every name the driver writes (STATE stays while the guest is attested).
DRIVER_KEYS = HOST_FACTS + LAUNCH_RESULT + SNP_INPUTS + (STATE,)

# The values of STATE.
AWAITING_SESSION = 'awaiting-session'
AWAITING_SECRET = 'awaiting-secret'
RUNNING = 'running'
FAILED = 'failed'
_FAILED_PREFIX = FAILED + ': '

# Decoded sizes, AMD SEV API (pub. 55766) appendix C and section 6.2.
PDH_LEN = 2084
CERT_CHAIN_LEN = 3 * 2084    # PEK || OCA || CEK, as libvirt gives them
GODH_LEN = 2084
SESSION_LEN = 128
CPU0_ID_LEN = 64
MEASUREMENT_LEN = 48         # MEASURE (32) || MNONCE (16)
SECRET_HEADER_LEN = 52

_TRUE = frozenset({'true', 'yes', 'on', '1'})
_FALSE = frozenset({'false', 'no', 'off', '0', ''})
_CHUNK_RE = re.compile(r'^(?P<name>.+)\.(?P<index>0|[1-9][0-9]*)$')


def pack(name: str, value: str) -> dict[str, str]:
    """The metadata items that carry ``value`` under ``name``: chunks for
    a name in ``CHUNKED``, one item otherwise (InvalidInput when longer
    than Nova accepts).
    """
    if name in CHUNKED:
        chunks = [value[i:i + MAX_VALUE_CHARS]
                  for i in range(0, len(value), MAX_VALUE_CHARS)] or ['']
        return {'%s.%d' % (name, i): c for i, c in enumerate(chunks)}
    if len(value) > MAX_VALUE_CHARS:
        raise exception.InvalidInput(
            reason='%s takes at most %d characters, got %d' % (
                name, MAX_VALUE_CHARS, len(value)))
    return {name: value}


def pack_b64(name: str, data: bytes) -> dict[str, str]:
    """``pack`` of ``data`` in standard base64."""
    return pack(name, base64.b64encode(data).decode('ascii'))


def _indexes(metadata: 'dict[str, str]', name: str) -> list[int]:
    found = []
    for key in metadata:
        match = _CHUNK_RE.match(key)
        if match and match.group('name') == name:
            found.append(int(match.group('index')))
    return sorted(found)


def unpack(metadata: 'dict[str, str]', name: str) -> str | None:
    """The value of ``name`` in ``metadata``, its chunks joined; None when
    absent. A chunk sequence with a gap is refused (InvalidInput): a chunk
    was lost or is left over from an older value.
    """
    if name not in CHUNKED:
        return metadata.get(name)
    indexes = _indexes(metadata, name)
    if not indexes:
        return None
    if indexes != list(range(len(indexes))):
        missing = sorted(set(range(indexes[-1] + 1)) - set(indexes))
        raise exception.InvalidInput(
            reason='%s is chunked as %s.0, %s.1, ... but %s is missing; '
                   'write the whole value again' % (
                       name, name, name,
                       ', '.join('%s.%d' % (name, i) for i in missing)))
    return ''.join(metadata['%s.%d' % (name, i)] for i in indexes)


def keys_of(metadata: 'dict[str, str]', name: str) -> list[str]:
    """The keys of ``metadata`` that carry ``name`` (its chunks, or the
    name itself).
    """
    if name in CHUNKED:
        return ['%s.%d' % (name, i) for i in _indexes(metadata, name)]
    return [name] if name in metadata else []


def decode_b64(value: str, name: str, length: int | None = None) -> bytes:
    """The bytes of the base64 ``value`` of ``name``; InvalidInput when it
    is not base64 or, given ``length``, does not decode to that many bytes.
    """
    try:
        data = base64.b64decode(value.encode('ascii'), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise exception.InvalidInput(
            reason='%s is not standard base64: %s' % (
                name, exception.excerpt(value)))
    if length is not None and len(data) != length:
        raise exception.InvalidInput(
            reason='%s decodes to %d bytes, expected %d; write the whole '
                   'value again' % (name, len(data), length))
    return data


def unpack_b64(metadata: 'dict[str, str]', name: str,
               length: int | None = None) -> bytes | None:
    """``unpack`` then ``decode_b64``; None when ``name`` is absent."""
    value = unpack(metadata, name)
    return None if value is None else decode_b64(value, name, length)


def is_true(value: str | None, name: str) -> bool:
    """Whether the opt-in ``value`` of ``name`` says yes (absent: no);
    InvalidInput for anything but a boolean word.
    """
    if value is None:
        return False
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise exception.InvalidInput(
        reason='%s=%s is not a boolean; use true or false' % (
            name, exception.excerpt(value)))


def failed(reason: str) -> str:
    """The STATE value of a failure, cut to what Nova stores."""
    return (_FAILED_PREFIX + reason)[:MAX_VALUE_CHARS]


def is_failed(state: str | None) -> bool:
    """Whether a STATE value reports a failure."""
    return state is not None and (
        state == FAILED or state.startswith(_FAILED_PREFIX))


def failure_reason(state: str) -> str:
    """The reason of a failed STATE value ('' for a bare ``failed``)."""
    return state[len(_FAILED_PREFIX):] if is_failed(state) else ''


def format_policy(policy: int) -> str:
    """A policy as published (``0x%04x``)."""
    return '0x%04x' % policy


def format_api(major: int, minor: int) -> str:
    """A firmware API version as published (``MAJOR.MINOR``)."""
    return '%d.%d' % (major, minor)


def parse_api(value: str) -> tuple[int, int]:
    """``(major, minor)`` of a published API version; InvalidInput
    otherwise.
    """
    match = re.match(r'^([0-9]{1,3})\.([0-9]{1,3})$', value or '')
    if not match:
        raise exception.InvalidInput(
            reason='%s=%s is not MAJOR.MINOR' % (
                API, exception.excerpt(value)))
    return int(match.group(1)), int(match.group(2))


def parse_int(value: str, name: str) -> int:
    """A published integer (decimal, or hex with 0x); InvalidInput
    otherwise.
    """
    try:
        text = value.strip().lower()
        return int(text, 16) if text.startswith('0x') else int(text, 10)
    except (AttributeError, TypeError, ValueError):
        raise exception.InvalidInput(
            reason='%s=%s is not an integer' % (
                name, exception.excerpt(value)))
