"""The SEV guest plan: each decision of design.md §3, each refusal."""

import dataclasses
from unittest import mock
import uuid

from lxml import etree
from oslo_config import cfg
from oslo_config import fixture as config_fixture
import testtools

from nova_sev.conf import sev as sev_conf
from nova_sev import exception
from nova_sev.virt.hardware import Request
from nova_sev.virt.hardware import SevMode
from nova_sev.virt.libvirt import designer
from nova_sev.virt.libvirt import firmware as fw
from nova_sev.virt.libvirt import guest_plan as gp
from nova_sev.virt.libvirt import host


def descriptor(name='60-edk2-x86_64.json', features=('amd-sev',),
               machines=('pc-i440fx-*', 'pc-q35-*'),
               executable='/usr/share/OVMF/OVMF_CODE_4M.fd',
               nvram='/usr/share/OVMF/OVMF_VARS_4M.fd'):
    return fw.FirmwareDescriptor(
        path='/usr/share/qemu/firmware/' + name, interface_types=('uefi',),
        device='flash', executable=executable, nvram_template=nvram,
        targets=(fw.FirmwareTarget('x86_64', machines),),
        features=tuple(features))


SEV_FW = descriptor()
SEV_ES_FW = descriptor('50-edk2-sev-es.json', ('amd-sev', 'amd-sev-es'),
                       executable='/usr/share/OVMF/OVMF_CODE_SEV_ES.fd')
SECURE_FW = descriptor('40-edk2-secure.json',
                       ('amd-sev', 'requires-smm', 'secure-boot',
                        'enrolled-keys'),
                       executable='/usr/share/OVMF/OVMF_CODE_4M.ms.fd')


def caps(sev=True, sev_es=True, firmware=(SEV_FW, SEV_ES_FW), **kwargs):
    values = dict(sev_usable=sev, sev_es_usable=sev and sev_es,
                  cbitpos=47 if sev else None,
                  reduced_phys_bits=1 if sev else None,
                  sev_reasons=() if sev else ('kvm_amd parameter sev is 0',),
                  sev_es_reasons=() if sev and sev_es else (
                      'kvm_amd parameter sev_es is 0',),
                  firmware=firmware)
    values.update(kwargs)
    return host.SevHostCapabilities(**values)


def facts(**kwargs):
    kwargs.setdefault('ram_mb', 4096)
    kwargs.setdefault('requested_by',
                      'flavor extra spec trait:HW_CPU_X86_AMD_SEV=required')
    return gp.GuestFacts(**kwargs)


OPTS = gp.SevGuestOptions()
# A domain with a virtio device, to see what a plan writes.
DOMAIN = ("<domain type='kvm'><memory unit='MiB'>4096</memory><os><type>hvm"
          "</type></os><devices><rng model='virtio'/></devices></domain>")


def locks_memory(plan):
    root = etree.fromstring(designer.apply_guest_plan(DOMAIN, plan))
    return root.find('memoryBacking/locked') is not None


def gives_iommu(plan):
    root = etree.fromstring(designer.apply_guest_plan(DOMAIN, plan))
    return root.find('devices/rng/driver').get('iommu') == 'on'


class TestMakeGuestPlan(testtools.TestCase):

    def plan(self, mode=SevMode.SEV, host_caps=None, guest=None,
             options=OPTS, firmware=None):
        return gp.make_guest_plan(mode, host_caps or caps(),
                                  guest or facts(), options, firmware)

    def test_no_sev_no_plan(self):
        self.assertIsNone(self.plan(SevMode.NONE))
        # Whatever the host: a guest that did not ask is never refused.
        self.assertIsNone(self.plan(SevMode.NONE, caps(sev=False)))

    def test_sev_defaults(self):
        plan = self.plan()
        self.assertEqual(gp.GuestPlan(
            mode=SevMode.SEV, policy=0x33, cbitpos=47, reduced_phys_bits=1,
            machine_type='q35',
            loader_path='/usr/share/OVMF/OVMF_CODE_4M.fd',
            nvram_template_path='/usr/share/OVMF/OVMF_VARS_4M.fd',
            firmware_descriptor_path=SEV_FW.path,
            pinned_memory_mb=4096 + 16, hard_limit_kib=4718592,
            disk_bus='scsi', cdrom_bus='sata'), plan)
        # Every plan locks the memory and gives virtio devices an iommu.
        self.assertTrue(locks_memory(plan))
        self.assertTrue(gives_iommu(plan))

    def test_plan_is_frozen(self):
        plan = self.plan()
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, plan,
                          'policy', 0)

    def test_sev_es(self):
        plan = self.plan(SevMode.SEV_ES)
        self.assertEqual(0x37, plan.policy)
        self.assertEqual(SEV_ES_FW.executable, plan.loader_path)

    def test_host_not_capable_names_checks(self):
        e = self.assertRaises(exception.SevHostNotCapable, self.plan,
                              host_caps=caps(sev=False))
        self.assertIn('kvm_amd parameter sev is 0', str(e))
        self.assertIn('trait:HW_CPU_X86_AMD_SEV=required', str(e))
        self.assertIn('nova-sev host-check', str(e))

    def test_host_without_cbitpos(self):
        self.assertRaises(exception.SevHostNotCapable, self.plan,
                          host_caps=caps(cbitpos=None))

    def test_sev_es_not_usable(self):
        e = self.assertRaises(exception.SevESNotUsable, self.plan,
                              SevMode.SEV_ES, caps(sev_es=False))
        self.assertIn('sev_es is 0', str(e))
        # Plain SEV is still fine on that host.
        self.assertEqual(0x33, self.plan(host_caps=caps(sev_es=False)).policy)

    def test_machine_type(self):
        for value in ('q35', 'pc-q35-7.2'):
            plan = self.plan(guest=facts(machine_type_request=Request(
                value, 'image property hw_machine_type')))
            self.assertEqual(value, plan.machine_type)
        for source in ('image property hw_machine_type',
                       '[libvirt]hw_machine_type'):
            e = self.assertRaises(
                exception.SevMachineTypeNotSupported, self.plan,
                guest=facts(machine_type_request=Request('pc', source)))
            self.assertIn(source, str(e))
            self.assertIn("'pc'", str(e))

    def test_pci_and_mdev_refused(self):
        e = self.assertRaises(
            exception.SevDeviceNotSupported, self.plan,
            guest=facts(pci_passthrough_request=Request(
                'a1:1', 'flavor extra spec pci_passthrough:alias')))
        self.assertIn('pci_passthrough:alias', str(e))
        e = self.assertRaises(
            exception.SevDeviceNotSupported, self.plan,
            guest=facts(vgpu_request=Request(
                '1', 'flavor extra spec resources:VGPU')))
        self.assertIn('resources:VGPU', str(e))
        e = self.assertRaises(
            exception.SevDeviceNotSupported, self.plan,
            guest=facts(host_devices=('PCI host device 0000:3b:00.0',)))
        self.assertIn('0000:3b:00.0', str(e))

    def test_disk_bus(self):
        self.assertIsNone(self.plan(guest=facts(disk_bus_request=Request(
            'scsi', 'image property hw_disk_bus'))).disk_bus)
        e = self.assertRaises(
            exception.SevDiskBusNotSupported, self.plan,
            guest=facts(disk_bus_request=Request(
                'ide', 'image property hw_disk_bus')))
        self.assertIn('hw_disk_bus', str(e))
        self.assertIn('IDE', str(e))

    def test_virtio_blk_refused_unless_allowed(self):
        guest = facts(disk_bus_request=Request(
            'virtio', 'image property hw_disk_bus'))
        e = self.assertRaises(exception.SevDiskBusNotSupported, self.plan,
                              guest=guest)
        self.assertIn('[sev]allow_virtio_blk_boot_disk', str(e))
        plan = self.plan(guest=guest, options=gp.SevGuestOptions(
            allow_virtio_blk_boot_disk=True))
        self.assertIsNone(plan.disk_bus)

    def test_cdrom_bus(self):
        self.assertIsNone(self.plan(guest=facts(cdrom_bus_request=Request(
            'scsi', 'image property hw_cdrom_bus'))).cdrom_bus)
        e = self.assertRaises(
            exception.SevDiskBusNotSupported, self.plan,
            guest=facts(cdrom_bus_request=Request(
                'ide', 'image property hw_cdrom_bus')))
        self.assertIn('hw_cdrom_bus', str(e))

    def test_huge_pages_no_hard_limit(self):
        plan = self.plan(guest=facts(huge_pages=True))
        self.assertIsNone(plan.hard_limit_kib)
        self.assertTrue(locks_memory(plan))
        self.assertEqual(4112, plan.pinned_memory_mb)

    def test_memory_options_and_video(self):
        plan = self.plan(guest=facts(ram_mb=2048, video_mb=64),
                         options=gp.SevGuestOptions(
                             firmware_overhead_mb=32, qemu_overhead_mb=256))
        self.assertEqual(2048 + 64 + 32, plan.pinned_memory_mb)
        self.assertEqual((2048 + 64 + 32 + 256) * 1024, plan.hard_limit_kib)

    def test_firmware_without_sev_feature(self):
        plain = descriptor(features=('acpi-s3',))
        e = self.assertRaises(exception.SevFirmwareNotFound, self.plan,
                              host_caps=caps(firmware=None),
                              firmware=[plain],
                              options=gp.SevGuestOptions(
                                  firmware_descriptor_dirs=('/fw',)))
        self.assertIn('amd-sev', str(e))
        self.assertIn('/fw', str(e))
        self.assertIn('[sev]firmware_descriptor_dirs', str(e))

    def test_firmware_without_sev_es_feature(self):
        e = self.assertRaises(exception.SevFirmwareNotFound, self.plan,
                              SevMode.SEV_ES, firmware=[SEV_FW])
        self.assertIn('amd-sev-es', str(e))

    def test_firmware_prefers_no_smm(self):
        plan = self.plan(firmware=[SECURE_FW, SEV_FW])
        self.assertEqual(SEV_FW.executable, plan.loader_path)

    def test_firmware_for_versioned_machine(self):
        only_q35 = descriptor(machines=('pc-q35-7.*',))
        plan = self.plan(firmware=[only_q35], guest=facts(
            machine_type_request=Request('pc-q35-7.2', 'x')))
        self.assertEqual(only_q35.path, plan.firmware_descriptor_path)
        self.assertRaises(exception.SevFirmwareNotFound, self.plan,
                          firmware=[descriptor(machines=('pc-i440fx-*',))])


class TestPolicy(testtools.TestCase):

    def test_defaults(self):
        self.assertEqual(0x33, gp.guest_policy(SevMode.SEV, OPTS))
        self.assertEqual(0x37, gp.guest_policy(SevMode.SEV_ES, OPTS))

    def test_override_es_bit_follows_mode(self):
        opts = gp.SevGuestOptions(policy='0x0b')
        self.assertEqual(0x0b, gp.guest_policy(SevMode.SEV, opts))
        self.assertEqual(0x0f, gp.guest_policy(SevMode.SEV_ES, opts))
        self.assertEqual(0x33, gp.guest_policy(
            SevMode.SEV, gp.SevGuestOptions(policy='0x37')))
        self.assertEqual(0x3, gp.guest_policy(
            SevMode.SEV, gp.SevGuestOptions(policy='3')))

    def test_override_may_not_drop_nodbg_or_noks(self):
        for policy, missing in (('0x32', 'NODBG'), ('0x31', 'NOKS'),
                                ('0x30', 'NODBG (0x1) and NOKS')):
            e = self.assertRaises(exception.InvalidSevPolicy,
                                  gp.guest_policy, SevMode.SEV,
                                  gp.SevGuestOptions(policy=policy))
            self.assertIn(missing, str(e))
            self.assertIn('[sev]allow_insecure_policy', str(e))
            self.assertIn(policy, str(e))

    def test_insecure_allowed_explicitly(self):
        self.assertEqual(0x30, gp.guest_policy(
            SevMode.SEV, gp.SevGuestOptions(policy='0x30',
                                            allow_insecure_policy=True)))

    def test_bad_policy(self):
        for policy in ('secure', '0x', '-1', '0x100000000'):
            e = self.assertRaises(exception.InvalidSevPolicy,
                                  gp.guest_policy, SevMode.SEV,
                                  gp.SevGuestOptions(policy=policy))
            self.assertIn('[sev]policy', str(e))

    def test_bad_policy_refuses_plan(self):
        self.assertRaises(exception.InvalidSevPolicy, gp.make_guest_plan,
                          SevMode.SEV, caps(), facts(),
                          gp.SevGuestOptions(policy='0x30'))


class TestFactsAndOptions(testtools.TestCase):

    def test_guest_facts_from_request(self):
        result = gp.guest_facts(
            {'trait:HW_CPU_AMD_SEV': 'required', 'hw:mem_page_size': 'large',
             'pci_passthrough:alias': 'gpu:1', 'resources:VGPU': '1'},
            {'hw_machine_type': 'pc-q35-7.2', 'hw_disk_bus': 'scsi',
             'hw_cdrom_bus': 'sata', 'hw_video_ram': '64'},
            ram_mb=2048, video_mb=16, conf_machine_types=['x86_64=pc'],
            host_devices=('x',))
        self.assertEqual(2048, result.ram_mb)
        self.assertEqual(64, result.video_mb)
        self.assertEqual('pc-q35-7.2', result.machine_type_request.value)
        self.assertEqual('scsi', result.disk_bus_request.value)
        self.assertEqual('sata', result.cdrom_bus_request.value)
        self.assertTrue(result.huge_pages)
        self.assertEqual('gpu:1', result.pci_passthrough_request.value)
        self.assertEqual('1', result.vgpu_request.value)
        self.assertEqual(('x',), result.host_devices)
        self.assertEqual('flavor extra spec trait:HW_CPU_AMD_SEV=required',
                         result.requested_by)

    def test_guest_facts_conf_machine_type(self):
        result = gp.guest_facts({}, {}, 1024,
                                conf_machine_types=['x86_64=pc'])
        self.assertEqual(Request('pc', '[libvirt]hw_machine_type'),
                         result.machine_type_request)

    def test_options_from_conf(self):
        conf = self.useFixture(config_fixture.Config(cfg.ConfigOpts())).conf
        sev_conf.register_opts(conf)
        expected = gp.SevGuestOptions(firmware_descriptor_dirs=(
            '/etc/qemu/firmware', '/usr/share/qemu/firmware'))
        self.assertEqual(expected, gp.options_from_conf(conf))
        conf.set_override('policy', '0x3', 'sev')
        conf.set_override('qemu_overhead_mb', 100, 'sev')
        conf.set_override('allow_virtio_blk_boot_disk', True, 'sev')
        options = gp.options_from_conf(conf)
        self.assertEqual(('0x3', 100, True), (
            options.policy, options.qemu_overhead_mb,
            options.allow_virtio_blk_boot_disk))


SEV_SPECS = {'trait:HW_CPU_X86_AMD_SEV': 'required'}


class TestPlanGuestReadsEachRequestOnce(testtools.TestCase):
    """``plan_guest`` reads what a request asks once per distinct request,
    and decides its plan once per host facts; nothing of one request or
    host leaks into another.
    """

    def setUp(self):
        super().setUp()
        self.addCleanup(forget_requests)
        forget_requests()

    def plan(self, specs=SEV_SPECS, props=None, host_caps=None, **kwargs):
        kwargs.setdefault('ram_mb', 4096)
        return gp.plan_guest(specs, props or {}, host_caps or CAPS, OPTS,
                             **kwargs)

    def test_same_request_read_and_decided_once(self):
        with mock.patch.object(gp, 'guest_facts',
                               wraps=gp.guest_facts) as read, \
                mock.patch.object(gp, '_decide', wraps=gp._decide) as decide:
            first = self.plan()
            self.assertIs(first, self.plan())
            # A guest of another instance asks the same of an SEV host.
            self.assertIs(first, self.plan(instance_uuid=str(uuid.uuid4())))
        self.assertEqual(1, read.call_count)
        self.assertEqual(1, decide.call_count)

    def test_each_input_counts(self):
        first = self.plan()
        for other in (
                self.plan(ram_mb=8192),
                self.plan(props={'hw_video_ram': 64}),
                self.plan(specs=dict(SEV_SPECS, **{
                    'hw:mem_page_size': 'large'})),
                self.plan(conf_machine_types=['x86_64=pc-q35-7.2']),
                self.plan(host_caps=caps(cbitpos=51))):
            self.assertNotEqual(first, other)
        self.assertEqual(51, self.plan(host_caps=caps(cbitpos=51)).cbitpos)
        self.assertEqual(47, self.plan().cbitpos)

    def test_host_detected_again_decides_again(self):
        refusing = caps(sev=False)
        for _ in range(2):
            # A refusal is not kept: it is decided again each time.
            self.assertRaises(exception.SevHostNotCapable, self.plan,
                              host_caps=refusing)
        self.assertEqual(47, self.plan(host_caps=caps()).cbitpos)

    def test_request_refused_each_time(self):
        conflict = {'trait:HW_CPU_X86_AMD_SEV': 'required',
                    'hw:mem_encryption': 'false'}
        for _ in range(2):
            self.assertRaises(exception.SevRequestConflict, self.plan,
                              specs=conflict)

    def test_no_sev_no_plan(self):
        self.assertIsNone(self.plan(specs={}))
        self.assertIsNone(self.plan(specs={}))

    def test_list_and_unhashable_values(self):
        traits = ['HW_CPU_X86_AMD_SEV']
        by_image = self.plan(specs={}, props={'traits_required': traits})
        self.assertEqual(SevMode.SEV, by_image.mode)
        # The request is read from its values, not from the list object.
        traits.clear()
        self.assertIsNone(self.plan(specs={},
                                    props={'traits_required': traits}))
        # A value that cannot be a key is read without being kept.
        self.assertEqual(SevMode.SEV, self.plan(
            props={'hw_unknown_blob': {'a': 1}}).mode)

    def test_order_of_keys_kept_in_messages(self):
        specs = {'trait1:HW_CPU_X86_AMD_SEV': 'required',
                 'trait:HW_CPU_X86_AMD_SEV': 'forbidden'}
        e = self.assertRaises(exception.SevRequestConflict, self.plan,
                              specs=specs)
        self.assertLess(str(e).index('trait:HW_CPU_X86_AMD_SEV=forbidden'),
                        str(e).index('trait1:HW_CPU_X86_AMD_SEV=required'))


CAPS = caps()


def forget_requests():
    """Forget what plan_guest kept of earlier requests and plans."""
    gp._read_request.cache_clear()
    gp._read_guest.cache_clear()
    gp._plans.clear()


STATELESS_SEV_FW = fw.FirmwareDescriptor(
    path='/usr/share/qemu/firmware/60-edk2-ovmf-x64-amdsev.json',
    interface_types=('uefi',), device=fw.DEVICE_MEMORY,
    executable='/usr/share/edk2/ovmf/OVMF.amdsev.fd', nvram_template=None,
    targets=(fw.FirmwareTarget('x86_64', ('pc-q35-*',)),),
    features=('amd-sev', 'amd-sev-es'))


class TestStricterPolicy(testtools.TestCase):
    """The owner's image property and the admin's flavor extra spec may
    add policy bits, never drop one.
    """

    def test_bits_are_added(self):
        requests = (Request('0x3b', 'flavor extra spec nova-sev:policy'),)
        self.assertEqual(0x3b, gp.guest_policy(
            SevMode.SEV, gp.SevGuestOptions(), requests))
        # The mode decides ES, whatever a request says.
        self.assertEqual(0x3f, gp.guest_policy(
            SevMode.SEV_ES, gp.SevGuestOptions(), requests))
        self.assertEqual(0x3b, gp.guest_policy(
            SevMode.SEV, gp.SevGuestOptions(),
            (Request('0x37', 'image property nova_sev_policy'),) + requests))

    def test_dropping_a_bit_is_refused_naming_the_key(self):
        for value, source in (('0x31', 'image property nova_sev_policy'),
                              ('0x13', 'flavor extra spec nova-sev:policy')):
            e = self.assertRaises(
                exception.InvalidSevRequest, gp.guest_policy, SevMode.SEV,
                gp.SevGuestOptions(), (Request(value, source),))
            self.assertIn(source.rpartition(' ')[2], str(e))
            self.assertIn('may only add bits to the policy 0x0033', str(e))
            self.assertIn('set it to 0x0033 or remove it', str(e))

    def test_not_a_number(self):
        for value in ('strict', '0x1ffffffff'):
            self.assertRaises(
                exception.InvalidSevRequest, gp.guest_policy, SevMode.SEV,
                gp.SevGuestOptions(),
                (Request(value, 'image property nova_sev_policy'),))

    def test_read_from_flavor_and_image(self):
        plan = gp.plan_guest(
            {'trait:HW_CPU_X86_AMD_SEV': 'required',
             'nova-sev:policy': '0x3b'},
            {'nova_sev_policy': '0x73'}, caps(), gp.SevGuestOptions(),
            ram_mb=2048)
        self.assertEqual(0x7b, plan.policy)

    def test_snp_refuses_an_sev_policy(self):
        e = self.assertRaises(
            exception.InvalidSevRequest, gp.make_guest_plan,
            SevMode.SEV_SNP,
            caps(sev_snp_usable=True,
                 snp_firmware=(STATELESS_SEV_FW,)),
            facts(policy_requests=(Request(
                '0x33', 'image property nova_sev_policy'),)),
            gp.SevGuestOptions())
        self.assertIn('[sev]snp_policy', str(e))


class TestAttestedPlan(testtools.TestCase):

    def test_attested_guest_boots_stateless_firmware(self):
        firmware = (SEV_FW, SEV_ES_FW, STATELESS_SEV_FW)
        for mode in (SevMode.SEV, SevMode.SEV_ES):
            plan = gp.make_guest_plan(mode, caps(firmware=firmware),
                                      facts(attested=True),
                                      gp.SevGuestOptions())
            self.assertTrue(plan.attested)
            self.assertEqual(gp.LOADER_ROM, plan.loader_type)
            self.assertEqual(STATELESS_SEV_FW.executable, plan.loader_path)
            self.assertIsNone(plan.nvram_template_path)
            root = designer.parse_domain(
                '<domain><memory>1</memory><os><type>hvm</type></os>'
                '</domain>')
            designer.write_guest_plan(root, plan)
            self.assertEqual('rom', root.find('os/loader').get('type'))
            self.assertIsNone(root.find('os/nvram'))
            # Not attested: the flash build with its NVRAM, as before.
            plan = gp.make_guest_plan(mode, caps(firmware=firmware), facts(),
                                      gp.SevGuestOptions())
            self.assertFalse(plan.attested)
            self.assertIsNotNone(plan.nvram_template_path)

    def test_without_stateless_build_refused_with_the_reason(self):
        e = self.assertRaises(
            exception.SevFirmwareNotFound, gp.make_guest_plan, SevMode.SEV,
            caps(), facts(attested=True), gp.SevGuestOptions())
        self.assertIn('on stateless firmware (an attested guest: its NVRAM '
                      'would not be measured)', str(e))
        self.assertIn('install an OVMF build', str(e))
