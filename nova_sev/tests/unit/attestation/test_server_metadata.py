"""The attestation flow's layout in a server's metadata."""

import re

import testtools

from nova_sev.attestation import server_metadata as sm
from nova_sev import exception

# Nova's schema for a metadata key (nova/api/validation/parameter_types.py).
NOVA_KEY_RE = re.compile(r'^[a-zA-Z0-9-_:. ]{1,255}$')


class TestPack(testtools.TestCase):

    def test_chunked_round_trip_with_nova_limits(self):
        value = 'A' * 600 + 'B' * 10
        items = sm.pack(sm.PDH, value)
        self.assertEqual(
            ['nova-sev:pdh.0', 'nova-sev:pdh.1', 'nova-sev:pdh.2'],
            sorted(items))
        for key, chunk in items.items():
            self.assertRegex(key, NOVA_KEY_RE)
            self.assertLessEqual(len(chunk), 255)
        self.assertEqual(value, sm.unpack(dict(items, other='x'), sm.PDH))

    def test_chunked_even_when_short(self):
        self.assertEqual({'nova-sev:godh.0': 'abc'},
                         sm.pack(sm.GODH, 'abc'))
        self.assertEqual({'nova-sev:secret.0': ''}, sm.pack(sm.SECRET, ''))

    def test_plain_name(self):
        self.assertEqual({sm.SESSION: 'x' * 255},
                         sm.pack(sm.SESSION, 'x' * 255))
        e = self.assertRaises(exception.InvalidInput,
                              sm.pack, sm.SESSION, 'x' * 256)
        self.assertIn('nova-sev:session takes at most 255', str(e))

    def test_every_name_is_a_nova_key(self):
        names = (sm.DRIVER_KEYS + sm.SESSION_KEYS + sm.SECRET_KEYS +
                 (sm.ATTEST,))
        for name in names:
            self.assertRegex(name, NOVA_KEY_RE)
            self.assertTrue(name.startswith(sm.PREFIX))
        self.assertEqual(len(names), len(set(names)))
        # The flavor's extra spec lives in another namespace.
        self.assertRegex(sm.FLAVOR_POLICY_SPEC, NOVA_KEY_RE)

    def test_sizes_fit_the_quota(self):
        # pdh + chain + godh + everything single: well under Nova's 128.
        items = {}
        items.update(sm.pack_b64(sm.PDH, bytes(sm.PDH_LEN)))
        items.update(sm.pack_b64(sm.CERT_CHAIN, bytes(sm.CERT_CHAIN_LEN)))
        items.update(sm.pack_b64(sm.GODH, bytes(sm.GODH_LEN)))
        self.assertEqual(11 + 33 + 11, len(items))


class TestUnpack(testtools.TestCase):

    def test_absent(self):
        self.assertIsNone(sm.unpack({}, sm.PDH))
        self.assertIsNone(sm.unpack({}, sm.SESSION))
        self.assertIsNone(sm.unpack_b64({'x': 'y'}, sm.GODH))

    def test_gap_is_refused(self):
        md = {'nova-sev:pdh.0': 'a', 'nova-sev:pdh.2': 'c'}
        e = self.assertRaises(exception.InvalidInput, sm.unpack, md, sm.PDH)
        self.assertIn('nova-sev:pdh.1 is missing', str(e))
        md = {'nova-sev:pdh.1': 'b'}
        e = self.assertRaises(exception.InvalidInput, sm.unpack, md, sm.PDH)
        self.assertIn('nova-sev:pdh.0 is missing', str(e))

    def test_unrelated_keys_are_not_chunks(self):
        md = {'nova-sev:pdh.0': 'a', 'nova-sev:pdh.x': 'b',
              'nova-sev:pdh.01': 'c', 'nova-sev:pdhx.1': 'd'}
        self.assertEqual('a', sm.unpack(md, sm.PDH))
        self.assertEqual(['nova-sev:pdh.0'], sm.keys_of(md, sm.PDH))

    def test_keys_of(self):
        md = dict(sm.pack(sm.SECRET, 'z' * 300), **{sm.SESSION: 's'})
        self.assertEqual(['nova-sev:secret.0', 'nova-sev:secret.1'],
                         sm.keys_of(md, sm.SECRET))
        self.assertEqual([sm.SESSION], sm.keys_of(md, sm.SESSION))
        self.assertEqual([], sm.keys_of(md, sm.SECRET_HEADER))

    def test_b64_round_trip_and_length(self):
        data = bytes(range(256)) * 9
        md = sm.pack_b64(sm.GODH, data[:sm.GODH_LEN])
        self.assertEqual(data[:sm.GODH_LEN],
                         sm.unpack_b64(md, sm.GODH, sm.GODH_LEN))
        # A lost last chunk: no longer base64, or the wrong length.
        del md['nova-sev:godh.%d' % (len(md) - 1)]
        e = self.assertRaises(exception.InvalidInput, sm.unpack_b64,
                              md, sm.GODH, sm.GODH_LEN)
        self.assertIn('nova-sev:godh is not standard base64', str(e))
        md = sm.pack_b64(sm.GODH, data[:sm.GODH_LEN - 3])
        e = self.assertRaises(exception.InvalidInput, sm.unpack_b64,
                              md, sm.GODH, sm.GODH_LEN)
        self.assertIn('decodes to 2081 bytes, expected 2084', str(e))

    def test_not_base64(self):
        for bad in ('not base64!', 'YQ', 'é'):
            e = self.assertRaises(exception.InvalidInput,
                                  sm.decode_b64, bad, sm.SESSION)
            self.assertIn('nova-sev:session is not standard base64', str(e))


class TestValues(testtools.TestCase):

    def test_is_true(self):
        for word in ('true', 'True', ' yes', 'on', '1'):
            self.assertTrue(sm.is_true(word, sm.ATTEST))
        for word in (None, 'false', 'no', '0', 'off', ''):
            self.assertFalse(sm.is_true(word, sm.ATTEST))
        e = self.assertRaises(exception.InvalidInput,
                              sm.is_true, 'maybe', sm.ATTEST)
        self.assertIn('nova-sev:attest=maybe is not a boolean', str(e))

    def test_failed_state(self):
        state = sm.failed('no secret within 600 s, guest shut off')
        self.assertEqual('failed: no secret within 600 s, guest shut off',
                         state)
        self.assertTrue(sm.is_failed(state))
        self.assertEqual('no secret within 600 s, guest shut off',
                         sm.failure_reason(state))
        self.assertEqual(255, len(sm.failed('x' * 400)))
        for state in (None, sm.AWAITING_SESSION, sm.AWAITING_SECRET,
                      sm.RUNNING):
            self.assertFalse(sm.is_failed(state))
            self.assertEqual('', sm.failure_reason(state or ''))

    def test_numbers(self):
        self.assertEqual('0x0037', sm.format_policy(0x37))
        self.assertEqual('1.55', sm.format_api(1, 55))
        self.assertEqual((1, 55), sm.parse_api('1.55'))
        self.assertEqual(0x37, sm.parse_int('0x0037', sm.POLICY))
        self.assertEqual(21, sm.parse_int('21', sm.BUILD))
        for bad in ('1', '1.x', '', None):
            self.assertRaises(exception.InvalidInput, sm.parse_api, bad)
        for bad in ('0xz', 'twelve', None):
            self.assertRaises(exception.InvalidInput,
                              sm.parse_int, bad, sm.BUILD)
