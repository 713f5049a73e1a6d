"""A Nova functional test base for the owner's attestation through Nova's
API: SEV computes whose fake libvirt drives a PSP double of their own
(``attested_libvirt.AttestedLibvirtFixture``), a stateless SEV firmware
file the descriptor names, and the owner's steps as the stock client
makes them (GET the server, POST its metadata, POST a reboot action).
"""

import hashlib
import os
import time
import uuid

from nova.tests.fixtures import libvirt as libvirt_fixture

from nova_sev.attestation import launch_digest
from nova_sev.attestation import measurement
from nova_sev.attestation import secret as owner_secret
from nova_sev.attestation import server_metadata as sm
from nova_sev.attestation import session as owner_session
from nova_sev.attestation import sev_cert
from nova_sev.tests.fixtures import attested_libvirt
from nova_sev.tests.functional.nova_driver import base
from nova_sev.tests.unit.attestation import ovmf_image

STATELESS_NAME = 'OVMF.amdsev.fd'
SECRET_GUID = uuid.UUID('736869e5-84f0-4973-92ec-06879ce3da0b')


def hashlib_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashlib_sha384(data: bytes) -> str:
    return hashlib.sha384(data).hexdigest()


def stateless_descriptor(path: str) -> dict:
    """A QEMU firmware descriptor of a stateless (memory-mapped) OVMF
    build with SEV and SEV-ES, as edk2's AmdSev build ships.
    """
    return {
        'description': 'Stateless OVMF with AMD SEV (test)',
        'interface-types': ['uefi'],
        'mapping': {'device': 'memory', 'filename': path},
        'targets': [{'architecture': 'x86_64', 'machines': ['pc-q35-*']}],
        'features': ['amd-sev', 'amd-sev-es'],
        'tags': [],
    }


class AttestedServersTestBase(base.SevServersTestBase):

    def setUp(self):
        super().setUp()
        self.psp = self.useFixture(attested_libvirt.AttestedLibvirtFixture())
        # The firmware the host boots attested guests from, and the owner's
        # copy of it (the same bytes, unless a test makes them differ).
        self.firmware_bytes = ovmf_image.build(seed=18, pages=16)
        self.stateless_fw = os.path.join(self.firmware_dir, STATELESS_NAME)
        with open(self.stateless_fw, 'wb') as f:
            f.write(self.firmware_bytes)
        self.owner_fw = os.path.join(self.firmware_dir, 'owner-copy.fd')
        with open(self.owner_fw, 'wb') as f:
            f.write(self.firmware_bytes)
        self.write_descriptor('50-ovmf-amdsev.json',
                              stateless_descriptor(self.stateless_fw))
        self.flags(attestation_timeout=0, group='sev')

    # -- the owner's API calls ---------------------------------------------

    def boot_attested(self, flavor='sev-trait', image='plain',
                      metadata=None, expected_state='ACTIVE'):
        body = self._build_server(image_uuid=self.images[image],
                                  flavor_id=self.flavors[flavor],
                                  networks='none')
        body['metadata'] = dict({sm.ATTEST: 'true'}, **(metadata or {}))
        server = self.api.post_server({'server': body})
        return self._wait_for_state_change(server, expected_state)

    def metadata(self, server) -> dict:
        return self.api.get_server(server['id'])['metadata']

    def wait_for_attestation_state(self, server, state):
        """Wait until ``nova-sev:state`` reads ``state`` (a prefix for a
        failure) and no task runs; the server's metadata.
        """
        md = None
        for _ in range(300):
            found = self.api.get_server(server['id'])
            md = found['metadata']
            if (found['OS-EXT-STS:task_state'] is None and
                    (md.get(sm.STATE) or '').startswith(state)):
                return md
            time.sleep(0.1)
        self.fail('%s never reached %r: it is %r' % (
            server['id'], state, md.get(sm.STATE)))

    def make_session(self, md, policy=None) -> owner_session.LaunchSession:
        pdh = sev_cert.parse_sev_cert(sm.unpack_b64(md, sm.PDH, sm.PDH_LEN),
                                      'nova-sev:pdh')
        policy = sm.parse_int(md[sm.POLICY], sm.POLICY) if policy is None \
            else policy
        return owner_session.new_session(pdh, policy)

    def send_session(self, server, launch):
        items = sm.pack(sm.GODH, launch.godh_b64)
        items.update(sm.pack(sm.SESSION, launch.session_b64))
        self.api.post_server_metadata(server['id'], items)

    def launch(self, server, hard=True):
        self.api.post_server_action(
            server['id'], {'reboot': {'type': 'HARD' if hard else 'SOFT'}})

    def release(self, server):
        self.api.post_server_action(server['id'],
                                    {'reboot': {'type': 'SOFT'}})

    def check_measurement(self, md, launch, firmware=None, vcpus=None):
        """The owner's offline check; the report when it proves a launch
        of ``firmware`` (the owner's copy).
        """
        report = measurement.launch_report(
            md[sm.MEASUREMENT], *sm.parse_api(md[sm.API]),
            int(md[sm.BUILD]), sm.parse_int(md[sm.POLICY], sm.POLICY))
        mode = (launch_digest.MODE_SEV_ES if report.sev_es
                else launch_digest.MODE_SEV)
        digest = launch_digest.launch_digest(launch_digest.LaunchInputs(
            mode=mode, ovmf=firmware or self.owner_fw,
            vcpus=vcpus if report.sev_es else None,
            vcpu_type=(attested_libvirt.DEFAULT_VCPU_TYPE if report.sev_es
                       else None)))
        ok = measurement.measurement_matches(launch.tik, report, digest)
        return report if ok else None

    def send_secret(self, server, launch, report, payload=b'owner-key',
                    tamper=False):
        table = owner_secret.secret_table([(SECRET_GUID, payload)])
        built = owner_secret.build_launch_secret(
            launch.tek, launch.tik, report.mac, table, os.urandom(16))
        header = built.header
        if tamper:
            header = header[:-1] + bytes([header[-1] ^ 1])
        items = sm.pack_b64(sm.SECRET_HEADER, header)
        items.update(sm.pack(sm.SECRET, built.payload_b64))
        self.api.post_server_metadata(server['id'], items)
        return table

    # -- the whole flow, for tests about what comes after it -------------

    def to_awaiting_secret(self, server=None, state=sm.AWAITING_SESSION):
        """Boot (or take ``server``, whose state is ``state``) and launch
        with a fresh session; (server, session, metadata).
        """
        server = server or self.boot_attested()
        md = self.wait_for_attestation_state(server, state)
        launch, md = self.launch_with_session(server, md)
        return server, launch, md

    def launch_with_session(self, server, md, state=sm.AWAITING_SECRET):
        """Make a session for the platform ``md`` publishes, send it,
        launch and wait for ``state``; (session, metadata).
        """
        launch = self.make_session(md)
        self.send_session(server, launch)
        self.launch(server)
        return launch, self.wait_for_attestation_state(server, state)

    def attest_to_running(self, server, state=sm.AWAITING_SESSION):
        """Launch, check and release ``server`` with a secret; checks that
        it runs holding exactly that secret.
        """
        server, launch, md = self.to_awaiting_secret(server, state)
        report = self.check_measurement(md, launch)
        self.assertIsNotNone(report, 'the measurement does not check')
        table = self.send_secret(server, launch, report)
        self.release(server)
        self.wait_for_attestation_state(server, sm.RUNNING)
        self.assertEqual(libvirt_fixture.VIR_DOMAIN_RUNNING,
                         self.dom_state(server))
        self.assertEqual([table], self.psp.psp_guests[server['id']].secrets)

    # -- what the host did -------------------------------------------------

    def dom_state(self, server):
        return self.domain(self.host_of(server), server).info()[0]

    def driver_keys(self, md):
        return sorted(k for k in md if k.startswith(sm.PREFIX) and
                      k != sm.ATTEST)
