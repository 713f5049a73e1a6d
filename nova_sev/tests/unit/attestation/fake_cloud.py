"""A fake openstacksdk connection whose servers follow the attestation
protocol as nova-sev's compute driver does, on the PSP test double.

Only the calls ``nova_sev.cmd.servers`` makes exist (``compute.find_server``,
``get_server``, ``set_server_metadata``, ``reboot_server``), each kept in
``calls``, so that a test can say what was sent. The host side is the
protocol's, kept small: publish the platform facts; at a hard reboot with
a session, launch on the double (LAUNCH_START, _UPDATE of the firmware,
_MEASURE), publish the measurement, delete the used keys; at a soft reboot
of a guest awaiting its secret, inject the secret (LAUNCH_SECRET) and run
it, or stay paused with a failed state.
"""

import base64
import hashlib
import types
import uuid

from nova_sev.attestation import server_metadata as sm
from nova_sev.tests.fixtures import psp


class FakeServer:
    """An openstacksdk ``Server`` with the attributes the owner reads."""

    def __init__(self, name, metadata, vcpus=2):
        self.id = str(uuid.uuid4())
        self.name = name
        self.status = 'ACTIVE'
        self.task_state = None
        self.metadata = dict(metadata)
        self.flavor = types.SimpleNamespace(vcpus=vcpus)


class FakeCloud:
    """``conn`` with ``conn.compute``, one SEV platform and its servers."""

    def __init__(self, platform=None, firmware=b'\x5a' * 4096):
        self.platform = platform or psp.FakePlatform()
        self.firmware = firmware
        self.servers = {}
        self.guests = {}
        self.calls = []
        self.compute = self
        # What a hostile or broken host does instead: change the published
        # measurement; keep a server waiting.
        self.alter_measurement = False
        self.stall = False

    # -- the test's side ---------------------------------------------------

    def boot(self, name='vm1', policy=0x3, attest=True, snp=None, vcpus=2):
        """A server placed on the platform, awaiting its session."""
        metadata = {sm.ATTEST: 'true'} if attest else {}
        server = FakeServer(name, metadata, vcpus)
        if snp is not None:
            metadata.update(snp(server))
            metadata[sm.STATE] = sm.RUNNING
        elif attest:
            metadata.update(self.host_facts(policy))
            metadata[sm.STATE] = sm.AWAITING_SESSION
        server.metadata = metadata
        self.servers[server.id] = server
        return server

    def host_facts(self, policy):
        # As the driver publishes them: the build comes only with the
        # measurement (libvirt's getSEVInfo has none).
        info = self.platform.get_sev_info()
        facts = {}
        for name, key in ((sm.PDH, 'pdh'), (sm.CERT_CHAIN, 'cert-chain'),
                          (sm.CPU0_ID, 'cpu0-id')):
            facts.update(sm.pack(name, info[key]))
        facts.update({
            sm.API: sm.format_api(self.platform.api_major,
                                  self.platform.api_minor),
            sm.POLICY: sm.format_policy(policy),
            sm.FIRMWARE_SHA256: hashlib.sha256(self.firmware).hexdigest()})
        return facts

    def sent(self, call):
        """The arguments of every ``call`` made."""
        return [args for name, args in self.calls if name == call]

    # -- openstacksdk's compute proxy -------------------------------------

    def find_server(self, name_or_id, ignore_missing=True):
        self.calls.append(('find_server', (name_or_id,)))
        for server in self.servers.values():
            if name_or_id in (server.id, server.name):
                return server
        return None

    def get_server(self, server_id):
        self.calls.append(('get_server', (server_id,)))
        server = self.servers[server_id]
        # A copy: the owner must read the server again to see a change.
        copy = FakeServer(server.name, server.metadata)
        copy.__dict__.update(server.__dict__, metadata=dict(server.metadata))
        return copy

    def set_server_metadata(self, server_id, **items):
        self.calls.append(('set_server_metadata', (server_id, items)))
        self.servers[server_id].metadata.update(items)

    def reboot_server(self, server_id, reboot_type):
        self.calls.append(('reboot_server', (server_id, reboot_type)))
        server = self.servers[server_id]
        if self.stall:
            server.task_state = 'rebooting'
            return
        if reboot_type == 'HARD':
            self._launch(server)
        else:
            self._release(server)

    # -- the compute host's side ------------------------------------------

    def _drop(self, metadata, names):
        for name in names:
            for key in sm.keys_of(metadata, name):
                del metadata[key]

    def _launch(self, server):
        metadata = server.metadata
        policy = sm.parse_int(metadata[sm.POLICY], sm.POLICY)
        godh = sm.unpack_b64(metadata, sm.GODH)
        session = sm.unpack_b64(metadata, sm.SESSION)
        self._drop(metadata, sm.SESSION_KEYS + (sm.PDH, sm.CERT_CHAIN,
                                                sm.CPU0_ID))
        try:
            guest = self.platform.launch_start(policy, godh, session)
        except psp.PspError as e:
            metadata[sm.STATE] = sm.failed('launch refused by the firmware '
                                           '(%s)' % e)
            return
        guest.launch_update_from_image(self.firmware)
        measured = guest.launch_measure()
        if self.alter_measurement:
            measured = bytes([measured[0] ^ 1]) + measured[1:]
        info = guest.launch_security_info()
        metadata[sm.MEASUREMENT] = base64.b64encode(measured).decode()
        metadata[sm.API] = sm.format_api(info['sev-api-major'],
                                         info['sev-api-minor'])
        metadata[sm.BUILD] = str(info['sev-build-id'])
        metadata[sm.POLICY] = sm.format_policy(info['sev-policy'])
        metadata[sm.STATE] = sm.AWAITING_SECRET
        self.guests[server.id] = guest

    def _release(self, server):
        metadata = server.metadata
        guest = self.guests[server.id]
        header = sm.unpack_b64(metadata, sm.SECRET_HEADER)
        if header is not None:
            payload = sm.unpack_b64(metadata, sm.SECRET)
            try:
                guest.launch_secret(header, payload)
            except psp.PspError as e:
                metadata[sm.STATE] = sm.failed(
                    'secret refused by the firmware (%s); still paused, '
                    'send a new secret and release again' % e)
                return
            self._drop(metadata, sm.SECRET_KEYS)
        guest.launch_finish()
        metadata[sm.STATE] = sm.RUNNING
