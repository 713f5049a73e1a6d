"""The owner's attestation of an SEV launch through Nova's API, by hand
(the calls the stock ``openstack`` client makes), with a real Nova API,
conductor, scheduler, compute and placement (each supported release), and
a PSP double per host.
"""

import base64
import os

import fixtures
from nova.tests.fixtures import libvirt as fakelibvirt

from nova_sev.attestation import host_data
from nova_sev.attestation import launch_digest
from nova_sev.attestation import server_metadata as sm
from nova_sev.tests.fixtures import sev_host
from nova_sev.tests.functional.nova_driver import attested_base
from nova_sev.tests.functional.nova_driver import base
from nova_sev.tests.functional.nova_driver import test_snp

PAUSED = fakelibvirt.VIR_DOMAIN_PAUSED
RUNNING = fakelibvirt.VIR_DOMAIN_RUNNING
SHUTOFF = fakelibvirt.VIR_DOMAIN_SHUTOFF


class TestAttestationByHand(attested_base.AttestedServersTestBase):

    def setUp(self):
        super().setUp()
        self.start_sev_compute('sev')

    def test_by_hand_to_a_running_guest_holding_the_secret(self):
        server = self.boot_attested()
        md = self.wait_for_attestation_state(server, sm.AWAITING_SESSION)
        # Defined, not started: nothing runs before the owner answers.
        self.assertEqual(SHUTOFF, self.dom_state(server))
        self.assertEqual([], self.psp.launches)
        platform = self.psp.platform('sev')
        self.assertEqual(platform.pdh_cert,
                         sm.unpack_b64(md, sm.PDH, sm.PDH_LEN))
        self.assertEqual(platform.cert_chain,
                         sm.unpack_b64(md, sm.CERT_CHAIN,
                                       sm.CERT_CHAIN_LEN))
        self.assertEqual('1.55', md[sm.API])
        self.assertEqual('0x0033', md[sm.POLICY])
        self.assertEqual(attested_base.hashlib_sha256(self.firmware_bytes),
                         md[sm.FIRMWARE_SHA256])
        _host, root = self.last_domain(server)
        self.assertEqual('rom', root.find('os/loader').get('type'))
        self.assertEqual(self.stateless_fw, root.findtext('os/loader'))
        self.assertIsNone(root.find('os/nvram'))

        launch, md = self.launch_with_session(server, md)
        # Launched paused with the owner's session; Nova did not run it.
        self.assertEqual(PAUSED, self.dom_state(server))
        _host, root = self.last_domain(server)
        self.assertEqual(launch.godh_b64,
                         root.findtext('launchSecurity/dhCert'))
        self.assertEqual(launch.session_b64,
                         root.findtext('launchSecurity/session'))
        for gone in (sm.PDH + '.0', sm.CERT_CHAIN + '.0', sm.CPU0_ID,
                     sm.GODH + '.0', sm.SESSION):
            self.assertNotIn(gone, md)
        self.assertEqual('21', md[sm.BUILD])
        report = self.check_measurement(md, launch)
        self.assertIsNotNone(report, 'the measurement does not check')

        table = self.send_secret(server, launch, report)
        self.release(server)
        md = self.wait_for_attestation_state(server, sm.RUNNING)
        self.assertEqual(RUNNING, self.dom_state(server))
        guest = self.psp.psp_guests[server['id']]
        self.assertEqual([table], guest.secrets)
        self.assertEqual('RUNNING', guest.state)
        # Only the state is left of the driver's keys.
        self.assertEqual([sm.STATE], self.driver_keys(md))
        self.assertEqual('ACTIVE', self.api.get_server(server['id'])['status'])


class TestAttestationFailsClosed(attested_base.AttestedServersTestBase):
    """Each way the flow can go wrong: the state and an event say why,
    and nothing runs that should not.
    """

    def setUp(self):
        super().setUp()
        self.start_sev_compute('sev')

    def assertEvent(self, server, action, text):
        details = self.event_details(server, action)
        self.assertTrue(any(text in d for d in details), details)

    def test_session_for_another_hosts_pdh(self):
        other = self.psp.platform('elsewhere')
        server = self.boot_attested()
        md = self.wait_for_attestation_state(server, sm.AWAITING_SESSION)
        wrong = self.make_session(dict(
            md, **sm.pack_b64(sm.PDH, other.pdh_cert)))
        self.send_session(server, wrong)
        self.launch(server)
        md = self.wait_for_attestation_state(server, sm.FAILED)
        self.assertIn('launch refused', md[sm.STATE])
        self.assertIn('BAD_MEASUREMENT', md[sm.STATE])
        self.assertIn('a new session is awaited', md[sm.STATE])
        self.assertEvent(server, 'reboot', 'launch refused')
        self.assertNotEqual(RUNNING, self.dom_state(server))
        self.assertNotEqual(PAUSED, self.dom_state(server))
        self.assertNotIn(sm.SESSION, md)
        self.assertEqual('ACTIVE', self.api.get_server(server['id'])['status'])
        # The host facts are back: a session for this host launches.
        self.to_awaiting_secret(server, state=sm.FAILED)

    def test_wrong_firmware_on_the_host(self):
        server = self.boot_attested()
        with open(self.stateless_fw, 'wb') as f:
            f.write(attested_base.ovmf_image.build(seed=66, pages=16))
        md = self.wait_for_attestation_state(server, sm.AWAITING_SESSION)
        launch, md = self.launch_with_session(server, md)
        # The owner's check refuses: no secret is sent, and the guest stays
        # paused, running nothing.
        self.assertIsNone(self.check_measurement(md, launch))
        self.assertEqual(PAUSED, self.dom_state(server))
        self.assertIsNone(self.psp.psp_guests[server['id']].secret_table)
        self.assertNotEqual(
            attested_base.hashlib_sha256(self.firmware_bytes),
            md[sm.FIRMWARE_SHA256])

    def test_replayed_session(self):
        server, launch, md = self.to_awaiting_secret()
        self.send_session(server, launch)
        self.launch(server)
        md = self.wait_for_attestation_state(server, sm.FAILED)
        self.assertIn('used for an earlier launch', md[sm.STATE])
        self.assertEvent(server, 'reboot', 'a session is used once')
        self.assertEqual(SHUTOFF, self.dom_state(server))
        self.assertEqual(1, len(self.psp.launches))
        self.assertNotIn(sm.SESSION, md)
        self.assertIn(sm.PDH + '.0', md)

    def test_secret_with_a_wrong_mac_then_a_retry(self):
        server, launch, md = self.to_awaiting_secret()
        report = self.check_measurement(md, launch)
        self.send_secret(server, launch, report, tamper=True)
        self.release(server)
        md = self.wait_for_attestation_state(server, sm.FAILED)
        self.assertIn('secret refused by the firmware', md[sm.STATE])
        self.assertIn('BAD_MEASUREMENT', md[sm.STATE])
        self.assertIn('still paused', md[sm.STATE])
        self.assertEvent(server, 'reboot', 'secret refused by the firmware')
        self.assertEqual(PAUSED, self.dom_state(server))
        self.assertNotIn(sm.SECRET_HEADER, md)
        self.assertEqual('ACTIVE', self.api.get_server(server['id'])['status'])
        # The owner sends a good secret and releases again.
        table = self.send_secret(server, launch, report)
        self.release(server)
        self.wait_for_attestation_state(server, sm.RUNNING)
        self.assertEqual(RUNNING, self.dom_state(server))
        self.assertEqual([table], self.psp.psp_guests[server['id']].secrets)

    def test_release_without_a_secret(self):
        server, launch, md = self.to_awaiting_secret()
        self.release(server)
        self.wait_for_attestation_state(server, sm.RUNNING)
        self.assertEqual(RUNNING, self.dom_state(server))
        self.assertEqual([], self.psp.psp_guests[server['id']].secrets)

    def test_measurement_altered_by_the_host(self):
        # The host publishes a measurement other than the firmware's: the
        # owner's check refuses it, and no secret is sent.
        info = fakelibvirt.Domain.launchSecurityInfo

        def altered(dom, flags=0):
            result = dict(info(dom, flags))
            raw = bytearray(base64.b64decode(result['sev-measurement']))
            raw[0] ^= 1
            result['sev-measurement'] = base64.b64encode(raw).decode()
            return result

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.launchSecurityInfo',
            altered))
        server, launch, md = self.to_awaiting_secret()
        self.assertIsNone(self.check_measurement(md, launch))
        self.assertEqual(PAUSED, self.dom_state(server))
        self.assertIsNone(self.psp.psp_guests[server['id']].secret_table)

    def test_pause_and_unpause_release_too(self):
        server, launch, md = self.to_awaiting_secret()
        report = self.check_measurement(md, launch)
        table = self.send_secret(server, launch, report)
        self.api.post_server_action(server['id'], {'pause': {}})
        self._wait_for_state_change(server, 'PAUSED')
        # Nova's pause of a guest paused for its secret changes nothing.
        self.assertEqual([], self.psp.psp_guests[server['id']].secrets)
        self.api.post_server_action(server['id'], {'unpause': {}})
        self._wait_for_state_change(server, 'ACTIVE')
        self.wait_for_attestation_state(server, sm.RUNNING)
        self.assertEqual(RUNNING, self.dom_state(server))
        self.assertEqual([table], self.psp.psp_guests[server['id']].secrets)

    def test_no_answer_times_out(self):
        self.flags(attestation_timeout=1, group='sev')
        # Straight to the failure: on a loaded machine the second of
        # awaiting-secret can pass between two polls.
        server = self.boot_attested()
        md = self.wait_for_attestation_state(server, sm.AWAITING_SESSION)
        _launch, md = self.launch_with_session(server, md, sm.FAILED)
        self.assertEqual('failed: no secret within 1 s, guest shut off',
                         md[sm.STATE])
        self.assertEqual(SHUTOFF, self.dom_state(server))
        self.assertNotIn(sm.MEASUREMENT, md)

    def test_timeout_armed_again_when_nova_compute_restarts(self):
        server, launch, md = self.to_awaiting_secret()
        self.flags(attestation_timeout=1, group='sev')
        self.restart_compute_service('sev')
        md = self.wait_for_attestation_state(server, sm.FAILED)
        self.assertEqual('failed: no secret within 1 s, guest shut off',
                         md[sm.STATE])
        self.assertEqual(SHUTOFF, self.dom_state(server))

    def test_hard_reboot_comes_back_awaiting_a_session(self):
        server, launch, md = self.to_awaiting_secret()
        self.release(server)
        self.wait_for_attestation_state(server, sm.RUNNING)
        self.launch(server)
        md = self.wait_for_attestation_state(server, sm.AWAITING_SESSION)
        self.assertEqual(SHUTOFF, self.dom_state(server))
        self.assertEqual(self.psp.platform('sev').pdh_cert,
                         sm.unpack_b64(md, sm.PDH, sm.PDH_LEN))
        _host, root = self.last_domain(server)
        self.assertIsNone(root.find('launchSecurity/session'))
        # A soft reboot of a guest that runs is a launch by its owner too.
        self.to_awaiting_secret(server)
        self.release(server)
        self.wait_for_attestation_state(server, sm.RUNNING)
        self.release(server)
        self.wait_for_attestation_state(server, sm.AWAITING_SESSION)
        self.assertEqual(SHUTOFF, self.dom_state(server))

    def test_owner_edits_while_the_driver_writes(self):
        owner = {'owner-%02d' % i: 'value %d' % i for i in range(5)}
        server = self.boot_attested(metadata=owner)
        md = self.wait_for_attestation_state(server, sm.AWAITING_SESSION)
        launch = self.make_session(md)
        self.send_session(server, launch)
        # The owner's write that slips in between the API's check and the
        # driver's save (the database, as the API writes it).
        from nova import context as nova_context
        from nova import objects
        launch_start = self.psp.platform('sev').launch_start

        def racing_launch_start(*args, **kwargs):
            instance = objects.Instance.get_by_uuid(
                nova_context.get_admin_context(), server['id'],
                expected_attrs=['metadata'])
            instance.metadata['owner-late'] = 'written meanwhile'
            instance.save()
            return launch_start(*args, **kwargs)

        self.psp.platform('sev').launch_start = racing_launch_start
        self.launch(server)
        md = self.wait_for_attestation_state(server, sm.AWAITING_SECRET)
        self.assertEqual('written meanwhile', md['owner-late'])
        for key, value in owner.items():
            self.assertEqual(value, md[key])

    def test_metadata_quota_nearly_full(self):
        # The owner's own keys, the opt-in and everything the driver and
        # the owner's steps need stay within Nova's 128.
        owner = {'owner-%02d' % i: 'v' for i in range(62)}
        server = self.boot_attested(metadata=owner)
        server, launch, md = self.to_awaiting_secret(server)
        self.assertLessEqual(len(md), 128)
        report = self.check_measurement(md, launch)
        self.send_secret(server, launch, report)
        self.release(server)
        md = self.wait_for_attestation_state(server, sm.RUNNING)
        self.assertEqual(len(owner) + 2, len(md))
        # The owner's room is back: as many keys as before the boot.
        self.api.post_server_metadata(
            server['id'], {'more-%02d' % i: 'v' for i in range(64)})


class TestAttestationMoves(attested_base.AttestedServersTestBase):

    def setUp(self):
        super().setUp()
        self.start_sev_compute('sev')
        self.start_sev_compute('sev2')
        # Nova's fake host has no disk files to measure before a move.
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.driver.LibvirtDriver._get_instance_disk_info',
            return_value=[]))

    def test_cold_migration_awaits_a_session_on_the_new_host(self):
        server = self.boot_attested()
        self.attest_to_running(server)
        first = self.host_of(server)
        server = self.migrate(server)
        second = self.host_of(server)
        self.assertNotEqual(first, second)
        md = self.wait_for_attestation_state(server, sm.AWAITING_SESSION)
        # Paused is too much: nothing of it runs on the new host.
        self.assertEqual(SHUTOFF, self.dom_state(server))
        self.assertEqual(self.psp.platform(second).pdh_cert,
                         sm.unpack_b64(md, sm.PDH, sm.PDH_LEN))
        self._confirm_resize(server)
        # The new host's session launches it there.
        self.attest_to_running(server)
        self.assertEqual(second, self.host_of(server))
        self.assertEqual(second, self.psp.launches[-1][1])

    def test_unshelve_awaits_a_session(self):
        server = self.boot_attested()
        self.attest_to_running(server)
        self._shelve_server(server)
        server = self._unshelve_server(server)
        self.wait_for_attestation_state(server, sm.AWAITING_SESSION)
        self.assertEqual(SHUTOFF, self.dom_state(server))
        self.attest_to_running(server)


class TestAttestationSevEs(attested_base.AttestedServersTestBase):

    def test_sev_es_by_hand(self):
        sev_host.write_kvm_amd_params(self.kvm_amd_params, sev='1',
                                      sev_es='1')
        self.start_sev_compute('sev', max_es_guests=15)
        server = self.boot_attested(flavor='sev-es')
        md = self.wait_for_attestation_state(server, sm.AWAITING_SESSION)
        self.assertEqual('0x0037', md[sm.POLICY])
        launch, md = self.launch_with_session(server, md)
        self.assertEqual(PAUSED, self.dom_state(server))
        _host, root = self.last_domain(server)
        report = self.check_measurement(
            md, launch, vcpus=int(root.findtext('vcpu')))
        self.assertIsNotNone(report, 'the SEV-ES measurement does not '
                             'check')
        self.assertTrue(report.sev_es)
        table = self.send_secret(server, launch, report)
        self.release(server)
        self.wait_for_attestation_state(server, sm.RUNNING)
        self.assertEqual([table], self.psp.psp_guests[server['id']].secrets)


class TestAttestationPolicy(attested_base.AttestedServersTestBase):

    def setUp(self):
        super().setUp()
        self.start_sev_compute('sev')

    def test_owner_and_admin_tighten_the_policy(self):
        self.add_image('strict', {'nova_sev_policy': '0x0037'})
        self.flavors['strict'] = self._create_flavor(
            name='strict', memory_mb=2048,
            extra_spec={'trait:HW_CPU_X86_AMD_SEV': 'required',
                        'nova-sev:policy': '0x003b'})
        server = self.boot_attested(flavor='strict', image='strict')
        md = self.wait_for_attestation_state(server, sm.AWAITING_SESSION)
        # The ES bit is the mode's: the published policy is the launched.
        self.assertEqual('0x003b', md[sm.POLICY])
        launch, md = self.launch_with_session(server, md)
        self.assertEqual('0x003b', md[sm.POLICY])
        self.assertEqual(0x3b, self.psp.launches[-1][2])

    def test_a_looser_policy_is_refused(self):
        self.add_image('loose', {'nova_sev_policy': '0x0031'})
        server = self.boot_attested(image='loose', expected_state='ERROR')
        fault = self.api.get_server(server['id'])['fault']['message']
        self.assertIn('nova_sev_policy', fault)

    def test_no_stateless_build_refused_with_the_reason(self):
        os.unlink(os.path.join(self.firmware_dir, '50-ovmf-amdsev.json'))
        self.restart_compute_service('sev')
        server = self.boot_attested(expected_state='ERROR')
        fault = self.api.get_server(server['id'])['fault']['message']
        self.assertIn('stateless firmware', fault)

    def test_attest_without_sev_is_refused(self):
        server = self.boot_attested(flavor='plain', expected_state='ERROR')
        fault = self.api.get_server(server['id'])['fault']['message']
        self.assertIn('nova-sev:attest asks for an attested SEV launch',
                      fault)


class TestAttestationSnp(attested_base.AttestedServersTestBase):
    """SEV-SNP: no session; at launch, the inputs of the expected digest
    and the host's digest of them are published.
    """

    def setUp(self):
        super().setUp()
        self.libvirt.amd_sev.sev_snp = True
        descriptor = attested_base.stateless_descriptor(self.stateless_fw)
        descriptor['features'] = ['amd-sev', 'amd-sev-snp']
        self.write_descriptor('30-ovmf-sev-snp.json', descriptor)
        self.flavors['snp'] = self._create_flavor(
            name='snp', memory_mb=2048, vcpu=2,
            extra_spec={'trait:HW_CPU_X86_AMD_SEV_SNP': 'required'})
        sev_host.write_kvm_amd_params(self.kvm_amd_params, sev='1',
                                      sev_es='1', sev_snp='Y')
        self.host_features = {'snp': test_snp.snp_features()}
        # A named CPU model: its signature is an input of the digest
        # (host-model's is known only once libvirt expands it).
        self.flags(cpu_mode='custom', cpu_models=['EPYC'], group='libvirt')
        host_info = base.fake_host_info()
        host_info.cpu_model, host_info.cpu_vendor = 'EPYC', 'AMD'
        self.start_compute('snp', host_info=host_info,
                           libvirt_version=test_snp.SNP_LIBVIRT_VERSION,
                           qemu_version=test_snp.SNP_QEMU_VERSION)

    def test_snp_inputs_published(self):
        server = self.boot_attested(flavor='snp')
        md = self.wait_for_attestation_state(server, sm.RUNNING)
        self.assertEqual(RUNNING, self.dom_state(server))
        self.assertEqual(
            attested_base.hashlib_sha384(self.firmware_bytes),
            md[sm.SNP_FIRMWARE_SHA384])
        self.assertEqual('2', md[sm.SNP_VCPUS])
        self.assertEqual('0x30000', md[sm.SNP_POLICY])
        self.assertEqual('0x1', md[sm.SNP_GUEST_FEATURES])
        self.assertEqual('0x%x' % launch_digest.vcpu_signature('EPYC'),
                         md[sm.SNP_VCPU_SIG])
        self.assertEqual('off', md[sm.SNP_KERNEL_HASHES])
        self.assertEqual(
            host_data.host_data_b64(server['id']), md[sm.SNP_HOST_DATA])
        # The owner's recomputation from their copy gives the host's.
        expected = launch_digest.launch_digest(launch_digest.LaunchInputs(
            mode=launch_digest.MODE_SNP, ovmf=self.owner_fw, vcpus=2,
            vcpu_sig=sm.parse_int(md[sm.SNP_VCPU_SIG], sm.SNP_VCPU_SIG)))
        self.assertEqual(expected.hex(), md[sm.SNP_DIGEST])
        self.assertNotIn(sm.PDH + '.0', md)


def load_tests(loader, tests, pattern):
    """The tests of the Nova installed: the SEV-SNP ones from 2026.2."""
    return base.without_snp_unknown_to_nova(tests, TestAttestationSnp)
