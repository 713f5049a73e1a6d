"""The compute side of the attestation: its pure decisions."""

import base64

import testtools

from nova_sev.attestation import server_metadata as sm
from nova_sev import exception
from nova_sev.tests.fixtures import psp
from nova_sev.virt.libvirt import attestation as att

GODH = bytes(range(256)) * 8 + bytes(36)
SESSION = bytes(range(128))


def b64(data):
    return base64.b64encode(data).decode('ascii')


def session_items(godh=GODH, session=SESSION):
    items = sm.pack_b64(sm.GODH, godh)
    items.update(sm.pack_b64(sm.SESSION, session))
    return items


class TestOptIn(testtools.TestCase):

    def test_each_way_of_asking(self):
        self.assertFalse(att.opted_in({}, {}))
        self.assertTrue(att.opted_in({sm.ATTEST: 'true'}, {}))
        self.assertTrue(att.opted_in({}, {'image_nova_sev_attest': 'yes'}))
        # Recorded once built: a metadata PUT does not undo it.
        self.assertTrue(att.opted_in({}, {att.SYSMETA_ATTESTED: 'true'}))
        self.assertFalse(att.opted_in({sm.ATTEST: 'false'}, {}))

    def test_not_a_boolean(self):
        e = self.assertRaises(exception.InvalidInput, att.opted_in,
                              {sm.ATTEST: 'please'}, {})
        self.assertIn('nova-sev:attest=please is not a boolean', str(e))
        self.assertRaises(exception.InvalidInput, att.read_flow,
                          {}, {'image_nova_sev_attest': '2'})


class TestReadFlow(testtools.TestCase):

    def test_not_attested(self):
        self.assertIs(att.NOT_ATTESTED, att.read_flow(session_items(), {}))

    def test_session_and_secret(self):
        md = dict(session_items(), **{sm.ATTEST: 'true'})
        md.update(sm.pack_b64(sm.SECRET_HEADER, bytes(52)))
        md.update(sm.pack_b64(sm.SECRET, bytes(64)))
        flow = att.read_flow(md, {att.SYSMETA_PHASE: 'awaiting-secret'})
        self.assertTrue(flow.attested)
        self.assertIs(att.Phase.AWAITING_SECRET, flow.phase)
        self.assertTrue(flow.has_session)
        self.assertTrue(flow.has_secret)
        self.assertEqual(b64(GODH), flow.godh_b64)
        self.assertEqual(att.session_digest(SESSION), flow.session_digest)

    def test_refused_sessions_say_why(self):
        cases = (
            (sm.pack_b64(sm.SESSION, SESSION), 'nova-sev:godh is missing'),
            (session_items(session=SESSION[:100]), 'decodes to 100 bytes'),
            (dict(session_items(), **{sm.GODH + '.20': 'x'}), 'is missing'),
        )
        for items, text in cases:
            flow = att.read_flow(dict(items, **{sm.ATTEST: 'true'}), {})
            self.assertFalse(flow.has_session)
            self.assertIn(text, flow.session_refusal)

    def test_replayed_session(self):
        used = att.remember_session({}, att.session_digest(SESSION))
        flow = att.read_flow(dict(session_items(), **{sm.ATTEST: 'true'}),
                             {att.SYSMETA_SESSIONS: used})
        self.assertIn('a session is used once', flow.session_refusal)

    def test_used_sessions_kept_in_one_value(self):
        sysmeta = {}
        for i in range(30):
            sysmeta[att.SYSMETA_SESSIONS] = att.remember_session(
                sysmeta, att.session_digest(bytes([i]) * 128))
        kept = att.used_sessions(sysmeta)
        self.assertEqual(att.SESSIONS_KEPT, len(kept))
        self.assertEqual(att.session_digest(bytes([29]) * 128), kept[-1])
        self.assertLessEqual(len(sysmeta[att.SYSMETA_SESSIONS]), 255)

    def test_refused_secret(self):
        md = {sm.ATTEST: 'true', sm.SECRET_HEADER: b64(bytes(51))}
        md.update(sm.pack_b64(sm.SECRET, bytes(64)))
        flow = att.read_flow(md, {})
        self.assertFalse(flow.has_secret)
        self.assertIn('decodes to 51 bytes, expected 52', flow.secret_refusal)


class TestSteps(testtools.TestCase):

    def test_build_step(self):
        attested = att.Flow(attested=True)
        launching = att.Flow(attested=True, session_b64='x', godh_b64='y')
        refused = att.Flow(attested=True, session_b64='x', godh_b64='y',
                           session_refusal='no')
        self.assertIs(att.Step.NONE,
                      att.build_step(att.NOT_ATTESTED, False, True))
        self.assertIs(att.Step.SNP, att.build_step(attested, True, True))
        self.assertIs(att.Step.AWAIT_SESSION,
                      att.build_step(attested, False, True))
        self.assertIs(att.Step.LAUNCH, att.build_step(launching, False, True))
        # Only the owner's launch uses a session: a move waits for one.
        self.assertIs(att.Step.AWAIT_SESSION,
                      att.build_step(launching, False, False))
        self.assertIs(att.Step.AWAIT_SESSION,
                      att.build_step(refused, False, True))

    def test_releases(self):
        self.assertTrue(att.releases(att.Flow(
            attested=True, phase=att.Phase.AWAITING_SECRET)))
        for phase in (None, att.Phase.AWAITING_SESSION, att.Phase.RUNNING):
            self.assertFalse(att.releases(att.Flow(attested=True,
                                                   phase=phase)))


class TestPublished(testtools.TestCase):

    def test_host_facts(self):
        platform = psp.FakePlatform()
        items = att.host_facts(platform.get_sev_info(), 0x33, 'ab' * 32)
        self.assertEqual(platform.pdh_cert,
                         sm.unpack_b64(items, sm.PDH, sm.PDH_LEN))
        self.assertEqual(platform.cert_chain,
                         sm.unpack_b64(items, sm.CERT_CHAIN,
                                       sm.CERT_CHAIN_LEN))
        self.assertEqual(b64(platform.cpu0_id), items[sm.CPU0_ID])
        self.assertEqual('1.55', items[sm.API])
        self.assertEqual('0x0033', items[sm.POLICY])
        self.assertEqual('ab' * 32, items[sm.FIRMWARE_SHA256])
        self.assertLess(len(items), 50)

    def test_host_facts_refuse_what_is_not_sev(self):
        info = psp.FakePlatform().get_sev_info()
        info['pdh'] = b64(bytes(100))
        e = self.assertRaises(exception.InvalidInput, att.host_facts, info,
                              0x33, None)
        self.assertIn('getSEVInfo pdh decodes to 100 bytes', str(e))

    def test_launch_result(self):
        info = {'sev-measurement': b64(bytes(48)), 'sev-api-major': 1,
                'sev-api-minor': 51, 'sev-build-id': 3, 'sev-policy': 7}
        self.assertEqual(
            {sm.MEASUREMENT: b64(bytes(48)), sm.STATE: sm.AWAITING_SECRET,
             sm.API: '1.51', sm.BUILD: '3', sm.POLICY: '0x0007'},
            att.launch_result(info))
        self.assertRaises(exception.InvalidInput, att.launch_result, {})

    def test_metadata_changes_touch_only_what_they_must(self):
        current = {'owner': 'x', sm.STATE: sm.AWAITING_SESSION,
                   sm.SESSION: 's'}
        current.update(sm.pack(sm.PDH, 'p' * 600))
        items = {sm.STATE: sm.AWAITING_SECRET, sm.MEASUREMENT: 'm'}
        items.update(sm.pack(sm.PDH, 'q' * 300))
        write, delete = att.metadata_changes(current, items, (sm.SESSION,))
        self.assertEqual({sm.STATE, sm.MEASUREMENT, 'nova-sev:pdh.0',
                          'nova-sev:pdh.1'}, set(write))
        # The stale third chunk of the longer PDH goes, the owner's stays.
        self.assertEqual(['nova-sev:pdh.2', sm.SESSION], delete)
        write, delete = att.metadata_changes(current, {}, ())
        self.assertEqual(({}, []), (write, delete))
