"""The SEV-SNP guest: plan and domain (policy, HOST_DATA, stateless
firmware, unlocked memory, kernel hashes) and each refusal.
"""

import base64
import dataclasses
import hashlib

from lxml import etree
import testtools

from nova_sev import exception
from nova_sev.tests.fixtures import sev_host
from nova_sev.tests.unit.virt.libvirt import test_designer
from nova_sev.tests.unit.virt.libvirt import test_guest_plan as tgp
from nova_sev.virt.hardware import Request
from nova_sev.virt.hardware import SevMode
from nova_sev.virt.libvirt import designer
from nova_sev.virt.libvirt import guest_plan as gp
from nova_sev.virt.libvirt import sev_guest

UUID = 'c2b0f5a4-6f0e-4d6b-9a55-0f3e4d5c6b7a'
SNP_FW = sev_host.snp_descriptor()
SNP_REQUEST = 'flavor extra spec trait:HW_CPU_X86_AMD_SEV_SNP=required'


def snp_caps(**kwargs):
    values = dict(sev_es=False, sev_snp_usable=True, snp_firmware=(SNP_FW,),
                  max_es_guests=494)
    values.update(kwargs)
    return tgp.caps(**values)


def snp_facts(**kwargs):
    kwargs.setdefault('requested_by', SNP_REQUEST)
    kwargs.setdefault('instance_uuid', UUID)
    return tgp.facts(**kwargs)


def plan(facts=None, caps=None, options=tgp.OPTS):
    return gp.make_guest_plan(SevMode.SEV_SNP, caps or snp_caps(),
                              facts or snp_facts(), options)


class TestSnpPolicy(testtools.TestCase):

    def test_default(self):
        self.assertEqual(0x00030000, plan().policy)
        self.assertEqual(196608, gp.SNP_POLICY_DEFAULT)

    def test_override(self):
        options = gp.SevGuestOptions(snp_policy='0x00130000')
        self.assertEqual(0x130000, gp.snp_guest_policy(options))

    def test_weakening_bits_need_consent(self):
        for policy, name in (('0x000b0000', 'DEBUG'),
                             ('0x00070000', 'MIGRATE_MA'),
                             ('0x00230000', 'CXL_ALLOW')):
            e = self.assertRaises(exception.InvalidSevPolicy,
                                  gp.snp_guest_policy,
                                  gp.SevGuestOptions(snp_policy=policy))
            self.assertIn(name, str(e))
            self.assertIn('allow_insecure_policy', str(e))
            self.assertEqual(int(policy, 16), gp.snp_guest_policy(
                gp.SevGuestOptions(snp_policy=policy,
                                   allow_insecure_policy=True)))

    def test_invalid(self):
        for policy, text in (('snp', 'not a number'),
                             ('0x00010000', 'bit 17'),
                             ('0x4030000', 'reserves'),
                             ('-1', 'reserves')):
            options = gp.SevGuestOptions(snp_policy=policy,
                                         allow_insecure_policy=True)
            e = self.assertRaises(exception.InvalidSevPolicy,
                                  gp.snp_guest_policy, options)
            self.assertIn(text, str(e))

    def test_sev_policy_option_does_not_apply(self):
        self.assertEqual(0x30000, plan(options=gp.SevGuestOptions(
            policy='0x0033')).policy)


class TestHostData(testtools.TestCase):

    def test_binds_the_uuid(self):
        expected = base64.b64encode(hashlib.sha256(
            b'nova-sev-host-data-v1:' + UUID.encode()).digest()).decode()
        self.assertEqual(expected, gp.snp_host_data(UUID))
        self.assertEqual(32, len(base64.b64decode(gp.snp_host_data(UUID))))
        self.assertEqual(gp.snp_host_data(UUID),
                         gp.snp_host_data(UUID.upper()))
        self.assertNotEqual(gp.snp_host_data(UUID), gp.snp_host_data(
            'c2b0f5a4-6f0e-4d6b-9a55-0f3e4d5c6b7b'))


class TestSnpPlan(testtools.TestCase):

    def test_plan(self):
        p = plan()
        self.assertEqual(SevMode.SEV_SNP, p.mode)
        self.assertEqual('/usr/share/ovmf/OVMF.fd', p.loader_path)
        self.assertEqual(gp.LOADER_ROM, p.loader_type)
        self.assertIsNone(p.nvram_template_path)
        self.assertFalse(p.lock_memory)
        self.assertIsNone(p.hard_limit_kib)
        # Not locked, but not swappable either: still counted.
        self.assertEqual(4096 + 16, p.pinned_memory_mb)
        self.assertEqual(gp.snp_host_data(UUID), p.snp.host_data)
        self.assertFalse(p.snp.kernel_hashes)
        self.assertFalse(p.snp.author_key)
        self.assertTrue(p.snp.vcek)
        self.assertEqual('q35', p.machine_type)
        self.assertEqual('scsi', p.disk_bus)

    def test_kernel_hashes_with_direct_kernel_boot(self):
        self.assertTrue(plan(snp_facts(direct_kernel_boot=True))
                        .snp.kernel_hashes)

    def test_host_cannot_give_snp(self):
        e = self.assertRaises(
            exception.SevSNPNotUsable, plan, caps=snp_caps(
                sev_snp_usable=False, sev_snp_reasons=(
                    'libvirt domain capabilities offer no sev-snp',)))
        self.assertIn(SNP_REQUEST, str(e))
        self.assertIn('offer no sev-snp', str(e))

    def test_sev_es_guest_on_snp_host(self):
        self.assertRaises(exception.SevESNotUsable, gp.make_guest_plan,
                          SevMode.SEV_ES, snp_caps(), tgp.facts(),
                          tgp.OPTS)

    def test_sev_guest_on_snp_host_unchanged(self):
        p = gp.make_guest_plan(SevMode.SEV, snp_caps(), tgp.facts(),
                               tgp.OPTS)
        self.assertIsNone(p.snp)
        self.assertTrue(p.lock_memory)
        self.assertEqual(gp.LOADER_PFLASH, p.loader_type)
        self.assertEqual(0x33, p.policy)

    def test_no_snp_firmware(self):
        e = self.assertRaises(exception.SevFirmwareNotFound, plan,
                              caps=snp_caps(snp_firmware=()))
        self.assertIn('amd-sev-snp', str(e))

    def test_stateful_firmware_refused(self):
        e = self.assertRaises(exception.SevGuestRefused, plan, snp_facts(
            stateless_firmware_request=Request(
                'false', 'image property hw_firmware_stateless')))
        self.assertIn('hw_firmware_stateless is false', str(e))
        self.assertIsNotNone(plan(snp_facts(
            stateless_firmware_request=Request(
                'true', 'image property hw_firmware_stateless'))))

    def test_machine_type_and_devices_as_for_sev(self):
        self.assertRaises(exception.SevMachineTypeNotSupported, plan,
                          snp_facts(machine_type_request=Request(
                              'pc', 'image property hw_machine_type')))
        self.assertRaises(exception.SevDiskBusNotSupported, plan,
                          snp_facts(disk_bus_request=Request(
                              'ide', 'image property hw_disk_bus')))


class TestSnpDomain(testtools.TestCase):

    def _apply(self, p=None):
        xml = designer.apply_guest_plan(test_designer.nova_domain(),
                                        p or plan())
        return etree.fromstring(xml)

    def test_launch_security(self):
        lsec = self._apply().find('launchSecurity')
        self.assertEqual({'type': 'sev-snp', 'authorKey': 'no',
                          'vcek': 'yes', 'kernelHashes': 'no'},
                         dict(lsec.attrib))
        self.assertEqual('0x00030000', lsec.findtext('policy'))
        self.assertEqual('47', lsec.findtext('cbitpos'))
        self.assertEqual(gp.snp_host_data(UUID), lsec.findtext('hostData'))

    def test_stateless_rom_no_nvram(self):
        os_node = self._apply().find('os')
        self.assertIsNone(os_node.get('firmware'))
        self.assertIsNone(os_node.find('nvram'))
        loader = os_node.find('loader')
        self.assertEqual('rom', loader.get('type'))
        self.assertEqual('/usr/share/ovmf/OVMF.fd', loader.text)

    def test_memory_not_locked(self):
        root = self._apply()
        self.assertIsNone(root.find('memoryBacking/locked'))
        self.assertIsNone(root.find('memtune/hard_limit'))
        xml = test_designer.nova_domain().replace(
            '</devices>', '</devices><memoryBacking><locked/>'
            '</memoryBacking>', 1)
        root = etree.fromstring(designer.apply_guest_plan(xml, plan()))
        self.assertIsNone(root.find('memoryBacking/locked'))

    def test_iommu_q35_no_ide(self):
        root = self._apply()
        self.assertIn('q35', root.find('os/type').get('machine'))
        for dev in root.find('devices'):
            if dev.tag == 'interface':
                self.assertEqual('on', dev.find('driver').get('iommu'))
        self.assertEqual([], [c for c in root.findall('devices/controller')
                              if c.get('type') == 'ide'])

    def test_design_from_request(self):
        domain = test_designer.nova_domain()
        uuid = etree.fromstring(domain).findtext('uuid')
        xml, p = sev_guest.design_sev_domain(
            domain, {'trait:HW_CPU_X86_AMD_SEV_SNP': 'required'}, {},
            snp_caps(), tgp.OPTS)
        self.assertEqual(SevMode.SEV_SNP, p.mode)
        self.assertEqual(gp.snp_host_data(uuid), p.snp.host_data)
        self.assertIn("type=\"sev-snp\"", xml)

    def test_direct_kernel_boot_domain(self):
        domain = test_designer.nova_domain().replace(
            '</type>', '</type><kernel>/var/lib/nova/vmlinuz</kernel>', 1)
        _xml, p = sev_guest.design_sev_domain(
            domain, {'trait:HW_CPU_X86_AMD_SEV_SNP': 'required'}, {},
            snp_caps(), tgp.OPTS)
        self.assertTrue(p.snp.kernel_hashes)

    def test_sev_domain_unchanged(self):
        sev_plan = dataclasses.replace(test_designer.PLAN)
        root = self._apply(sev_plan)
        self.assertEqual('sev', root.find('launchSecurity').get('type'))
        self.assertIsNotNone(root.find('memoryBacking/locked'))


class TestSnpPlanPerInstance(testtools.TestCase):
    """An SEV-SNP guest's plan binds its instance: what plan_guest keeps
    of a request is kept per instance for SEV-SNP.
    """

    def setUp(self):
        super().setUp()
        self.addCleanup(tgp.forget_requests)
        tgp.forget_requests()

    def test_host_data_of_each_instance(self):
        specs = {'trait:HW_CPU_X86_AMD_SEV_SNP': 'required'}
        other = 'c2b0f5a4-6f0e-4d6b-9a55-0f3e4d5c6b7b'
        plans = [gp.plan_guest(specs, {}, snp_caps(), tgp.OPTS, ram_mb=4096,
                               instance_uuid=uuid)
                 for uuid in (UUID, other, UUID)]
        self.assertEqual([gp.snp_host_data(UUID), gp.snp_host_data(other),
                          gp.snp_host_data(UUID)],
                         [p.snp.host_data for p in plans])
