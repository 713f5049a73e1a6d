"""SEV platform certificates and their chain up to AMD's root, judged by
real Naples and Rome certificates (virtee/sev) and a real sevctl export
(virtee/sevctl-test).
"""

import base64
import random
import struct

import testtools

from nova_sev.attestation import sev_cert
from nova_sev import exception
from nova_sev.tests.fixtures import psp
from nova_sev.tests.unit.attestation import sev_data


def _roots(*products):
    return tuple(r for r in sev_cert.builtin_roots()
                 if r.product in products)


def _set(data: bytes, offset: int, fmt: str, *values) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


class TestBuiltinRoots(testtools.TestCase):

    def test_every_product_is_built_in_and_signs_its_ask(self):
        roots = sev_cert.builtin_roots()
        self.assertEqual(('naples', 'rome', 'milan', 'genoa'),
                         tuple(r.product for r in roots))
        for root in roots:
            self.assertEqual(sev_cert.USAGE_ARK, root.ark.usage)
            self.assertEqual(sev_cert.USAGE_ASK, root.ask.usage)
            self.assertTrue(sev_cert.ca_signed_by(root.ark, root.ark))
            self.assertTrue(sev_cert.ca_signed_by(root.ask, root.ark))
        sizes = {r.product: r.ark.public_key.key_size for r in roots}
        self.assertEqual({'naples': 2048, 'rome': 4096, 'milan': 4096,
                          'genoa': 4096}, sizes)

    def test_no_ark_signs_another_products_ask(self):
        roots = sev_cert.builtin_roots()
        for root in roots:
            for other in roots:
                if other is not root:
                    self.assertFalse(sev_cert.ca_signed_by(other.ask,
                                                           root.ark))

    def test_truncated_naples_ark_refused(self):
        # The 576-byte ARK AMD first distributed (AMDESE/AMDSEV issue 17).
        e = self.assertRaises(exception.InvalidSevCertificate,
                              sev_cert.parse_ca_cert,
                              sev_data.read('naples-ark.cert.bad'), 'bad')
        self.assertIn('it is 576 bytes; an AMD CA certificate with this '
                      'modulus is 832', str(e))


class TestRealPlatforms(testtools.TestCase):

    def _verify(self, product, roots):
        certs = sev_data.platform(product)
        pdh = sev_cert.parse_sev_cert(certs['pdh'], 'pdh',
                                      sev_cert.USAGE_PDH)
        chain = sev_cert.parse_chain(sev_data.cert_chain(product), 'chain')
        return sev_cert.verify_platform(chain, pdh, roots)

    def test_naples_and_rome_verify_under_their_builtin_root(self):
        for product in ('naples', 'rome'):
            self.assertEqual(product, self._verify(
                product, sev_cert.builtin_roots()).product)
            self.assertEqual(product,
                             self._verify(product, _roots(product)).product)

    def test_refused_under_another_products_root(self):
        for product, others in (('naples', ('rome', 'milan', 'genoa')),
                                ('rome', ('naples', 'milan', 'genoa'))):
            for other in others:
                e = self.assertRaises(exception.SevChainNotAuthentic,
                                      self._verify, product, _roots(other))
                self.assertIn('the CEK chain (certificate 3 of PEK|OCA|CEK) '
                              'is not signed by the ASK of any trusted AMD '
                              'root (%s)' % other, str(e))

    def test_fields(self):
        naples = sev_data.platform('naples')
        pdh = sev_cert.parse_sev_cert(naples['pdh'], 'pdh')
        self.assertEqual((0, 16, sev_cert.USAGE_PDH,
                          sev_cert.ALGO_ECDH_SHA256),
                         (pdh.api_major, pdh.api_minor, pdh.usage, pdh.algo))
        self.assertEqual([(sev_cert.USAGE_PEK, sev_cert.ALGO_ECDSA_SHA256)],
                         [(s.usage, s.algo) for s in pdh.signatures])
        cek = sev_cert.parse_sev_cert(naples['cek'], 'cek')
        self.assertEqual([(sev_cert.USAGE_ASK, sev_cert.ALGO_RSA_SHA256)],
                         [(s.usage, s.algo) for s in cek.signatures])
        rome_cek = sev_cert.parse_sev_cert(sev_data.platform('rome')['cek'],
                                           'cek')
        self.assertEqual(sev_cert.ALGO_RSA_SHA384,
                         rome_cek.signatures[0].algo)

    def test_each_link_and_never_the_reverse(self):
        certs = {role: sev_cert.parse_sev_cert(data, role) for role, data in
                 sev_data.platform('rome').items()}
        links = (('pdh', 'pek'), ('pek', 'oca'), ('pek', 'cek'),
                 ('oca', 'oca'))
        for cert, signer in links:
            self.assertTrue(sev_cert.sev_signed_by(certs[cert],
                                                   certs[signer]))
        for cert, signer in (('pek', 'pdh'), ('oca', 'pek'), ('cek', 'pek'),
                             ('pdh', 'oca')):
            self.assertFalse(sev_cert.sev_signed_by(certs[cert],
                                                    certs[signer]))
        rome = _roots('rome')[0]
        self.assertTrue(sev_cert.sev_signed_by(certs['cek'], rome.ask))
        self.assertFalse(sev_cert.sev_signed_by(certs['cek'], rome.ark))

    def test_pdh_of_another_platform_refused(self):
        pdh = sev_cert.parse_sev_cert(sev_data.platform('naples')['pdh'],
                                      'naples pdh')
        chain = sev_cert.parse_chain(sev_data.cert_chain('rome'), 'rome')
        e = self.assertRaises(exception.SevChainNotAuthentic,
                              sev_cert.verify_platform, chain, pdh,
                              sev_cert.builtin_roots())
        self.assertIn('the PDH is not signed by the PEK', str(e))

    def test_one_bit_flip_anywhere_signed_refused(self):
        chain_raw = sev_data.cert_chain('naples')
        pdh_raw = sev_data.platform('naples')['pdh']
        roots = _roots('naples')
        # A bit of every signed body and of every signature: PEK, OCA, CEK
        # and the PDH, never an accepted chain.
        for which, offset in (('pdh', 0x4), ('pdh', 0x20), ('pdh', 0x420),
                              ('chain', 0x30), ('chain', 0x430),
                              ('chain', 0x630),
                              ('chain', sev_cert.CERT_LEN + 0x40),
                              ('chain', sev_cert.CERT_LEN + 0x420),
                              ('chain', 2 * sev_cert.CERT_LEN + 0x100),
                              ('chain', 2 * sev_cert.CERT_LEN + 0x500)):
            pdh, chain = pdh_raw, chain_raw
            if which == 'pdh':
                pdh = sev_data.flip_bit(pdh, offset * 8)
            else:
                chain = sev_data.flip_bit(chain, offset * 8)
            try:
                sev_cert.verify_platform(
                    sev_cert.parse_chain(chain, 'chain'),
                    sev_cert.parse_sev_cert(pdh, 'pdh'), roots)
            except (exception.SevChainNotAuthentic,
                    exception.InvalidSevCertificate):
                continue
            self.fail('a chain with bit 0x%x of the %s flipped verified'
                      % (offset * 8, which))


class TestChainForms(testtools.TestCase):

    def test_sevctl_export_chain(self):
        good = sev_data.read('sevctl-test-sev-good.chain')
        chain = sev_cert.parse_chain(good, 'sev-good.chain')
        self.assertIsNotNone(chain.pdh)
        self.assertEqual('rome', sev_cert.verify_platform(
            chain, chain.pdh, sev_cert.builtin_roots()).product)

    def test_base64_as_libvirt_and_qemu_give_it(self):
        chain = base64.b64encode(sev_data.cert_chain('rome'))
        # getSEVInfo() text, possibly wrapped as a file would be.
        wrapped = b'\n'.join(chain[i:i + 76] for i in range(0, len(chain),
                                                            76)) + b'\n'
        pdh = sev_cert.parse_sev_cert(sev_cert.decode_blob(
            base64.b64encode(sev_data.platform('rome')['pdh']), 'pdh'),
            'pdh')
        for form in (chain, wrapped):
            parsed = sev_cert.parse_chain(form, 'b64')
            self.assertEqual('rome', sev_cert.verify_platform(
                parsed, pdh, sev_cert.builtin_roots()).product)

    def test_full_chain_with_ask_and_ark(self):
        rome = _roots('rome')[0]
        full = (sev_data.read('sevctl-test-sev-good.chain') + rome.ask.raw +
                rome.ark.raw)
        chain = sev_cert.parse_chain(full, 'full')
        self.assertEqual(rome.ark.raw, chain.ark.raw)
        self.assertEqual('rome', sev_cert.verify_platform(
            chain, chain.pdh, sev_cert.builtin_roots()).product)
        # An ASK/ARK in the chain is trusted only as a built-in one.
        e = self.assertRaises(exception.SevChainNotAuthentic,
                              sev_cert.verify_platform, chain, chain.pdh,
                              _roots('milan'))
        self.assertIn('not those of a trusted AMD root (milan)', str(e))

    def test_wrong_order_named(self):
        certs = sev_data.platform('rome')
        for order, found, expected in (
                (('cek', 'oca', 'pek'), 'CEK', 'PEK'),
                (('oca', 'pek', 'cek'), 'OCA', 'PEK'),
                (('pek', 'cek', 'oca'), 'CEK', 'OCA'),
                (('pek', 'oca', 'cek', 'pdh'), 'PEK', 'PDH')):
            e = self.assertRaises(exception.InvalidSevCertificate,
                                  sev_cert.parse_chain,
                                  b''.join(certs[r] for r in order), 'c')
            self.assertIn('it is a %s certificate' % found, str(e))
            self.assertIn('where a %s belongs' % expected, str(e))

    def test_sizes_and_text_refused_by_name(self):
        chain = sev_data.cert_chain('rome')
        for data, reason in (
                (chain[:-1], 'it is 6251 bytes; a chain is PEK|OCA|CEK'),
                (chain[:2084], 'it is 2084 bytes; a chain'),
                (sev_data.read('sevctl-test-sev-good.chain') + b'\1',
                 'shorter than the 64-byte header'),
                (sev_data.read('sevctl-test-sev-good.chain') +
                 _roots('rome')[0].ask.raw, 'ARK after the ASK'),
                (b'\xff\xfe\x00', 'nor base64 text (byte 0xff at offset 0)'),
                (b'not base64!', 'nor base64'),
                (b'  \n', 'it is empty')):
            e = self.assertRaises(exception.InvalidSevCertificate,
                                  sev_cert.parse_chain, data, 'c')
            self.assertIn(reason, str(e))


class TestMutatedChains(testtools.TestCase):
    """Random changes to a real ``sevctl export --full`` chain: each is
    refused with a named error, never accepted and never a traceback.
    """

    def test_every_change_refused_by_name(self):
        rome = _roots('rome')[0]
        full = (sev_data.read('sevctl-test-sev-good.chain') + rome.ask.raw +
                rome.ark.raw)
        roots = sev_cert.builtin_roots()
        rng = random.Random(1701)
        fields = (0x0, 0x8, 0xC, 0x10, 0x414, 0x418, 0x61C, 0x620)
        for n in range(400):
            data = bytearray(full)
            kind = n % 4
            if kind == 0:
                data[rng.randrange(len(data))] ^= 1 + rng.randrange(255)
            elif kind == 1:
                data = data[:rng.randrange(len(data))]
            elif kind == 2:
                offset = rng.randrange(len(data) - 4)
                old = bytes(data[offset:offset + 4])
                while bytes(data[offset:offset + 4]) == old:
                    data[offset:offset + 4] = rng.randbytes(4)
            else:
                offset = (rng.choice(fields) +
                          sev_cert.CERT_LEN * rng.randrange(4))
                value = rng.choice((b'\0\0\0\0', b'\xff\xff\xff\xff',
                                    b'\x07\0\0\0', b'\x05\x10\0\0'))
                if bytes(data[offset:offset + 4]) == value:
                    continue
                data[offset:offset + 4] = value
            try:
                chain = sev_cert.parse_chain(bytes(data), 'mutated')
                sev_cert.verify_platform(chain, chain.pdh, roots)
            except (exception.InvalidSevCertificate,
                    exception.SevChainNotAuthentic):
                continue
            self.fail('mutation %d (kind %d) was accepted' % (n, kind))


class TestMalformedCertificate(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.pdh = sev_data.platform('rome')['pdh']

    def assertRefused(self, data, reason, usage=None):
        e = self.assertRaises(exception.InvalidSevCertificate,
                              sev_cert.parse_sev_cert, data, 'x', usage)
        self.assertIn(reason, str(e))

    def test_each_field(self):
        p = self.pdh
        cases = (
            (p[:-1], 'it is 2083 bytes; an SEV certificate is 2084'),
            (p + b'\0', 'it is 2085 bytes'),
            (_set(p, 0, '<I', 2), 'version 2; only version 1 exists'),
            (_set(p, 8, '<I', 0x13), 'key usage 0x13 is not that of a '
             'platform key'),
            (_set(p, 8, '<I', 0x1000), 'key usage 0x1000'),
            (_set(p, 0xC, '<I', sev_cert.ALGO_ECDSA_SHA256),
             'a PDH key cannot have algorithm 0x2'),
            (_set(p, 0xC, '<I', sev_cert.ALGO_RSA_SHA256),
             'a PDH key cannot have algorithm 0x1'),
            (_set(p, 0x10, '<I', 1), 'its key is on curve 1'),
            (_set(p, 0x14, '<I', 0x12345), 'not a point on P-384'),
            # x beyond the field's prime.
            (p[:0x14] + b'\xff' * 48 + p[0x14 + 48:],
             'not a point on P-384'),
            (_set(p, 0x414, '<I', sev_cert.USAGE_INVALID),
             'a slot is either empty'),
            (_set(p, 0x620, '<I', sev_cert.ALGO_ECDSA_SHA256),
             'signature slot at 0x61c'),
            (_set(p, 0x418, '<I', 0x77), 'the unknown algorithm 0x77'),
        )
        for data, reason in cases:
            self.assertRefused(data, reason)

    def test_usage_of_its_place(self):
        self.assertRefused(self.pdh, 'it is a PDH certificate (usage '
                           '0x1003) where a PEK belongs',
                           sev_cert.USAGE_PEK)

    def test_ca_fields(self):
        ask = _roots('naples')[0].ask.raw
        for data, reason in (
                (_set(ask, 0, '<I', 3), 'version 3'),
                (_set(ask, 36, '<I', 0x1002), 'key usage 0x1002 is neither'),
                (_set(ask, 60, '<I', 1024), 'its modulus is 1024 bits'),
                (_set(ask, 56, '<I', 0), 'public exponent is 0 bits'),
                (ask[:10], 'shorter than the 64-byte header')):
            e = self.assertRaises(exception.InvalidSevCertificate,
                                  sev_cert.parse_ca_cert, data, 'ask')
            self.assertIn(reason, str(e))
        e = self.assertRaises(exception.InvalidSevCertificate,
                              sev_cert.parse_ca_cert, ask, 'ask',
                              sev_cert.USAGE_ARK)
        self.assertIn('it is an ASK where the ARK belongs', str(e))


class TestFakeRoot(testtools.TestCase):
    """The PSP double's platform verifies under its own root only."""

    def test_fake_platform_chain(self):
        platform = psp.FakePlatform()
        root = sev_cert.check_root(
            sev_cert.parse_ca_cert(platform.root.ark, 'ark'),
            sev_cert.parse_ca_cert(platform.root.ask, 'ask'), 'test')
        pdh = sev_cert.parse_sev_cert(platform.pdh_cert, 'pdh')
        for form in (platform.cert_chain, platform.sevctl_chain,
                     base64.b64encode(platform.cert_chain)):
            chain = sev_cert.parse_chain(form, 'chain')
            self.assertEqual('test', sev_cert.verify_platform(
                chain, pdh, (root,)).product)
        chain = sev_cert.parse_chain(platform.cert_chain, 'chain')
        self.assertRaises(exception.SevChainNotAuthentic,
                          sev_cert.verify_platform, chain, pdh,
                          sev_cert.builtin_roots())
        other = psp.FakeAmdRoot('other')
        self.assertRaises(
            exception.SevChainNotAuthentic, sev_cert.check_root,
            sev_cert.parse_ca_cert(platform.root.ark, 'ark'),
            sev_cert.parse_ca_cert(other.ask, 'ask'), 'mixed')
