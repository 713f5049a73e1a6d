"""``nova-sev launch-info`` against a fake at the libvirt-python boundary.

A real SEV launch needs /dev/sev, which CI hosts lack, so the ``libvirt``
module itself is replaced by a fake (below) that answers
``launchSecurityInfo()`` and ``getSEVInfo()`` with what libvirt 9.0 returns
for an SEV guest; everything above it (nova_sev's connection opening,
lookups, error handling, output) is the real code.
"""

import hashlib
import json
import os
import sys
import types
from unittest import mock

import fixtures
import testtools

from nova_sev.attestation import host_data

from nova_sev.cmd import common
from nova_sev.cmd import launch_info
from nova_sev.tests.unit.attestation import cli
from nova_sev.tests.unit.attestation import vectors

UUID = '0d7ac5d4-9d62-4d0a-9a07-2ba2d4bd9a0c'
VIR_ERR_OPERATION_INVALID = 55
VIR_ERR_NO_DOMAIN = 42

SEV_LAUNCH = {
    'sev-measurement': vectors.MEASUREMENT_FIRMWARE,
    'sev-api-major': vectors.API_MAJOR,
    'sev-api-minor': vectors.API_MINOR,
    'sev-build-id': vectors.BUILD_ID,
    'sev-policy': vectors.POLICY_SEV,
}
SEV_HOST = {
    'pdh': 'UERIIGZvciBub3ZhLXNldiB0ZXN0cw==',
    'cert-chain': 'Q0VSVCBDSEFJTg==',
    'cpu0-id': 'Q1BVMCBJRA==',
    'cbitpos': 47,
    'reduced-phys-bits': 1,
    'max-guests': 15,
    'max-es-guests': 494,
}


class FakeLibvirtError(Exception):
    def __init__(self, message, code):
        super().__init__(message)
        self.code = code

    def get_error_code(self):
        return self.code

    def get_error_message(self):
        return str(self)


SEV_DOMAIN_XML = """<domain type='kvm'>
  <name>instance-00000001</name>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>%(firmware)s</loader>
  </os>
  <cpu mode='custom' match='exact'><model>EPYC-Milan</model></cpu>
  <launchSecurity type='sev'><cbitpos>47</cbitpos>
    <reducedPhysBits>1</reducedPhysBits><policy>0x0033</policy>
  </launchSecurity>
</domain>"""
PLAIN_DOMAIN_XML = "<domain type='kvm'><name>plain</name></domain>"


class FakeDomain:
    def __init__(self, name, uuid, domain_id, launch,
                 xml=SEV_DOMAIN_XML % {'firmware': '/nonexistent/OVMF.fd'}):
        self._name, self._uuid, self._id = name, uuid, domain_id
        self.launch = launch
        self.xml = xml

    def XMLDesc(self, flags=0):
        if isinstance(self.xml, Exception):
            raise self.xml
        return self.xml

    def name(self):
        return self._name

    def UUIDString(self):
        return self._uuid

    def launchSecurityInfo(self, flags=0):
        if isinstance(self.launch, Exception):
            raise self.launch
        return dict(self.launch)


class FakeConnection:
    def __init__(self, domains, sev_info):
        self.domains = domains
        self.sev_info = sev_info
        self.closed = False

    def _find(self, key, value):
        for dom in self.domains:
            if getattr(dom, key) == value:
                return dom
        raise FakeLibvirtError('Domain not found: no domain with matching '
                               '%s' % key, VIR_ERR_NO_DOMAIN)

    def lookupByName(self, name):
        return self._find('_name', name)

    def lookupByUUIDString(self, uuid):
        return self._find('_uuid', uuid)

    def lookupByID(self, domain_id):
        return self._find('_id', domain_id)

    def getSEVInfo(self, flags=0):
        if isinstance(self.sev_info, Exception):
            raise self.sev_info
        return dict(self.sev_info)

    def close(self):
        self.closed = True


def fake_libvirt(conn):
    module = types.ModuleType('libvirt')
    module.libvirtError = FakeLibvirtError
    module.VIR_ERR_NO_DOMAIN = VIR_ERR_NO_DOMAIN
    module.registerErrorHandler = lambda handler, ctx: None
    module.virEventRegisterDefaultImpl = lambda: None
    module.opened = []

    def open_uri(uri):
        module.opened.append(uri)
        return conn
    module.open = open_uri
    module.openReadOnly = open_uri
    return module


class FakeLibvirtTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.sev_dom = FakeDomain('instance-00000001', UUID, 7, SEV_LAUNCH)
        self.plain_dom = FakeDomain('plain', '1' * 8 + '-1111-1111-1111-' +
                                    '1' * 12, 8, {}, PLAIN_DOMAIN_XML)
        self.conn = FakeConnection([self.sev_dom, self.plain_dom], SEV_HOST)
        self.libvirt = fake_libvirt(self.conn)
        patcher = mock.patch.dict(sys.modules, {'libvirt': self.libvirt})
        patcher.start()
        self.addCleanup(patcher.stop)

    def info(self, *args):
        return cli.run(self, ['launch-info', '--connection', 'qemu:///system']
                       + list(args))


class TestLaunchInfo(FakeLibvirtTestCase):

    def test_text(self):
        result = self.info('instance-00000001')
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        self.assertEqual(['qemu:///system'], self.libvirt.opened)
        self.assertTrue(self.conn.closed)
        out = result.out
        self.assertIn('measurement: %s' % vectors.MEASUREMENT_FIRMWARE, out)
        self.assertIn('SEV API: 1.51 build 3', out)
        self.assertIn('policy: 0x0033 (NODBG,NOKS,DOMAIN,SEV)', out)
        self.assertIn('host pdh: %s' % SEV_HOST['pdh'], out)
        self.assertIn('host cpu0_id: %s' % SEV_HOST['cpu0-id'], out)
        self.assertIn('on a machine you trust, not this host', out)

    def test_json_feeds_verify_measurement(self):
        result = self.info(UUID, '--format', 'json')
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        report = json.loads(result.out)
        self.assertEqual({'sev_measurement': vectors.MEASUREMENT_FIRMWARE,
                          'sev_api_major': 1, 'sev_api_minor': 51,
                          'sev_build_id': 3, 'sev_policy': 0x33},
                         report['properties'])
        self.assertEqual('instance-00000001', report['domain'])
        self.assertEqual(47, report['host']['cbitpos'])
        self.assertEqual(SEV_HOST['cert-chain'], report['host']['cert_chain'])
        # The guest owner's side: the JSON as --server-json.
        files = self.useFixture(cli.OwnerFiles())
        path = files.write('launch.json', result.out)
        verdict = cli.run(self, [
            'verify-measurement', '--server-json', path,
            '--firmware', files.path('firmware'), '--tk', files.path('tk')])
        self.assertEqual(common.EXIT_OK, verdict.code, verdict.err)

    def test_lookup_by_id(self):
        result = self.info('7')
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        self.assertIn('instance-00000001', result.out)

    def test_not_found(self):
        result = self.info('no-such-guest')
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('No SEV launch information for domain no-such-guest: '
                      'no domain with that name, UUID or id on '
                      'qemu:///system', result.err)
        self.assertTrue(self.conn.closed)

    def test_not_sev(self):
        result = self.info('plain')
        self.assertEqual(common.EXIT_REFUSED, result.code)
        self.assertIn('domain plain on qemu:///system is not an SEV guest',
                      result.err)
        self.assertEqual('', result.out)

    def test_not_running(self):
        self.sev_dom.launch = FakeLibvirtError(
            'Requested operation is not valid: domain is not running',
            VIR_ERR_OPERATION_INVALID)
        result = self.info('instance-00000001')
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('domain is not running (the measurement exists only '
                      'while the guest runs)', result.err)

    def test_host_info_unavailable(self):
        self.conn.sev_info = FakeLibvirtError(
            'this function is not supported', 3)
        result = self.info('instance-00000001', '--format', 'json')
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        report = json.loads(result.out)
        self.assertIsNone(report['host'])
        self.assertEqual('this function is not supported',
                         report['host_error'])

    def test_id_beyond_a_c_int(self):
        # Not an id libvirt can have: looked up as a name, not an
        # OverflowError in libvirt-python.
        result = self.info('99999999999999999999')
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertNotIn('unexpected error', result.err)
        self.assertIn('No SEV launch information for domain '
                      '99999999999999999999: no domain with that name',
                      result.err)

    def test_huge_name_is_not_echoed(self):
        result = self.info('9' * 5000)
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('more characters', result.err)
        self.assertLess(len(result.err), 600)

    def test_connection_refused(self):
        def refuse(uri):
            raise FakeLibvirtError('Failed to connect socket', 38)
        self.libvirt.open = refuse
        result = self.info('instance-00000001')
        self.assertEqual(common.EXIT_ERROR, result.code)
        self.assertIn('cannot connect to libvirt at qemu:///system',
                      result.err)


class TestMeasurementInputs(FakeLibvirtTestCase):
    """The inputs of the expected measurement, from the domain's XML."""

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.firmware = os.path.join(self.dir, 'OVMF.fd')
        with open(self.firmware, 'wb') as f:
            f.write(b'firmware')
        self.sev_dom.xml = SEV_DOMAIN_XML % {'firmware': self.firmware}

    def test_json(self):
        result = self.info(UUID, '--format', 'json')
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        inputs = json.loads(result.out)['measurement_inputs']
        self.assertEqual('sev', inputs['mode'])
        self.assertEqual(self.firmware, inputs['firmware'])
        self.assertEqual(hashlib.sha384(b'firmware').hexdigest(),
                         inputs['firmware_sha384'])
        self.assertEqual(2, inputs['vcpus'])
        self.assertEqual('EPYC-Milan', inputs['vcpu_type'])
        self.assertEqual(0x33, inputs['policy'])
        self.assertEqual(['nova-sev', 'expected-measurement', '--mode', 'sev',
                          '--ovmf', self.firmware],
                         inputs['expected_measurement'])

    def test_text_names_the_command(self):
        result = self.info(UUID)
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        self.assertIn('measurement inputs (sev):', result.out)
        self.assertIn('compute it with: nova-sev expected-measurement '
                      '--mode sev --ovmf %s' % self.firmware, result.out)

    def test_inputs_only_needs_no_running_guest(self):
        self.sev_dom.launch = FakeLibvirtError(
            'Requested operation is not valid: domain is not running',
            VIR_ERR_OPERATION_INVALID)
        self.sev_dom.xml = self.sev_dom.xml.replace('0x0033', '0x0037')
        result = self.info(UUID, '--inputs-only', '--format', 'json')
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        report = json.loads(result.out)
        self.assertIsNone(report['properties']['sev_measurement'])
        self.assertEqual(['nova-sev', 'expected-measurement', '--mode',
                          'seves', '--ovmf', self.firmware, '--vcpus', '2',
                          '--vcpu-type', 'EPYC-Milan'],
                         report['measurement_inputs']['expected_measurement'])
        text = self.info(UUID, '--inputs-only')
        self.assertEqual(common.EXIT_OK, text.code, text.err)
        self.assertTrue(text.out.startswith('launch inputs of domain'))

    def test_inputs_only_plain_domain(self):
        result = self.info('plain', '--inputs-only')
        self.assertEqual(common.EXIT_REFUSED, result.code)
        self.assertIn('is not an SEV guest', result.err)

    def test_snp_launch(self):
        self.sev_dom.launch = {'sev-snp-policy': 0x30000}
        self.sev_dom.xml = (SEV_DOMAIN_XML % {'firmware': self.firmware}
                            ).replace("type='sev'", "type='sev-snp'").replace(
            '0x0033', '0x00030000').replace(
            '</launchSecurity>', '<hostData>%s</hostData></launchSecurity>'
            % host_data.host_data_b64(UUID))
        result = self.info(UUID, '--format', 'json')
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        inputs = json.loads(result.out)['measurement_inputs']
        self.assertEqual('snp', inputs['mode'])
        self.assertEqual(host_data.host_data_b64(UUID), inputs['host_data'])
        self.assertIn('--vcpu-type', inputs['expected_measurement'])

    def test_xml_unavailable_keeps_the_measurement(self):
        self.sev_dom.xml = FakeLibvirtError('internal error', 1)
        result = self.info(UUID, '--format', 'json')
        self.assertEqual(common.EXIT_OK, result.code, result.err)
        report = json.loads(result.out)
        self.assertIsNone(report['measurement_inputs'])
        self.assertIn('internal error', report['measurement_inputs_error'])


class TestLookupOrder(testtools.TestCase):

    def test_order(self):
        self.assertEqual(('lookupByUUIDString', 'lookupByName'),
                         launch_info.lookup_order(UUID))
        self.assertEqual(('lookupByID', 'lookupByName'),
                         launch_info.lookup_order('12'))
        self.assertEqual(('lookupByName',),
                         launch_info.lookup_order('instance-0000000c'))

    def test_ids_are_c_ints(self):
        self.assertEqual(('lookupByID', 'lookupByName'),
                         launch_info.lookup_order(str(2 ** 31 - 1)))
        for name in (str(2 ** 31), '9' * 20, '\u00b2', '\u0661\u0662'):
            self.assertEqual(('lookupByName',),
                             launch_info.lookup_order(name), name)

    def test_is_sev_launch(self):
        self.assertTrue(launch_info.is_sev_launch(SEV_LAUNCH))
        self.assertFalse(launch_info.is_sev_launch({}))
