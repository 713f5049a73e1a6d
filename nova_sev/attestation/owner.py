"""The guest owner's half of attestation through Nova's API: what a
server's metadata says, whether the owner can trust it, and what to do
next.

The compute driver publishes the host's facts, the launch measurement and
a state in the server's metadata; the owner answers there with the launch
session and the secret (``nova_sev.attestation.server_metadata`` holds the
names and the chunking). Nothing published is trusted for what it says:
the platform certificates must verify up to AMD's root, the measurement
must verify under the owner's TIK against the digest of the owner's own
firmware, and an SNP report must verify under the VCEK. What is published
only tells the owner what to check and lets a wrong host fail early, with
a reason, before anything is sent.

Pure: a server as the API shows it in, facts and decisions out.
"""

import dataclasses
import hashlib
import hmac

from nova_sev.attestation import host_data
from nova_sev.attestation import measurement
from nova_sev.attestation import server_metadata as sm
from nova_sev import exception

FAMILY_SEV = 'sev'
FAMILY_SNP = 'snp'

# A decision's outcome: go on, poll again, or stop (the owner's refusal,
# or the host's failure as the server's state reports it).
READY = 'ready'
WAIT = 'wait'
REFUSED = 'refused'
FAILED = 'failed'

# The states of an SEV launch, in the order the flow goes through them.
_SEV_STATES = (sm.AWAITING_SESSION, sm.AWAITING_SECRET, sm.RUNNING)

# Nova's status of a server that will not get further by waiting.
_DEAD_STATUSES = ('ERROR', 'DELETED', 'SOFT_DELETED', 'SHELVED',
                  'SHELVED_OFFLOADED')

# The guest policy bit that keeps the host's debugger out (SEV API,
# section 3): a policy without it lets the host read the guest.
SEV_POLICY_NODBG = 0x1
SEV_POLICY_ES = measurement.POLICY_ES
# An SNP launch digest is SHA-384.
SNP_DIGEST_LEN = 48

OPT_IN_ADVICE = (
    'create it with "openstack server create --property %s=true" (or from '
    'an image with the property %s=true)' % (
        sm.ATTEST, sm.IMAGE_ATTEST_PROPERTY))


@dataclasses.dataclass(frozen=True)
class Server:
    """A server as Nova's API shows it, read once per poll."""

    id: str
    name: str
    status: str
    task_state: str | None
    metadata: dict[str, str]
    vcpus: int | None = None


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the owner does with a server now, and why."""

    outcome: str
    reason: str


@dataclasses.dataclass(frozen=True)
class PlatformFacts:
    """What the driver publishes of the SEV platform a guest is placed
    on, before its launch.
    """

    pdh: bytes
    cert_chain: bytes
    cpu0_id: bytes | None
    api_major: int
    api_minor: int
    build: int | None
    policy: int
    firmware_sha256: str


@dataclasses.dataclass(frozen=True)
class SnpFacts:
    """The inputs of an SNP guest's expected digest as the driver
    publishes them at launch; ``digest`` is the host's own figure, for
    information only. The firmware's SHA-384 is absent where the host
    could not read it, the vCPU signature where the vCPUs are the host's
    (host-passthrough), whose signature the owner must give.
    """

    firmware_sha384: str | None
    vcpus: int
    vcpu_sig: int | None
    policy: int
    guest_features: int
    kernel_hashes: bool
    host_data: bytes
    digest: bytes | None


def family(metadata: dict[str, str]) -> str:
    """SNP when the server publishes SNP inputs, else SEV (and SEV-ES,
    told apart by the policy).
    """
    if any(sm.keys_of(metadata, name) for name in sm.SNP_INPUTS):
        return FAMILY_SNP
    return FAMILY_SEV


def opted_in(metadata: dict[str, str]) -> bool:
    """Whether the server asks for attestation: its opt-in, or a state
    the driver published (an image's opt-in shows only that way).
    """
    return sm.STATE in metadata or sm.is_true(metadata.get(sm.ATTEST),
                                              sm.ATTEST)


def await_state(server: Server, wanted: str) -> Decision:
    """Whether ``server`` has reached the state ``wanted`` with no task
    running (Nova accepts the owner's metadata only then), must be waited
    for, or never will.
    """
    metadata = server.metadata
    state = metadata.get(sm.STATE)
    if not opted_in(metadata):
        return Decision(REFUSED, 'server %s never opted in to attestation: '
                        '%s' % (server.id, OPT_IN_ADVICE))
    if sm.is_failed(state) and not _awaits_new_session(server, wanted):
        return Decision(FAILED, 'server %s: %s' % (server.id, state))
    if server.status in _DEAD_STATUSES:
        return Decision(FAILED, 'server %s is %s (state %s)' % (
            server.id, server.status, state or 'not published'))
    if server.task_state is None and server.status != 'BUILD' and (
            state == wanted or _awaits_new_session(server, wanted)):
        return Decision(READY, 'server %s is %s' % (server.id, state))
    if wanted in _SEV_STATES and state in _SEV_STATES and (
            _SEV_STATES.index(state) > _SEV_STATES.index(wanted) and
            server.task_state is None):
        return Decision(REFUSED, _past(server.id, state, wanted))
    return Decision(WAIT, 'server %s: status %s, task %s, state %s' % (
        server.id, server.status, server.task_state or 'none',
        state or 'not published yet'))


def _awaits_new_session(server: Server, wanted: str) -> bool:
    """Whether a failed server awaits a new session: the driver failed
    an earlier launch (a refused or replayed session) and published the
    host's facts again for the next one.
    """
    return (wanted == sm.AWAITING_SESSION and
            sm.is_failed(server.metadata.get(sm.STATE)) and
            bool(sm.keys_of(server.metadata, sm.PDH)))


def _past(server_id: str, state: str, wanted: str) -> str:
    if wanted == sm.AWAITING_SESSION:
        return ('server %s is %s: it was launched with a session already; '
                'finish by hand with that session\'s files, or launch '
                'again for a new session (openstack server reboot --hard)'
                % (server_id, state))
    return 'server %s is %s, not %s' % (server_id, state, wanted)


def _missing(server_id: str, metadata: dict[str, str],
             names: tuple[str, ...]) -> None:
    absent = [n for n in names if sm.unpack(metadata, n) is None]
    if absent:
        raise exception.InvalidInput(
            reason='server %s does not publish %s: is nova-sev\'s compute '
            'driver running its host, and is the guest %s?' % (
                server_id, ', '.join(absent),
                'SEV-SNP' if names[0] in sm.SNP_INPUTS else 'SEV or SEV-ES'))


def _b64(metadata: dict[str, str], name: str, length: int) -> bytes:
    return sm.unpack_b64(metadata, name, length)


def platform_facts(server: Server) -> PlatformFacts:
    """The host facts ``server`` publishes before its launch;
    InvalidInput naming each fact it lacks or that is malformed.
    """
    metadata = server.metadata
    _missing(server.id, metadata, (sm.PDH, sm.CERT_CHAIN, sm.API, sm.POLICY,
                                   sm.FIRMWARE_SHA256))
    api_major, api_minor = sm.parse_api(metadata[sm.API])
    cpu0_id = None
    if sm.unpack(metadata, sm.CPU0_ID) is not None:
        cpu0_id = _b64(metadata, sm.CPU0_ID, sm.CPU0_ID_LEN)
    # The build comes with the measurement: libvirt gives it only then.
    build = None
    if metadata.get(sm.BUILD) is not None:
        build = sm.parse_int(metadata[sm.BUILD], sm.BUILD)
    return PlatformFacts(
        pdh=_b64(metadata, sm.PDH, sm.PDH_LEN),
        cert_chain=_b64(metadata, sm.CERT_CHAIN, sm.CERT_CHAIN_LEN),
        cpu0_id=cpu0_id, api_major=api_major, api_minor=api_minor,
        build=build,
        policy=sm.parse_int(metadata[sm.POLICY], sm.POLICY),
        firmware_sha256=_hex(metadata[sm.FIRMWARE_SHA256],
                             sm.FIRMWARE_SHA256, 32))


def _hex(value: str, name: str, length: int) -> str:
    text = value.strip().lower()
    try:
        ok = len(bytes.fromhex(text)) == length
    except ValueError:
        ok = False
    if not ok:
        raise exception.InvalidInput(
            reason='%s=%s is not %d bytes in hex' % (
                name, exception.excerpt(value), length))
    return text


def verify_platform(facts: PlatformFacts, roots: tuple) -> object:
    """The trusted AMD root (``sev_cert.AmdRoot``) the published PDH and
    chain verify up to; SevChainNotAuthentic when they do not.
    """
    # Imported here: reading a server's facts needs no cryptography, and
    # the commands that only read them must start fast.
    from nova_sev.attestation import sev_cert

    pdh = sev_cert.parse_sev_cert(facts.pdh, sm.PDH, sev_cert.USAGE_PDH)
    chain = sev_cert.parse_chain(facts.cert_chain, sm.CERT_CHAIN)
    return sev_cert.verify_platform(chain, pdh, roots)


def policy_refusal(policy: int, expect_policy: int | None,
                   allow_debug: bool) -> str | None:
    """Why the owner must not launch with the published ``policy``, or
    None. The session binds the policy, so it is checked before one is
    made: a host that publishes a weaker policy gets no session.
    """
    if expect_policy is not None and policy != expect_policy:
        return ('the host would launch with policy %s, not the expected %s'
                % (measurement.describe_policy(policy),
                   measurement.describe_policy(expect_policy)))
    if not policy & SEV_POLICY_NODBG and not allow_debug:
        return ('the host would launch with policy %s, which lets the host '
                'debug (read) the guest; give --allow-debug to accept it'
                % measurement.describe_policy(policy))
    return None


def firmware_refusal(firmware: bytes, published_hex: str | None, name: str,
                     algorithm: str) -> str | None:
    """Why the owner's ``firmware`` is not the one the host says it
    boots, or None (also when the host published no digest: the
    measurement decides then). The launch would not verify anyway;
    refusing first sends nothing to a host that will boot something else.
    """
    if published_hex is None:
        return None
    mine = hashlib.new(algorithm, firmware).hexdigest()
    if hmac.compare_digest(mine, published_hex.strip().lower()):
        return None
    return ('the host boots firmware with %s %s (%s), yours is %s: ask the '
            'operator which build the host has, or use that build' % (
                algorithm, published_hex, name, mine))


def session_items(godh_b64: str, session_b64: str) -> dict[str, str]:
    """The metadata items that answer a server awaiting its session."""
    items = sm.pack(sm.GODH, godh_b64)
    items.update(sm.pack(sm.SESSION, session_b64))
    return items


def secret_items(header_b64: str, payload_b64: str) -> dict[str, str]:
    """The metadata items that carry the launch secret."""
    items = sm.pack(sm.SECRET_HEADER, header_b64)
    items.update(sm.pack(sm.SECRET, payload_b64))
    return items


def launch_report(server: Server) -> measurement.LaunchReport:
    """The launch measurement ``server`` publishes, with the API
    version, build and policy it covers.
    """
    metadata = server.metadata
    _missing(server.id, metadata, (sm.MEASUREMENT, sm.API, sm.BUILD,
                                   sm.POLICY))
    api_major, api_minor = sm.parse_api(metadata[sm.API])
    return measurement.launch_report(
        metadata[sm.MEASUREMENT], api_major, api_minor,
        sm.parse_int(metadata[sm.BUILD], sm.BUILD),
        sm.parse_int(metadata[sm.POLICY], sm.POLICY))


def snp_facts(server: Server) -> SnpFacts:
    """The SNP launch inputs ``server`` publishes; InvalidInput naming
    each one it lacks or that is malformed.
    """
    metadata = server.metadata
    _missing(server.id, metadata, (sm.SNP_VCPUS, sm.SNP_POLICY,
                                   sm.SNP_GUEST_FEATURES,
                                   sm.SNP_KERNEL_HASHES, sm.SNP_HOST_DATA))
    hashes = metadata[sm.SNP_KERNEL_HASHES].strip().lower()
    if hashes not in ('on', 'off'):
        raise exception.InvalidInput(
            reason='%s=%s is neither on nor off' % (
                sm.SNP_KERNEL_HASHES, exception.excerpt(hashes)))
    digest = None
    if metadata.get(sm.SNP_DIGEST):
        digest = bytes.fromhex(_hex(metadata[sm.SNP_DIGEST], sm.SNP_DIGEST,
                                    SNP_DIGEST_LEN))
    firmware = metadata.get(sm.SNP_FIRMWARE_SHA384)
    vcpu_sig = metadata.get(sm.SNP_VCPU_SIG)
    return SnpFacts(
        firmware_sha384=(_hex(firmware, sm.SNP_FIRMWARE_SHA384, 48)
                         if firmware else None),
        vcpus=sm.parse_int(metadata[sm.SNP_VCPUS], sm.SNP_VCPUS),
        vcpu_sig=(sm.parse_int(vcpu_sig, sm.SNP_VCPU_SIG)
                  if vcpu_sig else None),
        policy=sm.parse_int(metadata[sm.SNP_POLICY], sm.SNP_POLICY),
        guest_features=sm.parse_int(metadata[sm.SNP_GUEST_FEATURES],
                                    sm.SNP_GUEST_FEATURES),
        kernel_hashes=hashes == 'on',
        host_data=_b64(metadata, sm.SNP_HOST_DATA, host_data.HOST_DATA_LEN),
        digest=digest)


def host_data_refusal(facts: SnpFacts, server_id: str) -> str | None:
    """Why the published HOST_DATA is not nova-sev's binding of the
    server, or None: a report whose HOST_DATA matches a wrong published
    value would prove nothing about this server.
    """
    if host_data.binds(facts.host_data, server_id):
        return None
    return ('%s is %s, not nova-sev\'s binding of server %s (%s)' % (
        sm.SNP_HOST_DATA, facts.host_data.hex(), server_id,
        host_data.instance_host_data(server_id).hex()))


def describe_platform(facts: PlatformFacts) -> dict:
    """The published platform facts, as ``--format json`` prints them."""
    return {
        'pdh_sha256': hashlib.sha256(facts.pdh).hexdigest(),
        'cert_chain_sha256': hashlib.sha256(facts.cert_chain).hexdigest(),
        'cpu0_id': facts.cpu0_id.hex() if facts.cpu0_id else None,
        'api': sm.format_api(facts.api_major, facts.api_minor),
        'build': facts.build,
        'policy': sm.format_policy(facts.policy),
        'firmware_sha256': facts.firmware_sha256,
    }


def describe_snp(facts: SnpFacts) -> dict:
    """The published SNP inputs, as ``--format json`` prints them."""
    return {
        'firmware_sha384': facts.firmware_sha384,
        'vcpus': facts.vcpus,
        'vcpu_sig': ('0x%x' % facts.vcpu_sig
                     if facts.vcpu_sig is not None else None),
        'policy': '0x%x' % facts.policy,
        'guest_features': '0x%x' % facts.guest_features,
        'kernel_hashes': 'on' if facts.kernel_hashes else 'off',
        'host_data': facts.host_data.hex(),
        'host_digest': facts.digest.hex() if facts.digest else None,
    }
