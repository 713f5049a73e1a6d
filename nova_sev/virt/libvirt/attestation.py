"""The compute side of the owner's attestation of an SEV launch, through
Nova's API (the protocol: ``nova_sev.attestation.server_metadata``).

An owner who opted in (server metadata ``nova-sev:attest=true`` at create,
or the image's ``nova_sev_attest``) gets a guest that never runs before
they have checked its launch:

1. Once the guest is placed (spawn, and every operation that builds it
   again: hard reboot without a session, cold migration, resize,
   evacuation, unshelve), its domain is defined but not started, and the
   host's facts are published: the platform's PDH, its chain and cpu0 id,
   the firmware API version, the policy and the firmware's SHA-256.
2. The owner writes the GODH certificate and the session and launches
   (hard reboot, or start): the domain gets ``<dhCert>``/``<session>``,
   starts paused and its measurement is published; the session and the
   host facts are deleted (a session is used once).
3. The owner checks the measurement, writes the secret (optional) and
   releases (soft reboot, or unpause): the secret is injected while the
   guest is paused, then it runs.

A refused session, launch or secret leaves the guest as safe as before
(not started, or still paused), with a ``failed: ...`` state and an
instance action event that say why and what to do; nothing raises, so
the instance never goes to ERROR for the owner's mistake.

The decisions are pure functions of the flow's state (``read_flow``: the
metadata and system_metadata, read once per operation) and of what
libvirt said; ``AttestationFlow`` holds the I/O: the metadata writes, the
libvirt calls and the timers of ``[sev]attestation_timeout``.

What the driver decides from is its own record in ``system_metadata``
(``nova_sev_phase``, which the owner cannot write), never the published
``nova-sev:state``, which is for the owner to read.

Why ``nova-sev:api`` comes from the PDH certificate and ``nova-sev:build``
only with the measurement: libvirt's ``getSEVInfo`` has neither, and the
firmware's PLATFORM_STATUS (``/dev/sev``) is root's. The PDH certificate
carries the API version of the firmware that generated it (AMD SEV API,
appendix C.1), which is what the owner's session is made for; the build
is needed only to check the measurement, and ``launchSecurityInfo`` gives
it with the measurement (``sev-build-id``), as launched.
"""

import dataclasses
import enum
import hashlib
import threading
from typing import Any, Callable

from nova.compute import power_state
from nova import context as nova_context
from nova import exception as nova_exception
from nova import objects
from nova.virt.libvirt import host as nova_host
from oslo_log import log as logging

from nova_sev.attestation import launch_digest
from nova_sev.attestation import launch_inputs
from nova_sev.attestation import server_metadata as sm
from nova_sev import exception

LOG = logging.getLogger(__name__)

# libvirt-python's names (VIR_DOMAIN_LAUNCH_SECURITY_*, VIR_NODE_SEV_*):
# Nova's fake libvirt module replaces libvirt in Nova's modules and has
# none of them.
SEV_MEASUREMENT = 'sev-measurement'
SEV_API_MAJOR = 'sev-api-major'
SEV_API_MINOR = 'sev-api-minor'
SEV_BUILD_ID = 'sev-build-id'
SEV_POLICY = 'sev-policy'
SEV_SECRET_HEADER = 'sev-secret-header'
SEV_SECRET = 'sev-secret'
NODE_PDH = 'pdh'
NODE_CERT_CHAIN = 'cert-chain'
NODE_CPU0_ID = 'cpu0-id'

# The driver's own record, in system_metadata (not user-writable): the
# guest is attested (sticky: an owner's PUT of the metadata must not make
# it run unattested), where its launch is, and the sessions used.
SYSMETA_ATTESTED = 'nova_sev_attested'
SYSMETA_PHASE = 'nova_sev_phase'
SYSMETA_SESSIONS = 'nova_sev_used_sessions'
# A used session is remembered by this many hex digits of its SHA-256
# (80 bits), as many as fit in one system_metadata value.
SESSION_DIGEST_CHARS = 20
SESSIONS_KEPT = 12

# launch_inputs' name of an SEV-SNP launch.
SNP_MODE = launch_digest.MODE_SNP

# The instance action event of a refused attestation step.
EVENT_ATTESTATION = 'nova_sev_attestation'

# Where the PDH certificate holds the firmware's API version (AMD SEV API
# appendix C.1: version u32, api_major u8, api_minor u8).
_PDH_API_MAJOR_OFFSET = 4
_PDH_API_MINOR_OFFSET = 5


class Phase(str, enum.Enum):
    """Where an attested guest's launch is (``SYSMETA_PHASE``)."""

    AWAITING_SESSION = sm.AWAITING_SESSION
    AWAITING_SECRET = sm.AWAITING_SECRET
    RUNNING = sm.RUNNING


class Step(enum.Enum):
    """What an operation that builds the guest does with it."""

    # Not attested: Nova's own way.
    NONE = 'none'
    # Define it, do not start it; publish the host facts.
    AWAIT_SESSION = 'await-session'
    # Start it paused with the owner's session; publish the measurement.
    LAUNCH = 'launch'
    # SEV-SNP: start it as Nova does; publish the digest's inputs.
    SNP = 'snp'

    @property
    def nova_starts(self) -> bool:
        """Whether Nova starts the guest as it would any other."""
        return self in (Step.NONE, Step.SNP)


@dataclasses.dataclass(frozen=True)
class Flow:
    """The attestation state of one instance, as one operation read it.

    ``session_refusal``/``secret_refusal`` say why the owner's session or
    secret cannot be used (None: usable or absent).
    """

    attested: bool
    phase: Phase | None = None
    godh_b64: str | None = None
    session_b64: str | None = None
    session_digest: str | None = None
    session_refusal: str | None = None
    secret_header_b64: str | None = None
    secret_b64: str | None = None
    secret_refusal: str | None = None

    @property
    def has_session(self) -> bool:
        return self.session_b64 is not None and self.session_refusal is None

    @property
    def has_secret(self) -> bool:
        return self.secret_b64 is not None and self.secret_refusal is None


NOT_ATTESTED = Flow(attested=False)


def opted_in(metadata: 'dict[str, str]',
             system_metadata: 'dict[str, str]') -> bool:
    """Whether the owner asked for an attested launch: the server's
    ``nova-sev:attest``, the image's ``nova_sev_attest`` (Nova keeps it in
    system_metadata as ``image_nova_sev_attest``), or an earlier operation
    that recorded it. InvalidInput for a value that is not a boolean.
    """
    if sm.is_true(system_metadata.get(SYSMETA_ATTESTED), SYSMETA_ATTESTED):
        return True
    return (sm.is_true(metadata.get(sm.ATTEST), sm.ATTEST) or
            sm.is_true(system_metadata.get('image_' +
                                           sm.IMAGE_ATTEST_PROPERTY),
                       'image property ' + sm.IMAGE_ATTEST_PROPERTY))


def instance_opted_in(instance: 'objects.Instance') -> bool:
    """``opted_in`` of an instance object; an object that cannot load its
    metadata (one built by hand, without a context) has none.
    """
    try:
        metadata = instance.metadata
    except nova_exception.OrphanedObjectError:
        metadata = {}
    return opted_in(metadata, instance.system_metadata)


def session_digest(session: bytes) -> str:
    """How a used session is remembered."""
    return hashlib.sha256(session).hexdigest()[:SESSION_DIGEST_CHARS]


def used_sessions(system_metadata: 'dict[str, str]') -> list[str]:
    """The digests of the sessions launched with, oldest first."""
    return (system_metadata.get(SYSMETA_SESSIONS) or '').split()


def remember_session(system_metadata: 'dict[str, str]',
                     digest: str) -> str:
    """The ``SYSMETA_SESSIONS`` value once ``digest`` was used."""
    kept = [d for d in used_sessions(system_metadata) if d != digest]
    return ' '.join((kept + [digest])[-SESSIONS_KEPT:])


def _read_session(metadata, system_metadata):
    """(godh, session, digest, refusal) of the owner's launch session."""
    try:
        godh = sm.unpack(metadata, sm.GODH)
        session = sm.unpack(metadata, sm.SESSION)
    except exception.InvalidInput as e:
        return None, None, None, e.kwargs.get('reason', e.message)
    if godh is None and session is None:
        return None, None, None, None
    if godh is None or session is None:
        missing = sm.GODH if godh is None else sm.SESSION
        return godh, session, None, (
            '%s is missing: write both %s and %s (from nova-sev session)'
            % (missing, sm.GODH, sm.SESSION))
    try:
        sm.decode_b64(godh, sm.GODH, sm.GODH_LEN)
        raw = sm.decode_b64(session, sm.SESSION, sm.SESSION_LEN)
    except exception.InvalidInput as e:
        return godh, session, None, e.kwargs.get('reason', e.message)
    digest = session_digest(raw)
    if digest in used_sessions(system_metadata):
        return godh, session, digest, (
            'this session was used for an earlier launch and a session is '
            'used once: make a new one (nova-sev session) for the PDH now '
            'published')
    return godh, session, digest, None


def _read_secret(metadata):
    """(header, secret, refusal) of the owner's launch secret."""
    try:
        header = sm.unpack(metadata, sm.SECRET_HEADER)
        secret = sm.unpack(metadata, sm.SECRET)
    except exception.InvalidInput as e:
        return None, None, e.kwargs.get('reason', e.message)
    if header is None and secret is None:
        return None, None, None
    if header is None or secret is None:
        missing = sm.SECRET_HEADER if header is None else sm.SECRET
        return header, secret, (
            '%s is missing: write both %s and %s (from nova-sev '
            'build-secret)' % (missing, sm.SECRET_HEADER, sm.SECRET))
    try:
        sm.decode_b64(header, sm.SECRET_HEADER, sm.SECRET_HEADER_LEN)
        sm.decode_b64(secret, sm.SECRET)
    except exception.InvalidInput as e:
        return header, secret, e.kwargs.get('reason', e.message)
    return header, secret, None


def read_flow(metadata: 'dict[str, str]',
              system_metadata: 'dict[str, str]') -> Flow:
    """The attestation state of an instance from its metadata and
    system_metadata (NOT_ATTESTED when the owner did not opt in).
    InvalidInput when the opt-in is not a boolean.
    """
    if not opted_in(metadata, system_metadata):
        return NOT_ATTESTED
    phase = system_metadata.get(SYSMETA_PHASE)
    godh, session, digest, session_refusal = _read_session(
        metadata, system_metadata)
    header, secret, secret_refusal = _read_secret(metadata)
    return Flow(
        attested=True,
        phase=Phase(phase) if phase in {p.value for p in Phase} else None,
        godh_b64=godh, session_b64=session, session_digest=digest,
        session_refusal=session_refusal, secret_header_b64=header,
        secret_b64=secret, secret_refusal=secret_refusal)


def build_step(flow: Flow, snp: bool, launching: bool) -> Step:
    """What an operation that builds the guest does: ``launching`` is a
    hard reboot or start (the owner's launch), any other build (spawn, a
    move) only defines it.
    """
    if not flow.attested:
        return Step.NONE
    if snp:
        return Step.SNP
    if launching and flow.has_session:
        return Step.LAUNCH
    return Step.AWAIT_SESSION


def releases(flow: Flow) -> bool:
    """Whether a soft reboot (or unpause) is the owner's release: the
    guest was launched paused and waits for its secret.
    """
    return flow.attested and flow.phase is Phase.AWAITING_SECRET


def pdh_api_version(pdh: bytes) -> tuple[int, int] | None:
    """The firmware API version a PDH certificate was generated by."""
    if len(pdh) != sm.PDH_LEN:
        return None
    return pdh[_PDH_API_MAJOR_OFFSET], pdh[_PDH_API_MINOR_OFFSET]


def host_facts(sev_info: dict, policy: int,
               firmware_sha256: str | None) -> dict[str, str]:
    """The metadata items that tell the owner what the guest will be
    launched on and with (libvirt's ``getSEVInfo``, the plan's policy, the
    firmware's digest). InvalidInput when libvirt's values are not what
    the SEV API defines.
    """
    pdh = sm.decode_b64(str(sev_info.get(NODE_PDH) or ''), 'getSEVInfo pdh',
                        sm.PDH_LEN)
    chain = sm.decode_b64(str(sev_info.get(NODE_CERT_CHAIN) or ''),
                          'getSEVInfo cert-chain', sm.CERT_CHAIN_LEN)
    items = {}
    items.update(sm.pack_b64(sm.PDH, pdh))
    items.update(sm.pack_b64(sm.CERT_CHAIN, chain))
    if sev_info.get(NODE_CPU0_ID):
        items.update(sm.pack(sm.CPU0_ID, str(sev_info[NODE_CPU0_ID])))
    items.update(sm.pack(sm.API, sm.format_api(*pdh_api_version(pdh))))
    items.update(sm.pack(sm.POLICY, sm.format_policy(policy)))
    if firmware_sha256:
        items.update(sm.pack(sm.FIRMWARE_SHA256, firmware_sha256))
    return items


def launch_result(info: dict) -> dict[str, str]:
    """The metadata items of a measured launch (libvirt's
    ``launchSecurityInfo``); InvalidInput when it has no measurement.
    """
    measurement = str(info.get(SEV_MEASUREMENT) or '')
    sm.decode_b64(measurement, 'launchSecurityInfo sev-measurement',
                  sm.MEASUREMENT_LEN)
    items = {sm.MEASUREMENT: measurement,
             sm.STATE: sm.AWAITING_SECRET}
    if info.get(SEV_API_MAJOR) is not None:
        items[sm.API] = sm.format_api(int(info[SEV_API_MAJOR]),
                                      int(info.get(SEV_API_MINOR) or 0))
    if info.get(SEV_BUILD_ID) is not None:
        items[sm.BUILD] = str(int(info[SEV_BUILD_ID]))
    if info.get(SEV_POLICY) is not None:
        items[sm.POLICY] = sm.format_policy(int(info[SEV_POLICY]))
    return items


def snp_inputs(domain_xml: str, firmware_sha384: str | None,
               vcpu_sig: int | None) -> dict[str, str]:
    """The metadata items of an SEV-SNP launch: the inputs of the expected
    digest, read from the domain, and the digest the host computes from
    them (for information: the owner recomputes it from their own copy of
    the firmware). ``firmware_sha384`` None: the firmware is unreadable
    here, and both are published without it.
    """
    launch = launch_inputs.domain_launch(domain_xml)
    items = {
        sm.SNP_VCPUS: str(launch.vcpus),
        sm.SNP_POLICY: '0x%x' % (launch.policy or 0),
        sm.SNP_GUEST_FEATURES: '0x%x' % launch_digest.DEFAULT_GUEST_FEATURES,
        sm.SNP_KERNEL_HASHES: 'on' if launch.kernel_hashes else 'off',
        sm.STATE: sm.RUNNING,
    }
    if launch.host_data:
        items[sm.SNP_HOST_DATA] = launch.host_data
    if vcpu_sig is not None:
        items[sm.SNP_VCPU_SIG] = '0x%x' % vcpu_sig
    if firmware_sha384 is not None:
        items[sm.SNP_FIRMWARE_SHA384] = firmware_sha384
        if vcpu_sig is not None and launch.firmware:
            try:
                hashed = launch.kernel_hashes
                digest = launch_digest.launch_digest(
                    launch_digest.LaunchInputs(
                        mode=SNP_MODE, ovmf=launch.firmware,
                        vcpus=launch.vcpus, vcpu_sig=vcpu_sig,
                        kernel=launch.kernel if hashed else None,
                        initrd=launch.initrd if hashed else None,
                        append=launch.cmdline if hashed else None))
                items[sm.SNP_DIGEST] = digest.hex()
            except exception.InvalidLaunchInputs as e:
                LOG.warning('No SEV-SNP digest published: %s', e.message)
    return items


def vcpu_signature(domain_xml: str) -> int | None:
    """The CPUID signature the domain's vCPUs have, where the XML names a
    model QEMU knows; None for host-model and host-passthrough.
    """
    launch = launch_inputs.domain_launch(domain_xml)
    if launch.vcpu_type is None or launch.host_cpu:
        return None
    try:
        return launch_digest.vcpu_signature(launch.vcpu_type)
    except exception.InvalidInput:
        return None


def metadata_changes(current: 'dict[str, str]', items: 'dict[str, str]',
                     remove: 'tuple[str, ...] | list[str]'
                     ) -> tuple[dict[str, str], list[str]]:
    """What to write and which keys to delete so that ``current`` gets
    ``items`` and loses the names in ``remove`` (their chunks too), and no
    chunk of an older, longer value of a written name stays behind.
    """
    delete = set()
    for name in remove:
        delete.update(sm.keys_of(current, name))
    for name in sm.CHUNKED:
        written = sm.keys_of(items, name)
        if written:
            delete.update(set(sm.keys_of(current, name)) - set(written))
    write = {k: v for k, v in items.items() if current.get(k) != v}
    return write, sorted(delete - set(items))


class AttestationFlow:
    """The I/O of the attestation flow for one driver: libvirt's calls,
    the metadata writes and the timers of ``[sev]attestation_timeout``.

    ``host`` is Nova's libvirt Host; ``record(context, instance, event,
    error)`` records a refusal as an instance action event.
    """

    def __init__(self, host: Any, timeout_s: Callable[[], int],
                 record: Callable) -> None:
        self._host = host
        self._timeout_s = timeout_s
        self._record = record
        # uuid -> (Flow, Step) of the operation under way on that guest
        # (Nova runs one at a time per instance).
        self._operations: dict[str, tuple[Flow, Step]] = {}
        # uuids whose guest an operation holds back (defined, or launched
        # paused): Nova's wait for RUNNING must end, and its resume not
        # run it.
        self._held: set[str] = set()
        # uuid -> the domain XML an SEV-SNP operation defined.
        self._snp_xml: dict[str, str] = {}
        # uuid -> (token, timer) of a guest waiting, paused, for its
        # secret.
        self._timers: dict[str, tuple[object, threading.Timer]] = {}
        self._lock = threading.Lock()

    # -- the flow of an operation ----------------------------------------

    def begin(self, context, instance, sev: bool, snp: bool,
              launching: bool) -> Step:
        """Read the flow of ``instance`` once for the operation that
        starts (its fresh metadata) and decide the operation's step:
        ``sev``/``snp`` say what the guest plan is, ``launching`` whether
        this is the owner's launch (hard reboot, start). SevGuestRefused
        when the owner asks to attest a guest that is not SEV.
        """
        flow = self.read(context, instance)
        if flow.attested and not sev:
            raise exception.SevGuestRefused(
                reason='%s asks for an attested SEV launch but the flavor '
                'and image ask for no SEV: ask for SEV (hw:mem_encryption) '
                'or remove %s' % (sm.ATTEST, sm.ATTEST))
        step = build_step(flow, snp, launching)
        self._operations[instance.uuid] = (flow, step)
        return step

    def end(self, instance) -> None:
        """The operation on ``instance`` is over."""
        self._operations.pop(instance.uuid, None)
        self._held.discard(instance.uuid)
        self._snp_xml.pop(instance.uuid, None)

    def read(self, context, instance) -> Flow:
        """The flow from the database (or, without ``context``, from the
        instance object); NOT_ATTESTED without reading when the instance
        object says no opt-in.
        """
        if not instance_opted_in(instance):
            return NOT_ATTESTED
        metadata = instance.metadata
        if context is not None:
            metadata = self._fresh(context, instance).metadata
        return read_flow(metadata, instance.system_metadata)

    def is_held(self, instance) -> bool:
        return instance.uuid in self._held

    def launch_session(self, instance) -> tuple[str, str] | None:
        """The (GODH, session) the domain launches with, base64; None when
        the operation does not launch.
        """
        flow, step = self._operations.get(instance.uuid,
                                          (NOT_ATTESTED, Step.NONE))
        if step is not Step.LAUNCH:
            return None
        return flow.godh_b64, flow.session_b64

    # -- building the guest --------------------------------------------

    def create_guest(self, create: Callable, context, xml: str, instance,
                     power_on: bool, pause: bool,
                     post_xml_callback: Callable | None) -> Any:
        """Nova's ``_create_guest`` (``create``) for an attested guest:
        never started but for the owner's launch, and then paused. Returns
        a guest whose ``resume`` does nothing (Nova resumes a guest it
        paused for VIF events). A launch that libvirt refuses leaves the
        guest defined and not running, and the operation's flow saying
        why.
        """
        operation = self._operations.get(instance.uuid)
        if operation is None:
            # Built outside the operations that read the flow (unrescue):
            # never started all the same, and not held, since no
            # operation would end the hold.
            flow = self.read(None, instance)
            snp = launch_inputs.domain_launch(xml).mode == SNP_MODE
            step = build_step(flow, snp, False)
            if not step.nova_starts:
                return create(context, xml, instance, power_on=False,
                              pause=False,
                              post_xml_callback=post_xml_callback)
            operation = flow, step
        flow, step = operation
        if step is Step.SNP:
            # The inputs of the digest are read from the domain as
            # defined (libvirt's XMLDesc may not keep <launchSecurity>).
            self._snp_xml[instance.uuid] = xml
        if step.nova_starts:
            return create(context, xml, instance, power_on=power_on,
                          pause=pause, post_xml_callback=post_xml_callback)
        self._held.add(instance.uuid)
        if step is Step.AWAIT_SESSION:
            return HeldGuest(create(context, xml, instance, power_on=False,
                                    pause=False,
                                    post_xml_callback=post_xml_callback))
        # Nova's own launch, paused: QEMU measures the guest as it starts
        # and runs none of it until resumed.
        try:
            return HeldGuest(create(context, xml, instance, power_on=False,
                                    pause=True,
                                    post_xml_callback=post_xml_callback))
        except nova_host.libvirt.libvirtError as e:
            LOG.warning('The SEV launch was refused: %s', e,
                        instance=instance)
            self._operations[instance.uuid] = (dataclasses.replace(
                flow, session_refusal='launch refused: %s' % e), step)
            return HeldGuest(self._host.get_guest(instance))

    # -- after the operation -------------------------------------------

    def after_build(self, context, instance, policy: int,
                    firmware_path: str | None, domain_xml: str | None = None
                    ) -> None:
        """Publish what the operation's step calls for, once Nova built the
        guest: the host facts (await a session), the measurement (a
        launch), the SNP inputs.
        """
        flow, step = self._operations.get(instance.uuid,
                                          (NOT_ATTESTED, Step.NONE))
        if step is Step.NONE:
            return
        instance.system_metadata[SYSMETA_ATTESTED] = 'true'
        if step is Step.SNP:
            self._publish_snp(context, instance,
                              domain_xml or self._snp_xml.get(instance.uuid))
            return
        if step is Step.LAUNCH and flow.session_digest:
            # Used once, whether or not the firmware took it.
            instance.system_metadata[SYSMETA_SESSIONS] = remember_session(
                instance.system_metadata, flow.session_digest)
        if step is Step.LAUNCH and flow.session_refusal is None:
            self._after_launch(context, instance, flow, policy,
                               firmware_path)
        else:
            self._await_session(context, instance, flow, policy,
                                firmware_path)

    def _await_session(self, context, instance, flow: Flow, policy: int,
                       firmware_path: str | None) -> None:
        """Publish the host facts of a guest defined and not started.
        The owner's session, if any, is stale or refused here: deleted.
        """
        state = sm.AWAITING_SESSION
        if flow.session_refusal is not None:
            state = sm.failed('%s; a new session is awaited' %
                              flow.session_refusal)
            self._refuse(context, instance, flow.session_refusal)
        self._cancel_timer(instance)
        items = host_facts(self._sev_info(), policy,
                           launch_inputs.file_digest(firmware_path, 'sha256'))
        items[sm.STATE] = state
        self.publish(context, instance, items,
                     remove=sm.SESSION_KEYS + sm.LAUNCH_RESULT +
                     sm.SECRET_KEYS + (sm.BUILD,),
                     phase=Phase.AWAITING_SESSION)

    def _after_launch(self, context, instance, flow: Flow, policy: int,
                      firmware_path: str | None) -> None:
        """Publish the measurement of a guest launched paused."""
        try:
            info = self._domain(instance).launchSecurityInfo(0)
            items = launch_result(info)
        except (nova_host.libvirt.libvirtError,
                exception.InvalidInput) as e:
            # No measurement to check: the guest must not wait, paused,
            # for a secret that could not be checked.
            LOG.warning('No launch measurement: %s', e, instance=instance)
            self._host.get_guest(instance).poweroff()
            self._await_session(
                context, instance,
                dataclasses.replace(flow, session_refusal=(
                    'no launch measurement: %s' % e)),
                policy, firmware_path)
            return
        # The firmware as launched: the file may have changed since the
        # host facts were published.
        sha256 = launch_inputs.file_digest(firmware_path, 'sha256')
        if sha256:
            items[sm.FIRMWARE_SHA256] = sha256
        self.publish(context, instance, items,
                     remove=sm.SESSION_KEYS + (sm.PDH, sm.CERT_CHAIN,
                                               sm.CPU0_ID),
                     phase=Phase.AWAITING_SECRET)
        self._arm_timer(instance)

    def _publish_snp(self, context, instance, domain_xml) -> None:
        if domain_xml is None:
            domain_xml = self._domain(instance).XMLDesc(0)
        firmware_path = launch_inputs.domain_launch(domain_xml).firmware
        sha384 = launch_inputs.file_digest(firmware_path, 'sha384')
        if sha384 is None:
            LOG.warning('SEV-SNP firmware %s not readable: its digest is '
                        'not published', firmware_path, instance=instance)
        items = snp_inputs(domain_xml, sha384, vcpu_signature(domain_xml))
        self.publish(context, instance, items, remove=sm.HOST_FACTS,
                     phase=Phase.RUNNING)

    # -- the release ----------------------------------------------------

    def release(self, context, instance, flow: Flow) -> None:
        """Inject the owner's secret (if any) into the paused guest, then
        run it. A refused secret leaves it paused, saying why.
        """
        guest = self._host.get_guest(instance)
        if guest.get_power_state(self._host) != power_state.PAUSED:
            reason = ('the guest is not paused awaiting its secret (shut '
                      'off?): make a new session and launch it again '
                      '(openstack server reboot --hard)')
            self._refuse(context, instance, reason)
            self.publish(context, instance, {sm.STATE: sm.failed(reason)},
                         remove=sm.SECRET_KEYS)
            return
        if flow.secret_refusal is not None:
            self._refuse_secret(context, instance, flow.secret_refusal)
            return
        if flow.has_secret:
            try:
                guest._domain.setLaunchSecurityState(
                    {SEV_SECRET_HEADER: flow.secret_header_b64,
                     SEV_SECRET: flow.secret_b64}, 0)
            except nova_host.libvirt.libvirtError as e:
                self._refuse_secret(
                    context, instance,
                    'secret refused by the firmware (%s)' % e)
                return
        self._cancel_timer(instance)
        guest.resume()
        self.publish(context, instance, {sm.STATE: sm.RUNNING},
                     remove=sm.SECRET_KEYS + sm.HOST_FACTS +
                     sm.LAUNCH_RESULT,
                     phase=Phase.RUNNING)

    def _refuse_secret(self, context, instance, reason: str) -> None:
        reason = '%s; still paused: send a new secret and release again' % (
            reason)
        self._refuse(context, instance, reason)
        self.publish(context, instance, {sm.STATE: sm.failed(reason)},
                     remove=sm.SECRET_KEYS)

    def _refuse(self, context, instance, reason: str) -> None:
        LOG.warning('Attestation: %s', reason, instance=instance)
        # A Nova exception: the event's details show its message.
        self._record(context, instance, EVENT_ATTESTATION,
                     nova_exception.NovaException(message=reason))

    # -- the timeout ----------------------------------------------------

    def rearm(self, host: str) -> None:
        """Arm the timeout again for the guests of ``host`` that wait,
        paused, for their secret: nova-compute restarted and its timers
        are gone. Each gets the whole timeout again.
        """
        if not self._timeout_s():
            return
        context = nova_context.get_admin_context()
        try:
            instances = objects.InstanceList.get_by_host(
                context, host, expected_attrs=['system_metadata'])
        except Exception:
            LOG.exception('Cannot list the guests awaiting their secret: '
                          'their [sev]attestation_timeout is not armed')
            return
        for instance in instances:
            if instance.system_metadata.get(SYSMETA_PHASE) == \
                    Phase.AWAITING_SECRET.value:
                self._arm_timer(instance)

    def _arm_timer(self, instance) -> None:
        seconds = self._timeout_s()
        if not seconds:
            return
        token = object()
        timer = threading.Timer(seconds, self._expire,
                                args=(instance.uuid, seconds, token))
        timer.daemon = True
        with self._lock:
            old = self._timers.pop(instance.uuid, None)
            self._timers[instance.uuid] = (token, timer)
        if old is not None:
            old[1].cancel()
        timer.start()

    def _cancel_timer(self, instance) -> None:
        with self._lock:
            old = self._timers.pop(instance.uuid, None)
        if old is not None:
            old[1].cancel()

    def _expire(self, uuid: str, seconds: int, token: object) -> None:
        """Shut off a guest still waiting for its secret after ``seconds``:
        it holds an ASID slot and pinned memory.
        """
        with self._lock:
            current = self._timers.get(uuid)
            if current is None or current[0] is not token:
                return
            del self._timers[uuid]
        context = nova_context.get_admin_context()
        try:
            instance = objects.Instance.get_by_uuid(
                context, uuid, expected_attrs=['metadata',
                                               'system_metadata'])
            if instance.system_metadata.get(SYSMETA_PHASE) != \
                    Phase.AWAITING_SECRET.value:
                return
            guest = self._host.get_guest(instance)
            if guest.get_power_state(self._host) != power_state.PAUSED:
                return
            guest.poweroff()
            reason = 'no secret within %d s, guest shut off' % seconds
            LOG.warning('Attestation: %s', reason, instance=instance)
            self.publish(context, instance, {sm.STATE: sm.failed(reason)},
                         remove=sm.SECRET_KEYS + sm.LAUNCH_RESULT,
                         phase=Phase.AWAITING_SESSION, save_sysmeta=True)
        except Exception:
            # A timer thread has no caller to tell: the log must.
            LOG.exception('The attestation timeout of %s failed', uuid)

    # -- I/O edges ------------------------------------------------------

    def _sev_info(self) -> dict:
        return self._host.get_connection().getSEVInfo(0)

    def _domain(self, instance) -> Any:
        return self._host.get_guest(instance)._domain

    @staticmethod
    def _fresh(context, instance) -> 'objects.Instance':
        return objects.Instance.get_by_uuid(context, instance.uuid,
                                            expected_attrs=['metadata'])

    def publish(self, context, instance, items: 'dict[str, str]',
                remove: 'tuple[str, ...]' = (), phase: Phase | None = None,
                save_sysmeta: bool = False) -> None:
        """Write ``items`` into the server's metadata and delete the keys
        of the names in ``remove``, changing no other key: the metadata is
        read again right before the save (Nova saves it as a whole dict
        and deletes what the dict lacks), and keys are deleted one by one.
        ``phase`` goes into ``instance``'s system_metadata, which the
        operation saves (``save_sysmeta``: saved here, for a timer).
        """
        if context is None:
            context = nova_context.get_admin_context()
        fresh = self._fresh(context, instance)
        write, delete = metadata_changes(fresh.metadata, items, remove)
        for key in delete:
            fresh.delete_metadata_key(key)
        if write:
            fresh.metadata.update(write)
            fresh.save()
        instance.metadata = dict(fresh.metadata)
        instance.obj_reset_changes(['metadata'])
        if phase is not None:
            instance.system_metadata[SYSMETA_PHASE] = phase.value
            if save_sysmeta:
                instance.save()


class HeldGuest:
    """Nova's Guest of an attested guest that an operation holds back:
    ``resume`` does nothing (Nova's resume after VIF events must not run
    it); everything else is the Guest's.
    """

    def __init__(self, guest: Any) -> None:
        self._guest = guest

    def __getattr__(self, name):
        return getattr(self._guest, name)

    def resume(self) -> None:
        LOG.debug('Not resuming an attested guest held for its owner')
