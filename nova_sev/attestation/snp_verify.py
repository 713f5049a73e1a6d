"""Is an SEV-SNP attestation report authentic, and is it the guest the
owner expects?

Authentic: the report is signed (ECDSA P-384, SHA-384) by the chip's VCEK,
whose certificate is signed by AMD's SEV key (ASK), signed in turn by
AMD's root key (ARK), both RSA-PSS with SHA-384 (AMD's Key Distribution
Service, the VCEK specification pub. 57230). Only the ARKs built in here
(Milan, Genoa, Turin, from AMD's KDS) are trusted unless the caller
gives another. Expected: the checks of ``Expectations``, each named, so
that a refusal says every check that failed.

Pure: certificates and report bytes in, checks out.
"""

import dataclasses
import datetime
import importlib.resources
import warnings

from cryptography import exceptions as crypto_exceptions
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric import utils as ec_utils
from cryptography.hazmat.primitives import hashes
from cryptography import x509

from nova_sev.attestation import snp_report
from nova_sev import exception

PRODUCTS = ('milan', 'genoa', 'turin')

# AMD's VCEK certificate extensions (VCEK specification, pub. 57230,
# "VCEK Certificate Extensions").
OID_PRODUCT_NAME = '1.3.6.1.4.1.3704.1.2'
OID_BL_SPL = '1.3.6.1.4.1.3704.1.3.1'
OID_TEE_SPL = '1.3.6.1.4.1.3704.1.3.2'
OID_SNP_SPL = '1.3.6.1.4.1.3704.1.3.3'
OID_UCODE_SPL = '1.3.6.1.4.1.3704.1.3.8'
OID_FMC_SPL = '1.3.6.1.4.1.3704.1.3.9'
OID_HWID = '1.3.6.1.4.1.3704.1.4'
SPL_OIDS = (('bootloader', OID_BL_SPL), ('tee', OID_TEE_SPL),
            ('snp', OID_SNP_SPL), ('microcode', OID_UCODE_SPL),
            ('fmc', OID_FMC_SPL))

# Checks whose failure means the report cannot be trusted at all.
AUTHENTICITY_CHECKS = ('ark_self_signed', 'ark_signs_ask', 'ask_signs_vcek',
                       'certificate_dates', 'signing_key',
                       'report_signature', 'vcek_chip_id', 'vcek_tcb')


@dataclasses.dataclass(frozen=True)
class Check:
    """One named check and, when it fails, why."""

    name: str
    ok: bool
    detail: str


@dataclasses.dataclass(frozen=True)
class Expectations:
    """What the guest owner expects of the report; None: not checked."""

    measurement: bytes | None = None
    host_data: bytes | None = None
    policy: int | None = None
    report_data: bytes | None = None
    min_tcb: dict[str, int] | None = None
    allow_debug: bool = False
    allow_migration_agent: bool = False


@dataclasses.dataclass(frozen=True)
class Roots:
    """The trusted ARKs by product, and the ASKs to try when the caller
    gives none.
    """

    arks: dict[str, x509.Certificate]
    asks: dict[str, x509.Certificate]


def load_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    """The certificates of a PEM (one or more) or DER file;
    InvalidCertificate naming ``source`` otherwise.
    """
    # AMD's VCEKs carry serial number 0, which cryptography warns about:
    # the warning must not become a second line on stderr.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            if data.lstrip().startswith(b'-----BEGIN'):
                certs = x509.load_pem_x509_certificates(data)
            else:
                certs = [x509.load_der_x509_certificate(data)]
        except ValueError:
            raise exception.InvalidCertificate(
                source=source, reason='it is not a PEM or DER X.509 '
                'certificate; give the certificate file AMD\'s KDS serves '
                '(or snpguest fetch writes)')
    if not certs:
        raise exception.InvalidCertificate(source=source,
                                           reason='no certificate in it')
    return certs


def check_vcek_key(vcek: x509.Certificate, source: str) -> None:
    """InvalidCertificate unless the VCEK's key is EC P-384."""
    key = vcek.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP384R1):
        kind = (key.curve.name if isinstance(key, ec.EllipticCurvePublicKey)
                else type(key).__name__.replace('PublicKey', ''))
        raise exception.InvalidCertificate(
            source=source, reason='its key is %s; a VCEK signs with ECDSA '
            'P-384 (secp384r1): give the VCEK of the chip (AMD KDS '
            '/vcek/v1/PRODUCT/CHIP_ID)' % kind)


def builtin_roots() -> Roots:
    """AMD's ARK and ASK certificates of each product, shipped as data
    (``amd_roots/PRODUCT-{ark,ask}.pem``, as AMD's KDS serves them at
    /vcek/v1/PRODUCT/cert_chain).
    """
    arks, asks = {}, {}
    base = importlib.resources.files('nova_sev.attestation') / 'amd_roots'
    for product in PRODUCTS:
        for name, target in (('ark', arks), ('ask', asks)):
            path = base / ('%s-%s.pem' % (product, name))
            target[product] = load_certificates(path.read_bytes(),
                                                str(path))[0]
    return Roots(arks, asks)


def signed_by(cert: x509.Certificate,
              issuer: x509.Certificate) -> str | None:
    """None when ``issuer``'s key made ``cert``'s signature with RSA-PSS
    and SHA-384 (as AMD signs ASKs and VCEKs); else why not.
    """
    if cert.issuer != issuer.subject:
        return 'issued by "%s", not by "%s"' % (
            cert.issuer.rfc4514_string(), issuer.subject.rfc4514_string())
    key = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return 'the issuer\'s key is not RSA'
    params = cert.signature_algorithm_parameters
    if not isinstance(params, padding.PSS):
        return 'signed with %s, not RSA-PSS' % (
            cert.signature_algorithm_oid._name)
    if not isinstance(cert.signature_hash_algorithm, hashes.SHA384):
        return 'signed with %s, not SHA-384' % (
            cert.signature_hash_algorithm.name
            if cert.signature_hash_algorithm else 'no hash')
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, params,
                   cert.signature_hash_algorithm)
    except crypto_exceptions.InvalidSignature:
        return 'the signature does not verify with "%s"\'s key' % (
            issuer.subject.rfc4514_string())
    return None


def _name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return attrs[0].value if attrs else cert.subject.rfc4514_string()


def chain_checks(vcek: x509.Certificate, ask: x509.Certificate | None,
                 roots: Roots,
                 at: datetime.datetime | None = None
                 ) -> tuple[list[Check], str | None]:
    """The checks of VCEK -> ASK -> ARK, and the product whose ARK
    anchors the chain (None when none does); with ``at``, also that the
    certificates are valid then.
    """
    asks = [ask] if ask is not None else list(roots.asks.values())
    chosen, reasons = None, []
    for candidate in asks:
        reason = signed_by(vcek, candidate)
        if reason is None:
            chosen = candidate
            break
        reasons.append('%s: %s' % (_name(candidate), reason))
    checks = [Check('ask_signs_vcek', chosen is not None,
                    'VCEK signed by %s' % _name(chosen) if chosen else
                    'no %s signed the VCEK (%s)' % (
                        'given ASK' if ask is not None else 'built-in ASK',
                        '; '.join(reasons)))]
    if chosen is None:
        # No link from the VCEK to an ASK: the rest of the chain anchors
        # nothing, whatever it verifies.
        checks += [
            Check('ark_signs_ask', False, 'not reached: no ASK for the VCEK'),
            Check('ark_self_signed', False,
                  'not reached: no ASK for the VCEK')]
        if at is not None:
            checks.append(dates_check([vcek], at))
        return checks, None
    signer = chosen
    product, reasons = None, []
    for name, ark in roots.arks.items():
        reason = signed_by(signer, ark)
        if reason is None:
            product = name
            break
        reasons.append('%s: %s' % (_name(ark), reason))
    checks.append(Check(
        'ark_signs_ask', product is not None,
        '%s signed by trusted root %s' % (_name(signer), _name(
            roots.arks[product])) if product else
        '%s is not signed by a trusted ARK (%s)' % (
            _name(signer), '; '.join(reasons))))
    if product is not None:
        ark = roots.arks[product]
        reason = signed_by(ark, ark)
        checks.append(Check('ark_self_signed', reason is None,
                            '%s is self-signed' % _name(ark)
                            if reason is None else reason))
    else:
        checks.append(Check('ark_self_signed', False,
                            'no trusted ARK anchors the chain'))
    if at is not None:
        checks.append(dates_check(
            [vcek, signer] + ([roots.arks[product]] if product else []), at))
    return checks, product


def dates_check(certs: list[x509.Certificate],
                at: datetime.datetime) -> Check:
    """Whether every certificate of the chain is valid at ``at`` (UTC)."""
    bad = []
    for cert in certs:
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            bad.append('%s valid %s to %s' % (
                _name(cert), cert.not_valid_before_utc.date(),
                cert.not_valid_after_utc.date()))
    return Check('certificate_dates', not bad,
                 ('not valid on %s: %s' % (at.date(), '; '.join(bad)))
                 if bad else 'VCEK, ASK and ARK valid on %s' % at.date())


def _der_integer(raw: bytes) -> int | None:
    if len(raw) < 3 or raw[0] != 0x02 or raw[1] != len(raw) - 2:
        return None
    return int.from_bytes(raw[2:], 'big', signed=True)


def _extension(cert: x509.Certificate, oid: str) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(
            x509.ObjectIdentifier(oid))
    except x509.ExtensionNotFound:
        return None
    return getattr(ext.value, 'value', None)


def vcek_is_turin(vcek: x509.Certificate) -> bool:
    """Whether the VCEK is a Turin chip's (whose TCB layout differs)."""
    name = _extension(vcek, OID_PRODUCT_NAME) or b''
    return b'Turin' in name


def report_checks(report: snp_report.Report,
                  vcek: x509.Certificate) -> list[Check]:
    """Is the report the VCEK's: signing key field, signature, and the
    chip id and TCB the VCEK was derived for.
    """
    checks = [Check('signing_key',
                    report.signing_key == snp_report.SIGNING_KEY_VCEK,
                    'KEY_INFO says %s' % {
                        0: 'VCEK', 1: 'VLEK (nova-sev checks VCEK-signed '
                        'reports only)', 7: 'no key (unsigned report)'}.get(
                            report.signing_key, 'reserved key %d'
                            % report.signing_key))]
    if report.signature_algo != snp_report.SIG_ALGO_ECDSA_P384_SHA384:
        checks.append(Check('report_signature', False,
                            'signature algorithm %d, not ECDSA P-384 with '
                            'SHA-384 (1)' % report.signature_algo))
    else:
        r, s = report.signature_rs
        try:
            vcek.public_key().verify(
                ec_utils.encode_dss_signature(r, s), report.signed,
                ec.ECDSA(hashes.SHA384()))
            checks.append(Check('report_signature', True,
                                'ECDSA P-384 signature by the VCEK'))
        except (crypto_exceptions.InvalidSignature, ValueError):
            checks.append(Check('report_signature', False,
                                'the signature does not verify with the '
                                'VCEK'))
    hwid = _extension(vcek, OID_HWID)
    if report.mask_chip_key:
        checks.append(Check('vcek_chip_id', True,
                            'CHIP_ID masked (MASK_CHIP_KEY)'))
    elif hwid is not None:
        ok = report.chip_id[:len(hwid)] == hwid
        checks.append(Check('vcek_chip_id', ok,
                            'VCEK for chip %s, report from chip %s' % (
                                hwid.hex(), report.chip_id.hex())))
    turin = vcek_is_turin(vcek)
    reported = snp_report.decode_tcb(report.reported_tcb,
                                     snp_report.tcb_fields(report, turin))
    mismatched = []
    for name, oid in SPL_OIDS:
        raw = _extension(vcek, oid)
        if raw is None or name not in reported:
            continue
        if _der_integer(raw) != reported[name]:
            mismatched.append('%s %s (VCEK) != %s (REPORTED_TCB)' % (
                name, _der_integer(raw), reported[name]))
    checks.append(Check('vcek_tcb', not mismatched,
                        '; '.join(mismatched) or
                        'VCEK derived for the REPORTED_TCB'))
    return checks


def expectation_checks(report: snp_report.Report, expect: Expectations,
                       turin: bool) -> list[Check]:
    """The guest owner's checks, in a fixed order, each named."""
    checks = []

    def equal(name, field, expected):
        if expected is None:
            return
        got = report.fields[field]
        checks.append(Check(name, got == expected,
                            'report %s, expected %s' % (got.hex(),
                                                        expected.hex())))

    equal('measurement', 'measurement', expect.measurement)
    debug = bool(report.policy & snp_report.POLICY_DEBUG)
    checks.append(Check('policy_debug', expect.allow_debug or not debug,
                        'policy 0x%x %s DEBUG%s' % (
                            report.policy, 'allows' if debug else
                            'does not allow', ' (allowed by '
                            '--allow-debug)' if expect.allow_debug and debug
                            else '')))
    ma = bool(report.policy & snp_report.POLICY_MIGRATE_MA)
    checks.append(Check(
        'policy_migration_agent', expect.allow_migration_agent or not ma,
        'policy 0x%x %s a migration agent%s' % (
            report.policy, 'allows' if ma else 'does not allow',
            ' (allowed by --allow-migration-agent)'
            if expect.allow_migration_agent and ma else '')))
    if expect.policy is not None:
        checks.append(Check('policy', report.policy == expect.policy,
                            'report policy 0x%x, expected 0x%x' % (
                                report.policy, expect.policy)))
    equal('host_data', 'host_data', expect.host_data)
    equal('report_data', 'report_data', expect.report_data)
    if expect.min_tcb is not None:
        reported = snp_report.decode_tcb(
            report.reported_tcb, snp_report.tcb_fields(report, turin))
        low = ['%s %d < %d' % (name, reported.get(name, 0), level)
               for name, level in sorted(expect.min_tcb.items())
               if reported.get(name, 0) < level]
        checks.append(Check('min_tcb', not low,
                            '; '.join(low) or 'REPORTED_TCB %s' % ', '.join(
                                '%s=%d' % kv for kv in reported.items())))
    return checks


def parse_min_tcb(text: str) -> dict[str, int]:
    """``bootloader=3,tee=0,snp=8,microcode=115`` (any subset; ``fmc``
    too for Turin) as a dict; InvalidInput naming the bad part.
    """
    names = {name for name, _oid in SPL_OIDS}
    result = {}
    for part in text.split(','):
        key, sep, value = part.strip().partition('=')
        key = key.strip().lower()
        if not sep or key not in names or not value.strip().isdigit() or \
                int(value) > 255:
            raise exception.InvalidInput(
                reason='--min-tcb %r: give COMPONENT=LEVEL pairs, e.g. '
                'bootloader=3,tee=0,snp=8,microcode=115 (components: %s; '
                'levels 0-255)' % (text, ', '.join(sorted(names))))
        result[key] = int(value)
    return result
