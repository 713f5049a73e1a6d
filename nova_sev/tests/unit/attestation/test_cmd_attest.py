"""``nova-sev attest`` against a fake openstacksdk connection whose host
runs the PSP test double: every step, and every way it must stop with
nothing sent that should not be.
"""

import json
import os
import uuid

import fixtures
import testtools

from nova_sev.attestation import host_data
from nova_sev.attestation import launch_digest
from nova_sev.attestation import secret
from nova_sev.attestation import server_metadata as sm
from nova_sev.cmd import common
from nova_sev.cmd import servers
from nova_sev.tests.fixtures import psp
from nova_sev.tests.unit.attestation import cli
from nova_sev.tests.unit.attestation import fake_cloud
from nova_sev.tests.unit.attestation import ovmf_image
from nova_sev.tests.unit.attestation import snp_chain

GUID = '0a1b2c3d-4e5f-4061-8728-39a4b5c6d7e8'
SECRET = b'the disk passphrase\n'


class Base(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.cloud = fake_cloud.FakeCloud()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_sev.cmd.servers.connect', lambda args: self.cloud))
        root = self.cloud.platform.root
        self.ask = self.write('ask.cert', root.ask)
        self.ark = self.write('ark.cert', root.ark)
        self.firmware = self.write('OVMF.fd', self.cloud.firmware)
        self.secret_file = self.write('secret', SECRET)
        self.name = os.path.join(self.dir, 'vm1')

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def attest(self, server, *extra, firmware=True, secrets=True,
               roots=True):
        argv = ['attest', server.id, '--name', self.name,
                '--timeout', '0', '--interval', '0']
        if firmware:
            argv += ['--firmware', self.firmware]
        if secrets:
            argv += ['--secret', '%s=%s' % (GUID, self.secret_file)]
        if roots:
            argv += ['--ask', self.ask, '--ark', self.ark]
        return cli.run(self, argv + list(extra))

    def metadata_sent(self):
        return [items for _id, items in self.cloud.sent('set_server_metadata')]

    def assertNothingSent(self):
        self.assertEqual([], self.cloud.sent('set_server_metadata'))
        self.assertEqual([], self.cloud.sent('reboot_server'))


class TestSevFlow(Base):

    def test_attests_and_releases_with_the_owners_secret(self):
        server = self.cloud.boot()
        result = self.attest(server)
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        self.assertEqual(sm.RUNNING, server.metadata[sm.STATE])
        guest = self.cloud.guests[server.id]
        self.assertEqual([(uuid.UUID(GUID), SECRET)],
                         secret.parse_secret_table(guest.secret_table))
        self.assertEqual(['server', 'wait', 'platform', 'session', 'launch',
                          'measurement', 'secret', 'release'],
                         [line.split(':')[0]
                          for line in result.out.splitlines()])
        # Launched, then released: the stock client's two reboots.
        self.assertEqual([(server.id, 'HARD'), (server.id, 'SOFT')],
                         self.cloud.sent('reboot_server'))
        # The host deleted what it used; the owner deleted nothing.
        self.assertFalse(sm.keys_of(server.metadata, sm.SECRET))
        self.assertEqual('true', server.metadata[sm.ATTEST])

    def test_session_files_are_kept_as_nova_sev_session_writes_them(self):
        server = self.cloud.boot()
        self.assertEqual(0, self.attest(server).code)
        guest = self.cloud.guests[server.id]
        with open(self.name + '_tik.bin', 'rb') as f:
            self.assertEqual(guest.tik, f.read())
        with open(self.name + '_tek.bin', 'rb') as f:
            self.assertEqual(guest.tek, f.read())
        self.assertEqual(0o600, os.stat(self.name + '_tik.bin').st_mode
                         & 0o777)
        sent = self.metadata_sent()[0]
        with open(self.name + '_session.b64') as f:
            self.assertEqual(f.read(), sent[sm.SESSION])
        with open(self.name + '_godh.b64') as f:
            self.assertEqual(f.read(), sm.unpack(sent, sm.GODH))

    def test_release_without_a_secret(self):
        server = self.cloud.boot()
        result = self.attest(server, secrets=False)
        self.assertEqual(0, result.code, result.err)
        self.assertIsNone(self.cloud.guests[server.id].secret_table)
        self.assertEqual(1, len(self.metadata_sent()))
        self.assertIn('without a secret', result.out)

    def test_launch_digest_instead_of_firmware(self):
        server = self.cloud.boot()
        digest = launch_digest_of(self.cloud.firmware)
        result = self.attest(server, '--launch-digest', digest,
                             firmware=False)
        self.assertEqual(0, result.code, result.err)
        self.assertIn('not compared (--launch-digest)', result.out)

    def test_json_prints_every_value_used(self):
        server = self.cloud.boot()
        result = self.attest(server, '--format', 'json')
        self.assertEqual(0, result.code, result.err)
        doc = json.loads(result.out)
        self.assertEqual(0, doc['exit_code'])
        self.assertIsNone(doc['error'])
        values = doc['values']
        self.assertEqual(server.id, values['server']['id'])
        self.assertEqual('--ark %s' % self.ark, values['root'])
        self.assertEqual('0x0003', values['platform']['policy'])
        self.assertEqual(server.metadata[sm.MEASUREMENT],
                         values['measurement']['reported'])
        self.assertEqual(launch_digest_of(self.cloud.firmware),
                         values['measurement']['expected_digest'])
        self.assertEqual([GUID], values['secrets'])
        self.assertEqual(self.name + '_tik.bin',
                         values['session_files']['tik'])
        self.assertEqual(8, len(doc['steps']))


def launch_digest_of(firmware):
    from nova_sev.attestation import measurement
    return measurement.launch_digest(firmware).hex()


class TestSevRefusals(Base):

    def test_chain_that_does_not_verify_exits_3_and_sends_nothing(self):
        server = self.cloud.boot()
        other = psp.FakeAmdRoot('other')
        result = self.attest(server, roots=False)
        # The built-in AMD roots do not sign the test platform.
        self.assertEqual(common.EXIT_NOT_AUTHENTIC, result.code)
        self.assertIn('NOT authentic', result.err)
        self.assertNothingSent()
        self.ask = self.write('ask2', other.ask)
        self.ark = self.write('ark2', other.ark)
        self.assertEqual(3, self.attest(server).code)
        self.assertNothingSent()

    def test_a_tampered_pdh_is_not_authentic(self):
        server = self.cloud.boot()
        pdh = bytearray(sm.unpack_b64(server.metadata, sm.PDH))
        pdh[0x20] ^= 1
        for key in sm.keys_of(server.metadata, sm.PDH):
            del server.metadata[key]
        server.metadata.update(sm.pack_b64(sm.PDH, bytes(pdh)))
        result = self.attest(server)
        self.assertIn(result.code, (2, 3), result.err)
        self.assertNothingSent()

    def test_measurement_altered_by_the_host_sends_no_secret(self):
        server = self.cloud.boot()
        self.cloud.alter_measurement = True
        result = self.attest(server)
        self.assertEqual(common.EXIT_REFUSED, result.code)
        self.assertIn('does NOT match', result.err)
        self.assertIn('no secret was sent', result.err)
        # The session went out and the guest was launched, nothing more.
        self.assertEqual(1, len(self.metadata_sent()))
        self.assertNotIn(sm.SECRET_HEADER, self.metadata_sent()[0])
        self.assertEqual([(server.id, 'HARD')],
                         self.cloud.sent('reboot_server'))
        self.assertEqual(sm.AWAITING_SECRET, server.metadata[sm.STATE])
        self.assertIsNone(self.cloud.guests[server.id].secret_table)

    def test_wrong_launch_digest_sends_no_secret(self):
        server = self.cloud.boot()
        result = self.attest(server, '--launch-digest', '00' * 32,
                             firmware=False)
        self.assertEqual(1, result.code)
        self.assertEqual([(server.id, 'HARD')],
                         self.cloud.sent('reboot_server'))

    def test_host_boots_other_firmware_sends_nothing(self):
        server = self.cloud.boot()
        self.firmware = self.write('mine.fd', b'\x01' * 4096)
        result = self.attest(server)
        self.assertEqual(1, result.code)
        self.assertIn(sm.FIRMWARE_SHA256, result.err)
        self.assertNothingSent()

    def test_policy_that_allows_debug_is_refused(self):
        server = self.cloud.boot(policy=0x2)
        result = self.attest(server)
        self.assertEqual(1, result.code)
        self.assertIn('--allow-debug', result.err)
        self.assertNothingSent()
        self.assertEqual(0, self.attest(server, '--allow-debug').code)

    def test_expect_policy(self):
        server = self.cloud.boot(policy=0x3)
        result = self.attest(server, '--expect-policy', '0x7')
        self.assertEqual(1, result.code)
        self.assertIn('not the expected 0x0007', result.err)
        self.assertNothingSent()

    def test_server_that_never_opted_in(self):
        server = self.cloud.boot(attest=False)
        result = self.attest(server)
        self.assertEqual(1, result.code)
        self.assertIn('never opted in', result.err)
        self.assertIn('nova-sev:attest=true', result.err)
        self.assertNothingSent()

    def test_broken_chunk_sequence(self):
        server = self.cloud.boot()
        del server.metadata[sm.CERT_CHAIN + '.3']
        result = self.attest(server)
        self.assertEqual(2, result.code)
        self.assertIn('nova-sev:cert-chain.3 is missing', result.err)
        self.assertNothingSent()

    def test_server_already_launched(self):
        server = self.cloud.boot()
        server.metadata[sm.STATE] = sm.AWAITING_SECRET
        result = self.attest(server)
        self.assertEqual(1, result.code)
        self.assertIn('launched with a session already', result.err)
        self.assertNothingSent()

    def test_host_failure_is_reported(self):
        server = self.cloud.boot()
        # As the driver leaves it: the host's facts went with the launch.
        self.cloud._drop(server.metadata, sm.HOST_FACTS)
        server.metadata[sm.STATE] = sm.failed('no secret within 600 s, '
                                              'guest shut off')
        result = self.attest(server)
        self.assertEqual(1, result.code)
        self.assertIn('guest shut off', result.err)

    def test_a_failed_launch_awaiting_a_new_session_is_attested(self):
        server = self.cloud.boot()
        server.metadata[sm.STATE] = sm.failed(
            'this session was used for an earlier launch; a new session is '
            'awaited')
        result = self.attest(server)
        self.assertEqual(0, result.code, result.err)
        self.assertEqual(sm.RUNNING, server.metadata[sm.STATE])

    def test_launch_refused_by_the_firmware(self):
        # A session made for this PDH does not open on another platform.
        server = self.cloud.boot()
        self.cloud.platform, original = psp.FakePlatform(), self.cloud.platform
        self.addCleanup(setattr, self.cloud, 'platform', original)
        facts = fake_cloud.FakeCloud(original).host_facts(0x3)
        server.metadata.update(facts)
        result = self.attest(server)
        self.assertEqual(1, result.code)
        self.assertIn('launch refused by the firmware', result.err)
        self.assertEqual(1, len(self.metadata_sent()))

    def test_secret_refused_by_the_firmware(self):
        server = self.cloud.boot()
        real = self.cloud._release

        def refuse(srv):
            srv.metadata[sm.STATE] = sm.failed(
                'secret refused by the firmware (BAD_MEASUREMENT); still '
                'paused, send a new secret and release again')
        self.cloud._release = refuse
        result = self.attest(server)
        self.assertEqual(1, result.code)
        self.assertIn('still paused', result.err)
        self.cloud._release = real

    def test_timeout_waiting_for_the_session_state(self):
        server = self.cloud.boot()
        server.metadata[sm.STATE] = sm.AWAITING_SESSION
        server.status = 'BUILD'
        result = self.attest(server)
        self.assertEqual(2, result.code)
        self.assertIn('not awaiting-session within 0s', result.err)
        self.assertNothingSent()

    def test_timeout_waiting_for_the_launch(self):
        server = self.cloud.boot()
        self.cloud.stall = True
        result = self.attest(server)
        self.assertEqual(2, result.code)
        self.assertIn('not awaiting-secret within 0s', result.err)
        self.assertIn('task rebooting', result.err)
        self.assertEqual([(server.id, 'HARD')],
                         self.cloud.sent('reboot_server'))

    def test_no_expected_launch_given(self):
        server = self.cloud.boot()
        result = self.attest(server, firmware=False)
        self.assertEqual(2, result.code)
        self.assertIn('--launch-digest', result.err)
        self.assertNothingSent()

    def test_unreadable_secret_file_sends_nothing(self):
        server = self.cloud.boot()
        result = self.attest(server, '--secret', 'luks-key=/nonexistent')
        self.assertEqual(2, result.code)
        self.assertIn('/nonexistent', result.err)
        self.assertNothingSent()

    def test_the_same_guid_twice_sends_nothing(self):
        server = self.cloud.boot()
        result = self.attest(server, '--secret',
                             '%s=%s' % (GUID, self.secret_file))
        self.assertEqual(2, result.code)
        self.assertIn('given twice', result.err)
        self.assertNothingSent()

    def test_unknown_server(self):
        result = cli.run(self, ['attest', 'nosuch', '--firmware',
                                self.firmware])
        self.assertEqual(2, result.code)
        self.assertIn('no such server', result.err)

    def test_api_error_is_one_line(self):
        from openstack import exceptions as sdk_exceptions
        server = self.cloud.boot()

        def forbidden(server_id, **items):
            raise sdk_exceptions.ForbiddenException('Quota exceeded for '
                                                    'metadata items')
        self.cloud.set_server_metadata = forbidden
        result = self.attest(server)
        self.assertEqual(2, result.code)
        self.assertIn('Quota exceeded', result.err)
        self.assertEqual([], self.cloud.sent('reboot_server'))

    def test_json_on_failure_says_why(self):
        server = self.cloud.boot()
        self.cloud.alter_measurement = True
        result = self.attest(server, '--format', 'json')
        self.assertEqual(1, result.code)
        doc = json.loads(result.out)
        self.assertEqual(1, doc['exit_code'])
        self.assertIn('does NOT match', doc['error'])
        self.assertNotIn('secrets', doc['values'])


class SnpBase(Base):

    def setUp(self):
        super().setUp()
        self.chain = snp_chain.Chain()
        self.ovmf = ovmf_image.build(7, pages=8, kernel_hashes=False)
        self.ovmf_path = self.write('OVMF-snp.fd', self.ovmf)
        self.digest = launch_digest.launch_digest(launch_digest.LaunchInputs(
            mode='snp', ovmf=self.ovmf_path, vcpus=2, vcpu_sig=0xa00f11))
        self.vcek = self.write('vcek.pem', self.chain.pem(self.chain.vcek))
        self.snp_ask = self.write('ask.pem', self.chain.pem(self.chain.ask))
        self.snp_ark = self.write('ark.pem', self.chain.pem(self.chain.ark))

    def published(self, server, **changes):
        import hashlib
        values = {
            sm.SNP_FIRMWARE_SHA384: hashlib.sha384(self.ovmf).hexdigest(),
            sm.SNP_VCPUS: '2', sm.SNP_VCPU_SIG: '0xa00f11',
            sm.SNP_POLICY: '0x30000', sm.SNP_GUEST_FEATURES: '0x1',
            sm.SNP_KERNEL_HASHES: 'off',
            sm.SNP_HOST_DATA: host_data.host_data_b64(server.id),
            sm.SNP_DIGEST: self.digest.hex()}
        values.update(changes)
        return values

    def report(self, server, **changes):
        fields = dict(measurement=self.digest, report_data=b'\x42' * 64,
                      host_data=host_data.instance_host_data(server.id))
        fields.update(changes)
        return self.write('report.bin', snp_chain.signed_report(
            self.chain.vcek_key, **fields))


class TestSnp(SnpBase):

    def attest_snp(self, server, report, *extra):
        return cli.run(self, [
            'attest', server.name, '--timeout', '0', '--interval', '0',
            '--report', report, '--vcek', self.vcek, '--ask', self.snp_ask,
            '--ark', self.snp_ark, '--firmware', self.ovmf_path,
            '--report-data', '42' * 64] + list(extra))

    def test_report_verifies_against_the_published_inputs(self):
        server = self.cloud.boot(snp=self.published)
        result = self.attest_snp(server, self.report(server))
        self.assertEqual(0, result.code, result.err)
        self.assertIn('SNP report OK', result.out)
        self.assertIn('host_data_binding', result.out)
        self.assertNothingSent()

    def test_json(self):
        server = self.cloud.boot(snp=self.published)
        result = self.attest_snp(server, self.report(server), '--format',
                                 'json')
        doc = json.loads(result.out)
        self.assertEqual(0, doc['exit_code'], result.err)
        self.assertEqual(self.digest.hex(), doc['values']['expected_digest'])
        self.assertEqual('0x30000', doc['values']['snp']['policy'])
        self.assertEqual('OK', doc['values']['report']['verdict'])

    def test_other_measurement_is_refused(self):
        server = self.cloud.boot(snp=self.published)
        result = self.attest_snp(server, self.report(
            server, measurement=b'\x01' * 48))
        self.assertEqual(1, result.code)
        self.assertIn('measurement', result.err)

    def test_host_data_of_another_server_is_refused(self):
        other = str(uuid.uuid4())
        server = self.cloud.boot(snp=lambda s: self.published(
            s, **{sm.SNP_HOST_DATA: host_data.host_data_b64(other)}))
        result = self.attest_snp(server, self.report(
            server, host_data=host_data.instance_host_data(other)))
        self.assertEqual(1, result.code)
        self.assertIn('host_data_binding', result.err)

    def test_policy_other_than_published_is_refused(self):
        server = self.cloud.boot(snp=self.published)
        result = self.attest_snp(server, self.report(server,
                                                     policy=0x30001))
        self.assertEqual(1, result.code)
        self.assertIn('policy (report policy 0x30001', result.err)

    def test_published_vcpus_change_the_digest(self):
        server = self.cloud.boot(snp=lambda s: self.published(
            s, **{sm.SNP_VCPUS: '4'}))
        result = self.attest_snp(server, self.report(server))
        self.assertEqual(1, result.code)

    def test_other_firmware_on_the_host(self):
        server = self.cloud.boot(snp=lambda s: self.published(
            s, **{sm.SNP_FIRMWARE_SHA384: '00' * 48}))
        result = self.attest_snp(server, self.report(server))
        self.assertEqual(1, result.code)
        self.assertIn(sm.SNP_FIRMWARE_SHA384, result.err)

    def test_report_not_signed_by_the_vcek(self):
        server = self.cloud.boot(snp=self.published)
        other = snp_chain.Chain(vcek='other-vcek')
        report = self.write('forged', snp_chain.signed_report(
            other.vcek_key, measurement=self.digest,
            host_data=host_data.instance_host_data(server.id)))
        self.assertEqual(3, self.attest_snp(server, report).code)

    def test_kernel_hashes_on_needs_the_kernel(self):
        server = self.cloud.boot(snp=lambda s: self.published(
            s, **{sm.SNP_KERNEL_HASHES: 'on'}))
        result = self.attest_snp(server, self.report(server))
        self.assertEqual(2, result.code)
        self.assertIn('give --kernel', result.err)

    def test_host_cpu_vcpus_need_the_owners_signature(self):
        def published(server):
            values = self.published(server)
            del values[sm.SNP_VCPU_SIG]
            return values
        server = self.cloud.boot(snp=published)
        result = self.attest_snp(server, self.report(server))
        self.assertEqual(2, result.code)
        self.assertIn('give --vcpu-sig', result.err)
        result = self.attest_snp(server, self.report(server), '--vcpu-sig',
                                 '0xa00f11')
        self.assertEqual(0, result.code, result.err)

    def test_unpublished_firmware_digest_leaves_the_measurement_to_decide(
            self):
        def published(server):
            values = self.published(server)
            del values[sm.SNP_FIRMWARE_SHA384]
            return values
        server = self.cloud.boot(snp=published)
        self.assertEqual(0, self.attest_snp(server,
                                            self.report(server)).code)
        self.ovmf_path = self.write('other.fd', ovmf_image.build(
            8, pages=8, kernel_hashes=False))
        self.assertEqual(1, self.attest_snp(server,
                                            self.report(server)).code)

    def test_needs_report_and_vcek(self):
        server = self.cloud.boot(snp=self.published)
        result = cli.run(self, ['attest', server.id, '--firmware',
                                self.ovmf_path])
        self.assertEqual(2, result.code)
        self.assertIn('--report FILE', result.err)


class TestServerOptions(SnpBase):
    """``expected-measurement`` and ``verify-report`` with ``--server``
    and ``--server-json``.
    """

    def server_json(self, server, properties_as_text=False):
        props = server.metadata
        if properties_as_text:
            props = ', '.join("%s='%s'" % kv for kv in props.items())
        return self.write('server.json', json.dumps({
            'id': server.id, 'name': server.name, 'status': 'ACTIVE',
            'OS-EXT-STS:task_state': None, 'properties': props,
            'flavor': {'vcpus': 2}}).encode())

    def test_expected_measurement_from_server_json(self):
        server = self.cloud.boot(snp=self.published)
        for text in (False, True):
            result = cli.run(self, [
                'expected-measurement', '--ovmf', self.ovmf_path,
                '--server-json', self.server_json(server, text),
                '--format', 'json'])
            self.assertEqual(0, result.code, result.err)
            doc = json.loads(result.out)
            self.assertEqual(self.digest.hex(), doc['digest'])
            self.assertEqual('snp', doc['mode'])
            self.assertEqual(server.id, doc['published']['server'])

    def test_expected_measurement_from_server(self):
        server = self.cloud.boot(snp=self.published)
        result = cli.run(self, ['expected-measurement', '--ovmf',
                                self.ovmf_path, '--server', server.name])
        self.assertEqual(0, result.code, result.err)
        self.assertIn(self.digest.hex(), result.out)

    def test_expected_measurement_refuses_other_firmware(self):
        server = self.cloud.boot(snp=self.published)
        result = cli.run(self, ['expected-measurement', '--ovmf',
                                self.firmware, '--server', server.id])
        self.assertEqual(1, result.code)
        self.assertIn(sm.SNP_FIRMWARE_SHA384, result.err)

    def test_expected_measurement_refuses_published_inputs_twice(self):
        server = self.cloud.boot(snp=self.published)
        result = cli.run(self, ['expected-measurement', '--ovmf',
                                self.ovmf_path, '--server', server.id,
                                '--vcpus', '8'])
        self.assertEqual(2, result.code)
        self.assertIn('drop --vcpus', result.err)

    def test_expected_measurement_of_an_sev_server(self):
        server = self.cloud.boot(policy=0x3)
        result = cli.run(self, ['expected-measurement', '--ovmf',
                                self.firmware, '--server', server.id,
                                '--format', 'json'])
        self.assertEqual(0, result.code, result.err)
        doc = json.loads(result.out)
        self.assertEqual('sev', doc['mode'])
        self.assertEqual(launch_digest_of(self.cloud.firmware), doc['digest'])

    def test_expected_measurement_needs_a_mode_without_a_server(self):
        result = cli.run(self, ['expected-measurement', '--ovmf',
                                self.firmware])
        self.assertEqual(2, result.code)
        self.assertIn('--mode', result.err)

    def test_verify_report_from_server_json(self):
        server = self.cloud.boot(snp=self.published)
        result = cli.run(self, [
            'verify-report', '--report', self.report(server), '--vcek',
            self.vcek, '--ask', self.snp_ask, '--ark', self.snp_ark,
            '--measurement', self.digest.hex(),
            '--server-json', self.server_json(server), '--format', 'json'])
        self.assertEqual(0, result.code, result.err)
        doc = json.loads(result.out)
        names = [c['name'] for c in doc['checks']]
        self.assertIn('host_data', names)
        self.assertIn('policy', names)
        self.assertIn('host_data_binding', names)
        self.assertEqual('0x30000', doc['published']['policy'])

    def test_verify_report_from_server_refuses_other_host_data(self):
        server = self.cloud.boot(snp=self.published)
        result = cli.run(self, [
            'verify-report', '--report', self.report(
                server, host_data=b'\x07' * 32),
            '--vcek', self.vcek, '--ask', self.snp_ask, '--ark',
            self.snp_ark, '--server', server.id])
        self.assertEqual(1, result.code)
        self.assertIn('host_data (report 0707', result.out)

    def test_server_json_that_is_not_a_server(self):
        path = self.write('x.json', b'{"properties": {}}')
        result = cli.run(self, ['expected-measurement', '--ovmf',
                                self.firmware, '--server-json', path])
        self.assertEqual(2, result.code)
        self.assertIn('no server "id"', result.err)


class TestServers(testtools.TestCase):

    def test_server_of_document_reads_the_newer_task_state_key(self):
        server = servers.server_of_document(
            {'id': 'x', 'properties': {}, 'task_state': 'rebooting'}, 'f')
        self.assertEqual('rebooting', server.task_state)
        self.assertIsNone(server.vcpus)


class TestConnect(testtools.TestCase):
    """openstacksdk itself: a cloud that cannot be reached is one line."""

    def setUp(self):
        super().setUp()
        tmp = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(tmp, 'clouds.yaml')
        with open(path, 'w') as f:
            f.write('clouds: {}\n')
        for name in [n for n in os.environ if n.startswith('OS_')]:
            self.useFixture(fixtures.EnvironmentVariable(name))
        self.useFixture(fixtures.EnvironmentVariable(
            'OS_CLIENT_CONFIG_FILE', path))

    def test_unknown_cloud(self):
        result = cli.run(self, ['attest', 'vm1', '--os-cloud', 'nosuch',
                                '--firmware', '/dev/null'])
        self.assertEqual(2, result.code)
        self.assertIn('connecting to nosuch failed', result.err)

    def test_no_cloud_at_all(self):
        result = cli.run(self, ['verify-report', '--report', '/dev/null',
                                '--vcek', '/dev/null', '--server', 'vm1'])
        self.assertEqual(2, result.code)
        self.assertIn('OS_* variables failed', result.err)

    def test_os_cloud_defaults_to_the_variable(self):
        self.useFixture(fixtures.EnvironmentVariable('OS_CLOUD', 'mine'))
        result = cli.run(self, ['expected-measurement', '--ovmf',
                                '/dev/null', '--server', 'vm1'])
        self.assertIn('connecting to mine failed', result.err)
