"""The guest owner's decisions on a server as Nova's API shows it."""

import testtools

from nova_sev.attestation import host_data
from nova_sev.attestation import owner
from nova_sev.attestation import server_metadata as sm
from nova_sev import exception

UUID = '6f0f5e0a-5a5f-4a0c-8a66-0e7f8d1c2b3a'


def server(state=None, task_state=None, status='ACTIVE', attest=True,
           **metadata):
    md = {sm.ATTEST: 'true'} if attest else {}
    if state is not None:
        md[sm.STATE] = state
    md.update(metadata)
    return owner.Server(id=UUID, name='vm1', status=status,
                        task_state=task_state, metadata=md)


class TestAwaitState(testtools.TestCase):

    def decide(self, srv, wanted=sm.AWAITING_SESSION):
        return owner.await_state(srv, wanted).outcome

    def test_ready_only_without_a_task(self):
        self.assertEqual(owner.READY, self.decide(server(
            sm.AWAITING_SESSION)))
        self.assertEqual(owner.WAIT, self.decide(server(
            sm.AWAITING_SESSION, task_state='rebooting_hard')))
        self.assertEqual(owner.WAIT, self.decide(server(
            sm.AWAITING_SESSION, status='BUILD')))

    def test_opted_in_but_not_published_yet(self):
        self.assertEqual(owner.WAIT, self.decide(server(status='BUILD')))

    def test_never_opted_in(self):
        self.assertEqual(owner.REFUSED, self.decide(server(attest=False)))
        decision = owner.await_state(server(attest=False, **{
            sm.ATTEST: 'false'}), sm.AWAITING_SESSION)
        self.assertEqual(owner.REFUSED, decision.outcome)
        self.assertIn(sm.IMAGE_ATTEST_PROPERTY, decision.reason)

    def test_an_image_opt_in_shows_as_a_state(self):
        self.assertEqual(owner.READY, self.decide(server(
            sm.AWAITING_SESSION, attest=False)))

    def test_failed_stops(self):
        decision = owner.await_state(server(sm.failed('no secret')),
                                     sm.RUNNING)
        self.assertEqual(owner.FAILED, decision.outcome)
        self.assertIn('failed: no secret', decision.reason)

    def test_failed_with_the_facts_again_awaits_a_new_session(self):
        srv = server(sm.failed('replayed'), **sm.pack(sm.PDH, 'QUJD'))
        self.assertEqual(owner.READY, self.decide(srv))
        self.assertEqual(owner.FAILED, self.decide(srv, sm.AWAITING_SECRET))

    def test_later_state_is_refused_earlier_is_waited_for(self):
        self.assertEqual(owner.REFUSED, self.decide(server(
            sm.AWAITING_SECRET)))
        self.assertEqual(owner.REFUSED, self.decide(server(sm.RUNNING)))
        self.assertEqual(owner.WAIT, self.decide(server(
            sm.AWAITING_SESSION), sm.AWAITING_SECRET))

    def test_a_server_in_error(self):
        self.assertEqual(owner.FAILED, self.decide(server(
            sm.AWAITING_SESSION, status='ERROR')))


class TestFacts(testtools.TestCase):

    def test_missing_facts_are_named(self):
        e = self.assertRaises(exception.InvalidInput, owner.platform_facts,
                              server(sm.AWAITING_SESSION))
        self.assertIn('%s, %s' % (sm.PDH, sm.CERT_CHAIN), str(e))

    def test_policy_refusal(self):
        self.assertIsNone(owner.policy_refusal(0x33, 0x33, False))
        self.assertIn('not the expected', owner.policy_refusal(
            0x33, 0x37, False))
        self.assertIn('--allow-debug', owner.policy_refusal(0x32, None,
                                                            False))
        self.assertIsNone(owner.policy_refusal(0x32, None, True))

    def test_firmware_refusal(self):
        import hashlib
        digest = hashlib.sha256(b'fw').hexdigest()
        self.assertIsNone(owner.firmware_refusal(b'fw', digest.upper(), 'x',
                                                 'sha256'))
        self.assertIn(digest, owner.firmware_refusal(b'other', digest, 'x',
                                                     'sha256'))
        self.assertIsNone(owner.firmware_refusal(b'fw', None, 'x', 'sha256'))

    def test_snp_facts_and_host_data(self):
        srv = server(sm.RUNNING, **{
            sm.SNP_VCPUS: '4', sm.SNP_POLICY: '0x30000',
            sm.SNP_GUEST_FEATURES: '0x1', sm.SNP_KERNEL_HASHES: 'on',
            sm.SNP_HOST_DATA: host_data.host_data_b64(UUID)})
        self.assertEqual(owner.FAMILY_SNP, owner.family(srv.metadata))
        facts = owner.snp_facts(srv)
        self.assertEqual((4, None, None, True),
                         (facts.vcpus, facts.vcpu_sig,
                          facts.firmware_sha384, facts.kernel_hashes))
        self.assertIsNone(owner.host_data_refusal(facts, UUID))
        self.assertIn('binding', owner.host_data_refusal(
            facts, '00000000-0000-4000-8000-000000000000'))

    def test_snp_kernel_hashes_must_be_on_or_off(self):
        srv = server(sm.RUNNING, **{
            sm.SNP_VCPUS: '4', sm.SNP_POLICY: '0x30000',
            sm.SNP_GUEST_FEATURES: '0x1', sm.SNP_KERNEL_HASHES: 'yes',
            sm.SNP_HOST_DATA: host_data.host_data_b64(UUID)})
        self.assertRaises(exception.InvalidInput, owner.snp_facts, srv)

    def test_answers_are_chunked_as_the_protocol_says(self):
        items = owner.session_items('A' * 300, 'B' * 172)
        self.assertEqual({sm.GODH + '.0', sm.GODH + '.1', sm.SESSION},
                         set(items))
        items = owner.secret_items('H' * 72, 'S' * 10)
        self.assertEqual({sm.SECRET_HEADER, sm.SECRET + '.0'}, set(items))
