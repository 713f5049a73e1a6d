"""The owner's attestation of an SEV launch through Nova's API, by hand
(the calls the stock ``openstack`` client makes), with real Nova 34 API,
conductor, scheduler, compute and placement, and a PSP double per host.
"""

from nova.tests.fixtures import libvirt as fakelibvirt

from nova_sev.attestation import server_metadata as sm
from nova_sev.tests.functional.nova_driver import attested_base

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

        launch = self.make_session(md)
        self.send_session(server, launch)
        self.launch(server)
        md = self.wait_for_attestation_state(server, sm.AWAITING_SECRET)
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
