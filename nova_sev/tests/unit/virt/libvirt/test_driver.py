"""The Nova glue of the SEV driver, on plain Nova objects (no services)."""

import copy
import inspect
import threading
from unittest import mock

from nova.compute import provider_tree
from nova import exception as nova_exception
from nova import objects
from nova.virt.libvirt import config as nova_vconfig
from nova.virt.libvirt import driver as nova_driver
import os_traits
from oslo_utils import importutils
import testtools

from nova_sev.virt.hardware import SevMode
from nova_sev.virt.libvirt import attestation
from nova_sev.virt.libvirt import driver
from nova_sev.virt.libvirt import guest_plan
from nova_sev.virt.libvirt import host as sev_host
from nova_sev.virt import nova_compat

SEV_FLAVOR = {'trait:HW_CPU_X86_AMD_SEV': 'required'}
SEV_CAPS = sev_host.SevHostCapabilities(
    sev_usable=True, sev_es_usable=False, cbitpos=47, reduced_phys_bits=1,
    max_guests=15)
NO_SEV_CAPS = sev_host.SevHostCapabilities(
    sev_usable=False, sev_es_usable=False, sev_reasons=('no SEV',))


# A domain as Nova builds it, reduced to what the driver reads: its memory
# and a video device of 16 MiB.
NOVA_DOMAIN = """<domain type='kvm'>
  <memory unit='KiB'>2097152</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <video><model type='qxl' vram='16384'/></video>
  </devices>
</domain>
"""


def make_instance(extra_specs=None, image_props=None):
    objects.register_all()
    instance = objects.Instance(
        uuid='8b6a3a4c-4bd9-4f8e-9d2b-0a7e1f0c5d11', host='cmp1',
        image_ref='c0ffee00-0000-4000-8000-000000000001',
        node='cmp1', system_metadata={
            'image_' + k: v for k, v in (image_props or {}).items()},
        flavor=objects.Flavor(memory_mb=2048, extra_specs=dict(
            extra_specs or {})))
    return instance


def make_plan(**kw):
    values = dict(mode=SevMode.SEV, policy=0x33, cbitpos=47,
                  reduced_phys_bits=1, machine_type='q35',
                  loader_path='/OVMF_CODE.fd', nvram_template_path=None,
                  firmware_descriptor_path='/60.json', pinned_memory_mb=2064,
                  hard_limit_kib=2621440, disk_bus='scsi', cdrom_bus='sata')
    values.update(kw)
    return guest_plan.GuestPlan(**values)


def bare_driver(caps=SEV_CAPS):
    """A driver object without Nova's __init__ (no libvirt connection)."""
    drv = driver.SevLibvirtDriver.__new__(driver.SevLibvirtDriver)
    drv._sev_host = mock.Mock(spec=sev_host.SevHost)
    drv._sev_host.get_capabilities.return_value = caps
    drv._sev_options = guest_plan.SevGuestOptions()
    drv._sev_plans = {}
    drv._sev_pending = {}
    drv._sev_attestation = attestation.AttestationFlow(
        mock.Mock(), lambda: 0, mock.Mock())
    return drv


class RegisterTestCase(testtools.TestCase):

    def test_nova_imports_the_driver_from_nova_virt(self):
        value = driver.register()
        self.assertEqual('sev_libvirt.SevLibvirtDriver', value)
        # What nova.virt.driver.load_compute_driver does.
        cls = importutils.import_class('nova.virt.' + value)
        self.assertIs(driver.SevLibvirtDriver, cls)
        self.assertTrue(issubclass(cls, nova_driver.LibvirtDriver))


class HelpersTestCase(testtools.TestCase):

    def test_image_defaults_fill_only_what_is_open(self):
        self.assertEqual(
            {'hw_machine_type': 'q35', 'hw_firmware_type': 'uefi',
             'hw_disk_bus': 'scsi', 'hw_scsi_model': 'virtio-scsi',
             'hw_cdrom_bus': 'sata'},
            driver.image_defaults(make_plan(), {}))
        self.assertEqual(
            {'hw_firmware_type': 'uefi'},
            driver.image_defaults(
                make_plan(machine_type='pc-q35-7.2', disk_bus=None,
                          cdrom_bus=None),
                {'hw_machine_type': 'pc-q35-7.2', 'hw_disk_bus': 'sata'}))

    def test_image_properties_use_glance_names(self):
        objects.register_all()
        image_meta = objects.ImageMeta.from_dict({'properties': {
            'hw_mem_encryption': 'true', 'hw_disk_bus': 'scsi',
            'trait:HW_CPU_X86_AMD_SEV': 'required'}})
        props = driver.image_properties(image_meta)
        self.assertIs(True, props['hw_mem_encryption'])
        self.assertEqual('scsi', props['hw_disk_bus'])
        self.assertEqual(['HW_CPU_X86_AMD_SEV'], props['traits_required'])
        self.assertEqual(SevMode.SEV, driver.sev_mode(
            objects.Flavor(extra_specs={}), image_meta))

    def test_is_set_is_oslo_obj_attr_is_set(self):
        # is_set reads oslo.versionedobjects' storage of a field: an oslo
        # release that stores fields another way fails here.
        objects.register_all()
        # 2025.1 has no model (nova_compat.image_properties_nova_drops).
        missing = ({'hw_mem_encryption_model'} if nova_compat.NOVA_MAJOR < 32
                   else set())
        names = [name for name in driver.hardware.IMAGE_PROPERTIES
                 if name in objects.ImageMetaProps.fields]
        self.assertEqual(missing,
                         set(driver.hardware.IMAGE_PROPERTIES) - set(names))
        image_meta = objects.ImageMeta.from_dict({'properties': {
            'hw_disk_bus': 'scsi', 'hw_video_ram': 64,
            'trait:HW_CPU_X86_AMD_SEV': 'required'}})
        props = image_meta.properties
        props.hw_machine_type = 'q35'
        answers = [(name, driver.is_set(props, name)) for name in names]
        self.assertEqual([(name, props.obj_attr_is_set(name))
                          for name in names], answers)
        self.assertEqual(['traits_required', 'hw_machine_type',
                          'hw_disk_bus', 'hw_video_ram'],
                         [name for name, known in answers if known])
        for instance in (objects.Instance(), objects.Instance(kernel_id='k')):
            self.assertEqual(instance.obj_attr_is_set('kernel_id'),
                             driver.is_set(instance, 'kernel_id'))

    def test_conflict_is_invalid_input(self):
        objects.register_all()
        image_meta = objects.ImageMeta.from_dict(
            {'properties': {'hw_mem_encryption': 'false'}})
        e = self.assertRaises(
            nova_exception.InvalidInput, driver.sev_mode,
            objects.Flavor(extra_specs=SEV_FLAVOR), image_meta)
        self.assertIn('hw_mem_encryption', str(e))

    def test_passthrough_vifs(self):
        vifs = [{'id': 'p1', 'vnic_type': 'normal'},
                {'id': 'p2', 'vnic_type': 'direct'},
                {'id': 'p3', 'vnic_type': 'vdpa'}]
        self.assertEqual(('port p2 (vnic_type direct)',
                          'port p3 (vnic_type vdpa)'),
                         driver.passthrough_vifs(vifs))
        self.assertEqual((), driver.passthrough_vifs(None))

    def test_with_iommu_formats_nova_config_objects(self):
        nic = nova_vconfig.LibvirtConfigGuestInterface()
        nic.net_type = 'bridge'
        nic.source_dev = 'br0'
        nic.mac_addr = 'fa:16:3e:00:00:01'
        nic.model = 'virtio'
        self.assertNotIn('iommu', nic.to_xml())
        driver.with_iommu(nic)
        self.assertIn('<driver iommu="on"/>', nic.to_xml())

    def test_without_replaced_parts_changes_no_domain(self):
        # Nova's guest with firmware auto-selection, secure-boot flags and
        # vmcoreinfo: taking out what the plan replaces before Nova formats
        # it gives the same SEV domain, and Nova formats none of them.
        def nova_guest():
            guest = nova_vconfig.LibvirtConfigGuest()
            guest.virt_type = 'kvm'
            guest.uuid = '8b6a3a4c-4bd9-4f8e-9d2b-0a7e1f0c5d11'
            guest.name = 'instance-00000001'
            guest.os_type = 'hvm'
            guest.os_mach_type = 'q35'
            guest.os_firmware = 'efi'
            guest.os_firmware_secure = False
            guest.os_loader_secure = False
            guest.add_feature(nova_vconfig.LibvirtConfigGuestFeatureACPI())
            guest.add_feature(
                nova_vconfig.LibvirtConfigGuestFeatureVMCoreInfo())
            guest.add_feature(nova_vconfig.LibvirtConfigGuestFeatureAPIC())
            return guest

        plan = make_plan()
        written = driver.SevGuestConfig(nova_guest(), plan).to_xml()
        guest = nova_guest()
        driver.without_replaced_parts(guest)
        formatted = guest.to_xml()
        for replaced in ('firmware', 'secure', 'vmcoreinfo', '<loader'):
            self.assertNotIn(replaced, formatted)
        self.assertIn('<apic/>', formatted)
        self.assertEqual(written, driver.SevGuestConfig(guest, plan).to_xml())
        self.assertIn('<loader readonly="yes" type="pflash">/OVMF_CODE.fd',
                      written)

    def test_as_nova_exception(self):
        from nova_sev import exception
        e = exception.SevHostLimitReached(instance='u', host='h',
                                          reason='full')
        self.assertIsInstance(driver.as_nova_exception(e, reschedule=True),
                              nova_exception.ComputeResourcesUnavailable)
        self.assertIsInstance(driver.as_nova_exception(e),
                              nova_exception.InvalidInput)


class DriverGlueTestCase(testtools.TestCase):

    def _tree(self, traits):
        tree = provider_tree.ProviderTree()
        tree.new_root('cmp1', 'root-uuid')
        tree.update_traits('cmp1', traits)
        tree.new_child('cmp1_amd_sev', 'cmp1', uuid='child-uuid')
        tree.update_traits('cmp1_amd_sev', [os_traits.HW_CPU_X86_AMD_SEV])
        return tree

    @mock.patch.object(nova_driver.LibvirtDriver, 'update_provider_tree')
    def test_update_provider_tree_root_traits(self, mock_super):
        tree = self._tree(['COMPUTE_NODE'])
        bare_driver().update_provider_tree(tree, 'cmp1')
        mock_super.assert_called_once_with(tree, 'cmp1', allocations=None)
        self.assertEqual(
            {'COMPUTE_NODE', os_traits.HW_CPU_X86_AMD_SEV,
             os_traits.HW_CPU_AMD_SEV}, tree.data('cmp1').traits)
        # SEV gone: ours are removed, Nova's child is left alone.
        bare_driver(NO_SEV_CAPS).update_provider_tree(tree, 'cmp1')
        self.assertEqual({'COMPUTE_NODE'}, tree.data('cmp1').traits)
        self.assertEqual({os_traits.HW_CPU_X86_AMD_SEV},
                         tree.data('cmp1_amd_sev').traits)

    @mock.patch.object(nova_driver.LibvirtDriver, '_handle_conn_event')
    def test_reconnect_resets_detection(self, mock_super):
        drv = bare_driver()
        drv._handle_conn_event(True, None)
        drv._sev_host.reset.assert_called_once_with()
        mock_super.assert_called_once_with(True, None)

    @mock.patch.object(nova_driver.LibvirtDriver, 'suspend')
    def test_suspend(self, mock_super):
        drv = bare_driver()
        e = self.assertRaises(nova_exception.InstanceFaultRollback,
                              drv.suspend, None,
                              make_instance(SEV_FLAVOR))
        self.assertIsInstance(e.inner_exception,
                              nova_exception.InstanceSuspendFailure)
        self.assertIn('Suspend refused for SEV instance',
                      str(e.inner_exception))
        mock_super.assert_not_called()
        plain = make_instance()
        drv.suspend(None, plain)
        mock_super.assert_called_once_with(None, plain)

    @mock.patch.object(nova_driver.LibvirtDriver,
                       'check_can_live_migrate_source')
    @mock.patch.object(nova_driver.LibvirtDriver,
                       'check_can_live_migrate_destination')
    def test_live_migration(self, mock_dest, mock_src):
        drv = bare_driver()
        instance = make_instance(SEV_FLAVOR)
        for call in (
                lambda: drv.check_can_live_migrate_destination(
                    None, instance, {}, {}),
                lambda: drv.check_can_live_migrate_source(
                    None, instance, {})):
            e = self.assertRaises(nova_exception.NoValidHost, call)
            self.assertIn('Live migration refused', str(e))
        mock_dest.assert_not_called()
        mock_src.assert_not_called()
        drv.check_can_live_migrate_source(None, make_instance(), {})
        mock_src.assert_called_once()

    @mock.patch.object(nova_driver.LibvirtDriver, 'attach_interface')
    def test_attach_passthrough_port(self, mock_super):
        objects.register_all()
        drv = bare_driver()
        image_meta = objects.ImageMeta.from_dict({'properties': {}})
        direct = {'id': 'p1', 'vnic_type': 'direct'}
        e = self.assertRaises(
            nova_exception.InterfaceAttachFailed, drv.attach_interface,
            None, make_instance(SEV_FLAVOR), image_meta, direct)
        self.assertIn('port p1 (vnic_type direct)', str(e))
        mock_super.assert_not_called()
        normal = {'id': 'p2', 'vnic_type': 'normal'}
        drv.attach_interface(None, make_instance(SEV_FLAVOR), image_meta,
                             normal)
        drv.attach_interface(None, make_instance(), image_meta, direct)
        self.assertEqual(2, mock_super.call_count)

    def test_begin_fills_image_and_records_it(self):
        objects.register_all()
        drv = bare_driver()
        instance = make_instance(SEV_FLAVOR)
        image_meta = objects.ImageMeta.from_dict({'properties': {}})
        drv._sev_make_plan = mock.Mock(return_value=make_plan())
        self.assertEqual(SevMode.SEV, drv._sev_begin(
            instance, image_meta, None).mode)
        self.assertEqual('q35', image_meta.properties.hw_machine_type)
        self.assertEqual('scsi', image_meta.properties.hw_disk_bus)
        self.assertEqual('virtio-scsi', instance.image_meta.properties.get(
            'hw_scsi_model'))
        self.assertEqual('uefi',
                         instance.system_metadata['image_hw_firmware_type'])
        # A guest without SEV is left as Nova would build it.
        plain = make_instance()
        before = copy.deepcopy(plain.system_metadata)
        drv = bare_driver()
        self.assertIsNone(drv._sev_begin(
            plain, objects.ImageMeta.from_dict({'properties': {}}), None))
        self.assertEqual(before, plain.system_metadata)

    def test_begin_keeps_the_plan_of_the_boot(self):
        # default_root_device_name made it for this image_meta: spawn uses
        # it; another image_meta (another operation) gets its own.
        objects.register_all()
        drv = bare_driver()
        instance = make_instance(SEV_FLAVOR)
        image_meta = objects.ImageMeta.from_dict({'properties': {}})
        drv._sev_make_plan = mock.Mock(return_value=make_plan())
        plan = drv._sev_begin(instance, image_meta, pending=True)
        self.assertEqual({}, drv._sev_plans)
        self.assertIs(plan, drv._sev_begin(instance, image_meta))
        drv._sev_make_plan.assert_called_once_with(
            instance, image_meta, None, False)
        drv._sev_end(instance)
        self.assertEqual({}, drv._sev_plans)
        # A boot that never reached spawn: the next operation plans anew.
        drv._sev_begin(instance, image_meta, pending=True)
        drv._sev_begin(instance, objects.ImageMeta.from_dict(
            {'properties': {}}))
        self.assertEqual(3, drv._sev_make_plan.call_count)
        self.assertEqual({}, drv._sev_pending)

    def test_admission_forgets_the_plans_of_boots_that_left(self):
        # A boot planned by default_root_device_name that failed before
        # spawn (rescheduled, deleted) leaves no plan behind in a
        # long-running nova-compute.
        objects.register_all()
        drv = bare_driver()
        drv._sev_admitted = {}
        drv._sev_admission_lock = threading.Lock()
        drv._host = mock.Mock()
        drv._host.get_memory_mb_total.return_value = 65536
        instance = make_instance(SEV_FLAVOR)
        drv._sev_pending = {'gone-uuid': (None, make_plan()),
                            instance.uuid: (None, make_plan())}
        listed = mock.Mock(uuid=instance.uuid, vm_state='building')
        with mock.patch.object(objects.InstanceList, 'get_by_host_and_node',
                               return_value=[listed]), \
                mock.patch.object(driver.SevLibvirtDriver, '_sev_slot',
                                  return_value=None):
            drv._sev_admit(None, instance, make_plan())
        self.assertEqual([instance.uuid], list(drv._sev_pending))

    def test_plan_refusals_abort_with_their_reason(self):
        # Even a host reason aborts: a reschedule that runs out of hosts
        # would leave only Nova's "Exceeded maximum number of retries".
        objects.register_all()
        image_meta = objects.ImageMeta.from_dict({'properties': {}})
        e = self.assertRaises(
            nova_exception.InvalidInput,
            bare_driver(NO_SEV_CAPS)._sev_make_plan,
            make_instance(SEV_FLAVOR), image_meta)
        self.assertIn('this host cannot run SEV guests', str(e))
        ide = objects.ImageMeta.from_dict(
            {'properties': {'hw_disk_bus': 'ide'}})
        self.assertRaises(
            nova_exception.InvalidInput, bare_driver()._sev_make_plan,
            make_instance(SEV_FLAVOR), ide)

    @mock.patch.object(nova_driver.LibvirtDriver, '_get_guest_config')
    def test_guest_config_sev_also_when_rescued(self, mock_super):
        objects.register_all()
        nova_guest = nova_vconfig.LibvirtConfigGuest()
        mock_super.return_value = nova_guest
        drv = bare_driver()
        drv._sev_make_plan = mock.Mock(
            side_effect=lambda instance, *a, **k: make_plan() if
            instance.image_meta.properties.get('hw_mem_encryption') or
            instance.system_metadata else None)
        rescue_image = objects.ImageMeta.from_dict({'properties': {}})
        sev_image = {'trait:HW_CPU_X86_AMD_SEV': 'required'}
        plain = make_instance()
        self.assertIs(nova_guest, drv._get_guest_config(
            plain, [], rescue_image, {}, rescue={'x': 1}))
        # The image asked for SEV; the rescue image does not: still SEV.
        sev = make_instance(image_props=sev_image)
        conf = drv._get_guest_config(sev, [], rescue_image, {},
                                     rescue={'x': 1})
        self.assertIsInstance(conf, driver.SevGuestConfig)
        self.assertEqual(make_plan(), conf.sev_plan)
        drv._sev_make_plan.assert_called_with(sev, rescue_image, [],
                                              rescue=True)

    def test_guest_config_uses_the_operation_plan(self):
        objects.register_all()
        drv = bare_driver()
        instance = make_instance(SEV_FLAVOR)
        image_meta = objects.ImageMeta.from_dict({'properties': {}})
        drv._sev_plans[instance.uuid] = (image_meta, make_plan())
        drv._sev_make_plan = mock.Mock()
        nova_guest = nova_vconfig.LibvirtConfigGuest()
        nova_guest.virt_type = 'kvm'
        nova_guest.memory = 2097152
        nova_guest.os_type = 'hvm'
        with mock.patch.object(nova_driver.LibvirtDriver,
                               '_get_guest_config', return_value=nova_guest):
            conf = drv._get_guest_config(instance, [], image_meta, {})
        drv._sev_make_plan.assert_not_called()
        self.assertIn("<launchSecurity type='sev'>".replace("'", '"'),
                      conf.to_xml())
        # Nova's object is still the one set and read through the wrapper.
        conf.name = 'x'
        self.assertEqual('x', nova_guest.name)


class NovaPrivateMethodsTestCase(testtools.TestCase):
    """The private Nova methods the driver overrides or calls, with the
    parameters it passes: a Nova that renames or reshapes one fails here,
    not silently in a deployment (the override would never be called).
    """

    PRIVATE = {
        '_handle_conn_event': ('enabled', 'reason'),
        '_hard_reboot': ('context', 'instance', 'network_info',
                         'share_info', 'block_device_info', 'accel_info'),
        # old_guest since 2026.1 (nova_compat.new_kwargs).
        '_get_guest_config': ('instance', 'network_info', 'image_meta',
                              'disk_info', 'rescue', 'block_device_info',
                              'context', 'mdevs', 'accel_info',
                              'share_info') + (
            ('old_guest',) if nova_compat.NOVA_MAJOR >= 33 else ()),
        '_check_discard_for_attach_volume': ('conf', 'instance'),
        '_create_guest': ('context', 'xml', 'instance', 'power_on', 'pause',
                          'post_xml_callback'),
    }

    def test_private_methods_exist_with_their_parameters(self):
        for name, params in self.PRIVATE.items():
            method = getattr(nova_driver.LibvirtDriver, name, None)
            self.assertIsNotNone(method, 'Nova has no LibvirtDriver.%s' %
                                 name)
            self.assertEqual(
                ('self',) + params,
                tuple(inspect.signature(method).parameters), name)
            # ... and the SEV driver overrides exactly these.
            self.assertIsNot(method, getattr(driver.SevLibvirtDriver, name))

    def test_attributes_used(self):
        # The driver reads Nova's own host object and its connection.
        from nova.virt.libvirt import host as nova_host
        for name in ('get_connection', 'get_memory_mb_total'):
            self.assertTrue(callable(getattr(nova_host.Host, name)), name)
        self.assertIn('self._host = ', inspect.getsource(
            nova_driver.LibvirtDriver.__init__))
        # Nova's guest config formats and serialises as the wrapper does.
        self.assertTrue(callable(nova_vconfig.LibvirtConfigGuest.format_dom))

    def test_overrides_listed_in_the_module_docstring(self):
        own = {name for name, value in vars(driver.SevLibvirtDriver).items()
               if callable(value) and not name.startswith('_sev')
               and name != '__init__'
               and hasattr(nova_driver.LibvirtDriver, name)}
        for name in own:
            self.assertIn('``%s``' % name, driver.__doc__, name)
        for name in self.PRIVATE:
            self.assertIn(name, own)
