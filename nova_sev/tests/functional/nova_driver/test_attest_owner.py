"""The guest owner's ``nova-sev attest`` against Nova's API in the
harness, through openstacksdk as an owner's machine runs it: a
``clouds.yaml`` names the cloud, and every call is a request to Nova's
API (served in-process by wsgi-intercept, which intercepts ``requests``,
and so keystoneauth and openstacksdk).

Nova's functional API has no Keystone: its stubbed context middleware
takes the user, project and roles from ``X-Auth-*`` headers, which only
Nova's test client sends. Here it also takes them from the token, as
``user:project`` (noauth2's token form), so that openstacksdk's
``admin_token`` plugin, the one that sends a fixed token to a fixed
endpoint, authenticates as the project's member.
"""

import base64
import contextlib
import hashlib
import io
import json
import os
from unittest import mock
import uuid

import fixtures
from nova.api import auth as nova_auth
from nova import context as nova_context
from nova.tests.fixtures import libvirt as fakelibvirt
import yaml

from nova_sev.attestation import host_data
from nova_sev.attestation import launch_digest
from nova_sev.attestation import secret as owner_secret
from nova_sev.attestation import server_metadata as sm
from nova_sev.cmd import common
from nova_sev.cmd import sev
from nova_sev.tests.fixtures import psp
from nova_sev.tests.fixtures import sev_host
from nova_sev.tests.functional.nova_driver import attested_base
from nova_sev.tests.functional.nova_driver import base
from nova_sev.tests.functional.nova_driver import test_snp
from nova_sev.tests.unit.attestation import cli
from nova_sev.tests.unit.attestation import ovmf_image
from nova_sev.tests.unit.attestation import snp_chain

CLOUD = 'nova-sev-harness'


class OwnerCloud(fixtures.Fixture):
    """A ``clouds.yaml`` for the harness's API, and its authentication."""

    def __init__(self, api):
        super().__init__()
        self.api = api

    def _setUp(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(tmp, 'clouds.yaml')
        with open(path, 'w') as f:
            token = 'owner:%s' % self.api.project_id
            # The token also as ``auth_token``, the spelling that wins in
            # openstacksdk 4.4.0 (2025.1's constraints): that release
            # reads ``auth: token`` alone as the string 'None'.
            yaml.safe_dump({'clouds': {CLOUD: {
                'auth_type': 'admin_token',
                'auth_token': token,
                'auth': {'endpoint': self.api.base_url, 'token': token},
            }}}, f)
        # As an owner's shell: only the cloud's name and where its
        # clouds.yaml is.
        for name in [n for n in os.environ if n.startswith('OS_')
                     and n != 'OS_NOVA_DISABLE_EVENTLET_PATCHING']:
            self.useFixture(fixtures.EnvironmentVariable(name))
        self.useFixture(fixtures.EnvironmentVariable(
            'OS_CLIENT_CONFIG_FILE', path))
        self.useFixture(fixtures.EnvironmentVariable('OS_CLOUD', CLOUD))
        stubbed = nova_auth.NovaKeystoneContext._create_context

        def create_context(env, **kwargs):
            if 'HTTP_X_AUTH_USER' not in env:
                user, _sep, project = env.get('HTTP_X_AUTH_TOKEN',
                                              '').partition(':')
                return nova_context.RequestContext(
                    user, project, roles=['reader', 'member'], **kwargs)
            return stubbed(env, **kwargs)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.api.auth.NovaKeystoneContext._create_context',
            create_context))


class OwnerCommands:
    """Running ``nova-sev`` as the owner, on the harness's cloud."""

    def owner_setup(self):
        self.useFixture(OwnerCloud(self.api))
        self.dir = self.useFixture(fixtures.TempDir()).path

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def nova_sev(self, *argv):
        """``nova-sev argv`` (its main, in this process) on the harness's
        cloud: exit code, stdout and stderr.

        Here the global CONF is the harness's Nova configuration, parsed
        already, which the command must neither reload nor clear: a
        command table that loads oslo.config even without --config-file
        (``common.load_config``) is kept from it.
        """
        out, err = io.StringIO(), io.StringIO()
        keep_conf = (mock.patch.object(common, 'load_config')
                     if hasattr(common, 'load_config')
                     else contextlib.nullcontext())
        with mock.patch('sys.stdout', out), mock.patch('sys.stderr', err), \
                keep_conf:
            code = sev.main(list(argv))
        result = cli.Result(code, out.getvalue(), err.getvalue())
        self.assertNotIn('Traceback', result.err)
        self.assertLessEqual(len(result.err.splitlines()), 1, result.err)
        return result


class TestThroughNovaApi(OwnerCommands, base.SevServersTestBase):
    """What needs no attested guest: the way to Nova's API works."""

    def setUp(self):
        super().setUp()
        self.owner_setup()

    def test_server_that_never_opted_in(self):
        self.start_sev_compute('sev')
        server = self.boot('sev-trait')
        result = self.nova_sev('attest', server['name'], '--firmware',
                               base.OVMF_CODE, '--timeout', '0',
                               '--os-cloud', CLOUD)
        self.assertEqual(1, result.code, result.err)
        self.assertIn('never opted in', result.err)
        self.assertIn(sm.ATTEST, result.err)
        self.assertNotIn(sm.GODH + '.0', self.api.get_server(
            server['id'])['metadata'])

    def test_expected_measurement_of_a_server_that_publishes_nothing(self):
        self.start_sev_compute('sev')
        server = self.boot('sev-trait')
        result = self.nova_sev('expected-measurement', '--ovmf',
                               base.OVMF_CODE, '--server', server['id'])
        self.assertEqual(2, result.code)
        self.assertIn('publishes no %s' % sm.POLICY, result.err)


GUID = '0a1b2c3d-4e5f-4061-8728-39a4b5c6d7e8'
SECRET = b'the owner\'s disk passphrase\n'


class TestAttest(OwnerCommands, attested_base.AttestedServersTestBase):
    """Boot through Nova's API, then ``nova-sev attest`` on it."""

    def setUp(self):
        super().setUp()
        self.owner_setup()
        root = psp.default_root()
        self.ask = self.write('ask.cert', root.ask)
        self.ark = self.write('ark.cert', root.ark)
        self.secret_file = self.write('secret', SECRET)
        self.name = os.path.join(self.dir, 'vm1')

    def attest(self, server, *extra):
        return self.nova_sev(
            'attest', server['name'], '--firmware', self.owner_fw,
            '--secret', '%s=%s' % (GUID, self.secret_file), '--ask',
            self.ask, '--ark', self.ark, '--name', self.name,
            '--interval', '0.05', '--timeout', '60', *extra)

    def test_attest_ends_running_with_exactly_the_owners_secret(self):
        self.start_sev_compute('sev')
        server = self.boot_attested()
        result = self.attest(server, '--expect-policy', '0x0033')
        self.assertEqual(0, result.code, result.err)
        self.assertEqual(8, len(result.out.splitlines()), result.out)
        md = self.metadata(server)
        self.assertEqual(sm.RUNNING, md[sm.STATE])
        guest = self.psp.psp_guests[server['id']]
        self.assertEqual([(uuid.UUID(GUID), SECRET)],
                         owner_secret.parse_secret_table(guest.secret_table))
        self.assertEqual([guest.secret_table], guest.secrets)
        self.assertEqual(fakelibvirt.VIR_DOMAIN_RUNNING,
                         self.dom_state(server))
        # Used once, then deleted: the session, the secret, the host facts.
        used = sm.SESSION_KEYS + sm.SECRET_KEYS + (sm.PDH, sm.CERT_CHAIN)
        for name in used:
            self.assertEqual([], sm.keys_of(md, name), name)
        # The session's files are kept, and are the launch's.
        with open(self.name + '_tik.bin', 'rb') as f:
            self.assertEqual(guest.tik, f.read())

    def test_json_prints_every_value_used(self):
        self.start_sev_compute('sev')
        server = self.boot_attested()
        result = self.attest(server, '--format', 'json')
        self.assertEqual(0, result.code, result.err)
        doc = json.loads(result.out)
        values = doc['values']
        self.assertEqual(server['id'], values['server']['id'])
        self.assertEqual(hashlib.sha256(self.firmware_bytes).hexdigest(),
                         values['platform']['firmware_sha256'])
        self.assertEqual([GUID], values['secrets'])
        # The kept session files verify the launch by hand as well.
        launched = values['measurement']
        api = sm.parse_api(launched['api'])
        by_hand = self.nova_sev(
            'verify-measurement', '--name', self.name, '--firmware',
            self.owner_fw, '--measurement', launched['reported'],
            '--api-major', str(api[0]), '--api-minor', str(api[1]),
            '--build-id', str(launched['build']), '--policy',
            launched['policy'])
        self.assertEqual(0, by_hand.code, by_hand.err)

    def test_measurement_altered_by_the_host_sends_no_secret(self):
        self.start_sev_compute('sev')
        real = fakelibvirt.Domain.launchSecurityInfo

        def altered(dom, flags=0):
            info = dict(real(dom, flags))
            raw = bytearray(base64.b64decode(info['sev-measurement']))
            raw[0] ^= 1
            info['sev-measurement'] = base64.b64encode(bytes(raw)).decode()
            return info
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.launchSecurityInfo', altered))
        server = self.boot_attested()
        result = self.attest(server)
        self.assertEqual(1, result.code, result.err)
        self.assertIn('does NOT match', result.err)
        md = self.metadata(server)
        self.assertEqual(sm.AWAITING_SECRET, md[sm.STATE])
        self.assertEqual([], sm.keys_of(md, sm.SECRET_HEADER))
        guest = self.psp.psp_guests[server['id']]
        self.assertIsNone(guest.secret_table)
        self.assertEqual(fakelibvirt.VIR_DOMAIN_PAUSED, self.dom_state(server))

    def test_host_firmware_that_is_not_the_owners_sends_nothing(self):
        self.start_sev_compute('sev')
        server = self.boot_attested()
        self.owner_fw = self.write('mine.fd', ovmf_image.build(
            seed=19, pages=16))
        result = self.attest(server)
        self.assertEqual(1, result.code, result.err)
        self.assertIn(sm.FIRMWARE_SHA256, result.err)
        md = self.metadata(server)
        self.assertEqual(sm.AWAITING_SESSION, md[sm.STATE])
        self.assertEqual([], sm.keys_of(md, sm.GODH))
        self.assertNotIn(server['id'], self.psp.psp_guests)

    def test_a_chain_under_another_root_is_not_authentic(self):
        self.start_sev_compute('sev')
        server = self.boot_attested()
        other = psp.FakeAmdRoot('other')
        self.ask = self.write('other-ask', other.ask)
        self.ark = self.write('other-ark', other.ark)
        result = self.attest(server)
        self.assertEqual(3, result.code, result.err)
        md = self.metadata(server)
        self.assertEqual(sm.AWAITING_SESSION, md[sm.STATE])
        self.assertEqual([], sm.keys_of(md, sm.GODH))

    def test_sev_es(self):
        sev_host_params = os.path.join(self.dir, 'kvm_amd_es')
        sev_host.write_kvm_amd_params(sev_host_params, sev='1', sev_es='1')
        self.flags(kvm_amd_parameters_dir=sev_host_params, group='sev')
        self.start_sev_compute('sev', max_es_guests=15)
        server = self.boot_attested(flavor='sev-es')
        result = self.attest(server, '--vcpu-type',
                             attested_base.attested_libvirt.DEFAULT_VCPU_TYPE)
        self.assertEqual(0, result.code, result.err)
        self.assertIn('ES', result.out)
        guest = self.psp.psp_guests[server['id']]
        self.assertEqual([(uuid.UUID(GUID), SECRET)],
                         owner_secret.parse_secret_table(guest.secret_table))


class TestAttestSnp(OwnerCommands, attested_base.AttestedServersTestBase):
    """An SNP server's report, checked against what the server publishes
    through Nova's API.
    """

    VCPU_SIG = 0xa00f11

    def setUp(self):
        super().setUp()
        self.owner_setup()
        self.libvirt.amd_sev.sev_snp = True
        # A stateless build with SNP metadata, so that the digest can be
        # computed from it; the owner has the same bytes.
        self.firmware = ovmf_image.build(seed=20, pages=8,
                                         kernel_hashes=False)
        host_fw = os.path.join(self.firmware_dir, 'OVMF.snp.fd')
        with open(host_fw, 'wb') as f:
            f.write(self.firmware)
        self.owner_fw = self.write('owner-snp.fd', self.firmware)
        self.write_descriptor('25-ovmf-snp-test.json', dict(
            test_snp.SNP_DESCRIPTOR, mapping={'device': 'memory',
                                              'filename': host_fw}))
        self.flavors['snp'] = self._create_flavor(
            name='snp', memory_mb=2048,
            extra_spec={'trait:HW_CPU_X86_AMD_SEV_SNP': 'required'})
        self.chain = snp_chain.Chain()
        self.vcek = self.write('vcek.pem', self.chain.pem(self.chain.vcek))
        self.ask = self.write('ask.pem', self.chain.pem(self.chain.ask))
        self.ark = self.write('ark.pem', self.chain.pem(self.chain.ark))

    def start_snp_compute(self, hostname):
        params = self.kvm_amd_params + '-snp'
        sev_host.write_kvm_amd_params(params, sev='1', sev_es='1',
                                      sev_snp='Y')
        self.flags(kvm_amd_parameters_dir=params, group='sev')
        self.host_features = dict(self.host_features,
                                  **{hostname: test_snp.snp_features()})
        return self.start_compute(
            hostname, host_info=base.fake_host_info(),
            libvirt_version=test_snp.SNP_LIBVIRT_VERSION,
            qemu_version=test_snp.SNP_QEMU_VERSION)

    def guest_report(self, server, nonce, **changes):
        """The report the guest gets from its chip: what the domain
        really launched (the firmware its loader names, its vCPUs, policy
        and HOST_DATA), signed by the chip's VCEK.
        """
        _host, root = self.last_domain(server)
        sec = root.find('launchSecurity')
        digest = launch_digest.launch_digest(launch_digest.LaunchInputs(
            mode='snp', ovmf=root.findtext('os/loader').strip(),
            vcpus=int(root.findtext('vcpu')), vcpu_sig=self.VCPU_SIG))
        fields = dict(measurement=digest, report_data=nonce,
                      policy=int(sec.findtext('policy'), 16),
                      host_data=base64.b64decode(sec.findtext('hostData')))
        fields.update(changes)
        return self.write('report.bin', snp_chain.signed_report(
            self.chain.vcek_key, **fields))

    def attest(self, server, report, nonce, *extra):
        return self.nova_sev(
            'attest', server['id'], '--report', report, '--vcek', self.vcek,
            '--ask', self.ask, '--ark', self.ark, '--firmware',
            self.owner_fw, '--report-data', nonce.hex(), '--vcpu-sig',
            hex(self.VCPU_SIG), '--interval', '0.05', '--timeout', '60',
            *extra)

    def boot_snp(self):
        body = self._build_server(image_uuid=self.images['plain'],
                                  flavor_id=self.flavors['snp'],
                                  networks='none')
        body['metadata'] = {sm.ATTEST: 'true'}
        server = self.api.post_server({'server': body})
        return self._wait_for_state_change(server, 'ACTIVE')

    def test_report_verifies_against_the_published_inputs(self):
        self.start_snp_compute('snp')
        server = self.boot_snp()
        md = self.api.get_server(server['id'])['metadata']
        self.assertEqual(sm.RUNNING, md[sm.STATE])
        self.assertEqual(host_data.host_data_b64(server['id']),
                         md[sm.SNP_HOST_DATA])
        nonce = os.urandom(64)
        result = self.attest(server, self.guest_report(server, nonce),
                             nonce, '--format', 'json')
        self.assertEqual(0, result.code, result.err)
        doc = json.loads(result.out)
        self.assertEqual('OK', doc['values']['report']['verdict'])
        self.assertIn('host_data_binding', [
            c['name'] for c in doc['values']['report']['checks']])
        # The same by hand: expected-measurement, then verify-report.
        expected = self.nova_sev(
            'expected-measurement', '--server', server['name'], '--ovmf',
            self.owner_fw, '--vcpu-sig', hex(self.VCPU_SIG), '--format',
            'json')
        self.assertEqual(0, expected.code, expected.err)
        digest = json.loads(expected.out)['digest']
        self.assertEqual(doc['values']['expected_digest'], digest)
        verified = self.nova_sev(
            'verify-report', '--server', server['id'], '--report',
            self.write('report.bin', open(self.dir + '/report.bin',
                                          'rb').read()),
            '--vcek', self.vcek, '--ask', self.ask, '--ark', self.ark,
            '--measurement', digest, '--report-data', nonce.hex())
        self.assertEqual(0, verified.code, verified.out + verified.err)

    def test_report_of_another_launch_is_refused(self):
        self.start_snp_compute('snp')
        server = self.boot_snp()
        nonce = os.urandom(64)
        other = host_data.instance_host_data(str(uuid.uuid4()))
        result = self.attest(server, self.guest_report(
            server, nonce, host_data=other), nonce)
        self.assertEqual(1, result.code, result.err)
        self.assertIn('host_data', result.err)
        result = self.attest(server, self.guest_report(
            server, nonce, measurement=b'\x01' * 48), nonce)
        self.assertEqual(1, result.code, result.err)
        self.assertIn('measurement', result.err)


def load_tests(loader, tests, pattern):
    """The tests of the Nova installed: the SEV-SNP ones from 2026.2."""
    return base.without_snp_unknown_to_nova(tests, TestAttestSnp)
