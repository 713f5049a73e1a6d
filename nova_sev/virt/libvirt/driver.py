"""The SEV libvirt driver for nova-compute (spec: "Work Items" 1-6).

``SevLibvirtDriver`` is Nova's ``LibvirtDriver`` plus thin overrides that
hand over to the pure code of nova-sev: detection (``host.SevHost``), the
traits (``traits.sev_trait_changes``), the plan (``guest_plan.plan_guest``,
the composition ``nova-sev guest-xml`` uses too), the domain
(``designer``), the host limits (``admission``) and the lifecycle guards
(``lifecycle``). Each override calls ``super()``; no copy of Nova's logic
lives here.

The data path of an operation that builds a guest (spawn, hard reboot,
finish_migration, rescue): the operation's first hook makes the guest's
``GuestPlan`` once, from the sources Nova itself uses (the flavor, the
image properties, ``[libvirt]hw_machine_type`` and ``virt_type``, the
ports). That plan is checked against the host's limits (a new guest), its
machine type, firmware type and buses are handed to Nova as image
properties (so that Nova itself builds a q35, UEFI, virtio-scsi guest and
names its disks for it), and it is written into the domain where Nova
builds it (``_get_guest_config``). Nothing after the plan asks the flavor,
the image or libvirt again.

Where the plan is written, and why: on the element tree that Nova's
``LibvirtConfigGuest`` formats, by ``designer.write_guest_plan``, before
Nova serialises it (``SevGuestConfig``). On Nova's config objects, the
driver only takes out what the plan replaces, so that Nova does not format
it (``without_replaced_parts``: firmware auto-selection, vmcoreinfo); the
domain is the same with or without that step (a test compares them).
Nova's config objects are not used for the SEV parts because (1)
``guest-xml`` has only XML, and one writer for both keeps the driver and
the CLI from drifting apart (a test compares them); (2) Nova 34's
``LibvirtConfigGuestSEVLaunchSecurity`` has no cbitpos/reducedPhysBits and
its device objects no ``iommu``, so those would go on XML anyway; (3) the
tree is written before serialisation, so nothing is parsed again
(``tools/bench_guest.py``).

The Nova methods overridden, public or private in Nova, and why:

=====================================  =======  ===========================
``init_host``                          public   the attestation timeouts
                                                of paused guests, again
``update_provider_tree``               public   SEV traits on the root
``_handle_conn_event``                 private  libvirt reconnected: detect
                                                again
``default_root_device_name``           public   a boot's first hook: plan,
                                                so Nova names disks for
                                                the plan's buses
``spawn``                              public   admission, the plan for
                                                boot, rebuild, unshelve
``_hard_reboot``                       private  the plan for a hard reboot
                                                (Nova has no public hook
                                                between reboot and XML);
                                                the owner's launch
``finish_migration``                   public   the plan for cold
                                                migration and resize
``finish_revert_migration``            public   an attested guest reverted
                                                is not started
``reboot``                             public   a soft reboot is the
                                                owner's release
``unpause``                            public   so is an unpause
``get_info``                           public   a guest held for its owner
                                                ends Nova's wait for
                                                RUNNING
``_create_guest``                      private  the one point where Nova
                                                starts a guest: an attested
                                                one never starts but for
                                                its owner's launch, paused
``rescue``                             public   the plan for rescue
``_get_guest_config``                  private  where Nova builds the guest:
                                                the plan is written there
``attach_volume``                      public   refuse an IDE volume
``_check_discard_for_attach_volume``   private  the one point of
                                                attach_volume with the
                                                volume's config object and
                                                the instance: ``iommu``
``attach_interface``                   public   refuse passthrough ports
``check_can_live_migrate_destination`` public   refuse live migration
``check_can_live_migrate_source``      public   refuse live migration
``suspend``                            public   refuse suspend
``LibvirtGenericVIFDriver.get_config`` public   ``iommu`` on a hot-plugged
                                                interface
=====================================  =======  ===========================

``test_driver.NovaPrivateMethodsTestCase`` pins each private one, so that
a Nova that renames one fails loudly.

The owner's attestation (``nova_sev.virt.libvirt.attestation``, whose
docstring tells the flow) is read once per operation, beside the plan
(``_sev_begin``), and each override hands over to it.

Nova imports ``[DEFAULT]compute_driver`` as ``nova.virt.<value>``. The
wheel ships ``nova/virt/sev_libvirt.py``, which imports this driver, so the
stock nova-compute loads ``compute_driver = sev_libvirt.SevLibvirtDriver``;
where that module is not beside Nova's files, ``register()`` makes this
module ``nova.virt.sev_libvirt``, and the ``nova-sev-compute`` command calls
it before it runs Nova's own compute service.
"""

import contextlib
import sys
import threading
from typing import Any

from lxml import etree
from nova.compute import power_state
from nova.compute import vm_states
from nova import exception as nova_exception
from nova.network import model as network_model
from nova import objects
from nova.virt import hardware as nova_hardware
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import vif as libvirt_vif
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_versionedobjects import base as ovo_base

from nova_sev import conf as sev_conf
from nova_sev import exception
from nova_sev.virt import admission
from nova_sev.virt import hardware
from nova_sev.virt.hardware import SevMode
from nova_sev.virt.libvirt import attestation
from nova_sev.virt.libvirt import designer
from nova_sev.virt.libvirt import guest_plan
from nova_sev.virt.libvirt import host as sev_host
from nova_sev.virt.libvirt import traits
from nova_sev.virt import lifecycle
from nova_sev.virt import memory
from nova_sev.virt import nova_compat

CONF = sev_conf.CONF
LOG = logging.getLogger(__name__)

# Instance action events that say why nova-sev refused something, where the
# user reads them (``openstack server event show``): Nova's own events and
# faults say only "Exceeded maximum number of retries" or "Failed to attach
# network adapter device".
EVENT_HOST_LIMIT = 'nova_sev_host_limit'
EVENT_ATTACH_INTERFACE = 'nova_sev_attach_interface'

# An instance in these states that the database has on this host is still
# arriving (built or unshelved here): it holds no ASID slot until admitted.
_ARRIVING_VM_STATES = (vm_states.BUILDING, vm_states.SHELVED_OFFLOADED)

# The module name under ``nova.virt`` and the ``compute_driver`` value.
NOVA_VIRT_NAME = 'sev_libvirt'
COMPUTE_DRIVER = NOVA_VIRT_NAME + '.SevLibvirtDriver'


def register() -> str:
    """Make this module importable as ``nova.virt.sev_libvirt``, the name
    Nova's ``load_compute_driver`` imports; return the ``compute_driver``
    value that selects the driver.
    """
    import nova.virt

    module = sys.modules[__name__]
    sys.modules['nova.virt.' + NOVA_VIRT_NAME] = module
    setattr(nova.virt, NOVA_VIRT_NAME, module)
    return COMPUTE_DRIVER


def is_set(obj: Any, field: str) -> bool:
    """``obj.obj_attr_is_set(field)`` for a ``field`` that ``obj`` has:
    oslo.versionedobjects' own test, without the list of all of the
    object's fields that ``obj_attr_is_set`` builds on every call (about
    200 for image properties, which costs more than the whole plan).
    """
    return hasattr(obj, ovo_base._get_attrname(field))


def image_properties(image_meta: 'objects.ImageMeta') -> dict[str, Any]:
    """The image's properties under their Glance names, as the pure code
    reads them: those of ``hardware.IMAGE_PROPERTIES`` that are set (the
    only ones it reads; asking all of Nova's fields costs more than the
    whole plan).
    """
    props = image_meta.properties
    return {name: getattr(props, name) for name in hardware.IMAGE_PROPERTIES
            if is_set(props, name)}


def own_image_properties(instance: 'objects.Instance') -> dict[str, str]:
    """nova-sev's own image properties of ``instance``'s image
    (``hardware.IMAGE_OWN_PROPERTIES``), which Nova's ImageMetaProps
    drops and keeps in system_metadata only.
    """
    sysmeta = instance.system_metadata
    return {name: sysmeta['image_' + name]
            for name in hardware.IMAGE_OWN_PROPERTIES
            if sysmeta.get('image_' + name) is not None}


def image_defaults(plan: guest_plan.GuestPlan,
                   image_props: dict[str, Any]) -> dict[str, str]:
    """The image properties an SEV guest gets where its image left them
    open (``guest_plan.image_choices``).
    """
    return guest_plan.image_choices(plan, image_props)


def passthrough_vifs(network_info: Any) -> tuple[str, ...]:
    """The ports of ``network_info`` that would pass a device through."""
    return tuple(
        'port %s (vnic_type %s)' % (vif.get('id'), vif.get('vnic_type'))
        for vif in network_info or ()
        if vif.get('vnic_type') in network_model.VNIC_TYPES_DIRECT_PASSTHROUGH)


def with_iommu(conf: Any) -> Any:
    """Make a Nova device config object format with ``iommu='on'`` when it
    is virtio (``designer.set_device_iommu``): Nova's device objects have
    no such attribute. Only writes, never refuses: the refusals of
    hot-plugged devices come before Nova builds them.
    """
    format_dom = conf.format_dom

    def _format_dom():
        return designer.set_device_iommu(format_dom())

    conf.format_dom = _format_dom
    return conf


def record_refusal(context, instance, event: str, error: Exception) -> None:
    """Record ``error`` as a failed event ``event`` of the instance's
    current action, for the user; where there is no action, only the log
    has it.
    """
    if context is None:
        return
    try:
        objects.InstanceActionEvent.event_start(
            context, instance.uuid, event, want_result=False, host=CONF.host)
        objects.InstanceActionEvent.event_finish_with_failure(
            context, instance.uuid, event, exc_val=error,
            exc_tb=str(error), want_result=False)
    except nova_exception.InstanceActionNotFound:
        LOG.debug('No instance action to record %s on', event,
                  instance=instance)


class SevGuestConfig:
    """Nova's ``LibvirtConfigGuest`` of an SEV guest, formatted with its
    plan written in (``designer.write_guest_plan``); every other attribute
    is Nova's object's.
    """

    def __init__(self, guest: Any, plan: guest_plan.GuestPlan,
                 launch_session: tuple[str, str] | None = None) -> None:
        self.__dict__['_guest'] = guest
        self.__dict__['sev_plan'] = plan
        self.__dict__['sev_launch_session'] = launch_session

    def __getattr__(self, name):
        return getattr(self._guest, name)

    def __setattr__(self, name, value):
        setattr(self._guest, name, value)

    def format_dom(self) -> etree._Element:
        root = designer.write_guest_plan(self._guest.format_dom(),
                                         self.sev_plan)
        if self.sev_launch_session is not None:
            designer.write_launch_session(root, *self.sev_launch_session)
        return root

    def to_xml(self, pretty_print: bool = True) -> str:
        return etree.tostring(self.format_dom(), encoding='unicode',
                              pretty_print=pretty_print)


def without_replaced_parts(guest: Any) -> None:
    """Take out of Nova's guest config, before Nova formats it, what the
    plan replaces: Nova's firmware auto-selection and secure-boot flags
    (the plan names its loader) and the vmcoreinfo feature (no DMA into
    encrypted memory). The designer would remove them from the formatted
    domain all the same, which is therefore unchanged: Nova formats less.
    """
    guest.os_firmware = None
    guest.os_firmware_secure = None
    guest.os_loader_secure = None
    vmcoreinfo = vconfig.LibvirtConfigGuestFeatureVMCoreInfo
    guest.features = [feature for feature in guest.features
                      if not isinstance(feature, vmcoreinfo)]


def as_nova_exception(e: exception.NovaSevException,
                      reschedule: bool = False) -> Exception:
    """The Nova exception that gives a build refusal its outcome:
    ComputeResourcesUnavailable lets the scheduler try another host,
    InvalidInput aborts the build (the request itself cannot be met).
    """
    if reschedule:
        return nova_exception.ComputeResourcesUnavailable(reason=e.message)
    return nova_exception.InvalidInput(reason=e.message)


def sev_mode(flavor: 'objects.Flavor',
             image_meta: 'objects.ImageMeta') -> SevMode:
    """What the flavor and image ask for; a conflict between them is an
    InvalidInput naming both keys (the request cannot be met anywhere).
    """
    try:
        return hardware.get_sev_mode(flavor.extra_specs,
                                     image_properties(image_meta))
    except exception.SevGuestRefused as e:
        raise as_nova_exception(e)


class SevVIFDriver(libvirt_vif.LibvirtGenericVIFDriver):
    """Nova's VIF driver, giving interfaces hot-plugged into SEV guests
    ``iommu``. While an operation builds the guest (``plans`` holds its
    plan) the whole domain gets it from the plan instead.
    """

    def __init__(self, host, plans: dict) -> None:
        super().__init__(host)
        self._sev_plans = plans

    def get_config(self, instance, vif, image_meta, flavor, virt_type):
        conf = super().get_config(instance, vif, image_meta, flavor,
                                  virt_type)
        if (instance.uuid not in self._sev_plans and
                sev_mode(flavor, image_meta) is not SevMode.NONE):
            with_iommu(conf)
        return conf


class SevLibvirtDriver(libvirt_driver.LibvirtDriver):
    """Nova's libvirt driver that also boots AMD SEV guests."""

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only)
        # instance uuid -> (image_meta, GuestPlan or None) of the operation
        # under way that builds that guest ...
        self._sev_plans: dict[str, tuple[Any, Any]] = {}
        # ... and of a boot whose default_root_device_name planned it,
        # until its spawn takes the plan over (the entry of a boot that
        # failed before spawn goes when admission sees it left the host).
        self._sev_pending: dict[str, tuple[Any, Any]] = {}
        self.vif_driver = SevVIFDriver(self._host, self._sev_plans)
        self._sev_options = guest_plan.options_from_conf(CONF)
        for note in nova_compat.startup_notes():
            LOG.warning('nova-sev on Nova %s: %s', nova_compat.NOVA_SERIES,
                        note)
        # SEV guests admitted here whose builds may not have ended:
        # uuid -> (pinned MiB, ASID pool) (admission.guests_holding_slots).
        # The lock makes admission atomic across nova-compute's concurrent
        # builds, in native threads or eventlet (monkey patched, it is a
        # green lock).
        self._sev_admitted: dict[str, tuple[int, str]] = {}
        self._sev_admission_lock = threading.Lock()
        # Late binding: Nova may replace its connection getter.
        self._sev_host = sev_host.SevHost(
            lambda: self._host.get_connection(),
            CONF.sev.kvm_amd_parameters_dir,
            list(CONF.sev.firmware_descriptor_dirs), sev_host.CPUINFO)
        self._sev_attestation = attestation.AttestationFlow(
            self._host, lambda: CONF.sev.attestation_timeout,
            record_refusal)

    # -- detection and traits ------------------------------------------

    @property
    def sev_capabilities(self) -> sev_host.SevHostCapabilities:
        """This host's SEV capabilities, detected once per connection."""
        return self._sev_host.get_capabilities()

    def init_host(self, host):
        super().init_host(host)
        # Guests paused for their secret when nova-compute stopped hold an
        # ASID slot still: their timeout starts again.
        self._sev_attestation.rearm(host)

    def _handle_conn_event(self, enabled, reason):
        # libvirt (re)connected or went away: what it said may be stale.
        self._sev_host.reset()
        super()._handle_conn_event(enabled, reason)

    def update_provider_tree(self, provider_tree, nodename,
                             allocations=None):
        super().update_provider_tree(provider_tree, nodename,
                                     allocations=allocations)
        # Only the root provider's SEV traits are ours: Nova's own
        # <node>_amd_sev child provider and its MEM_ENCRYPTION_CONTEXT
        # inventory are left as Nova made them.
        add, remove = traits.sev_trait_changes(
            self.sev_capabilities, provider_tree.data(nodename).traits)
        if add:
            provider_tree.add_traits(nodename, *sorted(add))
        if remove:
            provider_tree.remove_traits(nodename, *sorted(remove))

    # -- the guest -------------------------------------------------------

    def _sev_make_plan(self, instance, image_meta, network_info=None,
                       rescue=False) -> guest_plan.GuestPlan | None:
        """The guest plan of ``instance`` (None without SEV), or the Nova
        exception that aborts its build with the reason. A rescue keeps
        the SEV that the instance's own request asked for.
        """
        specs = instance.flavor.extra_specs
        props = dict(image_properties(image_meta),
                     **own_image_properties(instance),
                     **nova_compat.image_properties_nova_drops(instance))
        if rescue and sev_mode(instance.flavor, image_meta) is SevMode.NONE:
            # The rescue image need not ask for SEV: the instance's own
            # request still holds for the guest that runs its disks.
            props = dict(image_properties(instance.image_meta), **props)
        try:
            attested = attestation.instance_opted_in(instance)
        except exception.InvalidInput as e:
            raise as_nova_exception(e)
        try:
            return guest_plan.plan_guest(
                specs, props, self.sev_capabilities, self._sev_options,
                ram_mb=instance.flavor.memory_mb,
                conf_machine_types=CONF.libvirt.hw_machine_type,
                virt_type=CONF.libvirt.virt_type,
                host_devices=passthrough_vifs(network_info),
                instance_uuid=instance.uuid,
                # Nova boots such a guest's kernel directly (SNP hashes).
                direct_kernel_boot=bool(
                    is_set(instance, 'kernel_id') and
                    instance.kernel_id),
                attested=attested)
        except exception.SevGuestRefused as e:
            # Aborted, not rescheduled, even where the reason is this host's
            # (its SEV state changed since placement saw its traits): once
            # Nova runs out of alternates its fault would only say
            # "Exceeded maximum number of retries", and the user must read
            # why the SEV guest was refused.
            LOG.warning('Refusing SEV guest: %s', e.message,
                        instance=instance)
            raise as_nova_exception(e)

    def _sev_begin(self, instance, image_meta, network_info=None,
                   rescue=False, record=True, pending=False):
        """Start an operation that builds ``instance``'s guest: its plan
        (the one a boot's ``default_root_device_name`` made for this
        ``image_meta``, or a new one), handed to Nova as image properties
        (recorded in the instance too unless ``record`` is False). The
        plan stays for the operation until ``_sev_end``; a ``pending``
        one waits for the boot's spawn.
        """
        made = self._sev_pending.pop(instance.uuid, None)
        if made is not None and made[0] is image_meta:
            plan = made[1]
        else:
            plan = self._sev_make_plan(instance, image_meta, network_info,
                                       rescue)
        plans = self._sev_pending if pending else self._sev_plans
        plans[instance.uuid] = (image_meta, plan)
        if plan is not None:
            props = image_meta.properties
            for key, value in guest_plan.image_choices(plan, {}).items():
                if is_set(props, key) and getattr(props, key) is not None:
                    continue
                setattr(props, key, value)
                if record:
                    instance.system_metadata['image_' + key] = value
        return plan

    def _sev_end(self, instance) -> None:
        self._sev_plans.pop(instance.uuid, None)
        self._sev_attestation.end(instance)

    def _sev_begin_attestation(self, context, instance, plan,
                               launching: bool = False
                               ) -> attestation.Step:
        """The operation's attestation step (``attestation.build_step``),
        its flow read once; refuses (InvalidInput, the build aborts) an
        attested guest that is not SEV.
        """
        try:
            return self._sev_attestation.begin(
                context, instance, sev=plan is not None,
                snp=plan is not None and plan.mode is SevMode.SEV_SNP,
                launching=launching)
        except (exception.SevGuestRefused, exception.InvalidInput) as e:
            LOG.warning('Refusing SEV guest: %s', e.message,
                        instance=instance)
            raise as_nova_exception(e)

    def _sev_after_build(self, context, instance, plan) -> None:
        """Publish what the operation's attestation step calls for."""
        if plan is not None:
            self._sev_attestation.after_build(
                context, instance, plan.policy, plan.loader_path)

    @contextlib.contextmanager
    def _sev_rebuild(self, context, instance, image_meta, network_info,
                     launching: bool = False):
        """An operation that builds an existing guest again (hard reboot,
        a move, its revert): the plan and attestation step for its body,
        what the step publishes once the body succeeded, the plan ended
        either way. Yields the step.
        """
        try:
            plan = self._sev_begin(instance, image_meta, network_info)
            yield self._sev_begin_attestation(context, instance, plan,
                                              launching=launching)
            self._sev_after_build(context, instance, plan)
        finally:
            self._sev_end(instance)

    def _sev_admit(self, context, instance, plan) -> None:
        """Refuse a new SEV guest beyond this host's ASID slots or pinned
        memory; ComputeResourcesUnavailable makes Nova try another host.
        Atomic: concurrent builds are admitted one at a time, each counting
        those admitted before it.
        """
        firmware_mb = self._sev_options.firmware_overhead_mb
        with self._sev_admission_lock:
            listed = []
            for other in objects.InstanceList.get_by_host_and_node(
                    context, instance.host, instance.node,
                    expected_attrs=['flavor', 'system_metadata']):
                listed.append((other.uuid,
                               other.vm_state in _ARRIVING_VM_STATES,
                               self._sev_slot(other, firmware_mb)))
            # Forget what left the host (deleted, moved, rescheduled).
            here = {uuid for uuid, _b, _p in listed}
            for uuid in set(self._sev_admitted) - here:
                del self._sev_admitted[uuid]
            for uuid in set(self._sev_pending) - here:
                self._sev_pending.pop(uuid, None)
            holding = admission.guests_holding_slots(
                listed, self._sev_admitted, instance.uuid)
            # SEV guests take maxGuests slots, SEV-ES and SEV-SNP guests
            # share the maxESGuests pool; all of them pin memory.
            pool = admission.asid_pool(plan.mode)
            caps = self.sev_capabilities
            try:
                admission.check_admission(
                    instance.uuid, instance.host, plan.pinned_memory_mb,
                    [mb for mb, _pool in holding.values()],
                    self._host.get_memory_mb_total(),
                    CONF.reserved_host_memory_mb, firmware_mb,
                    caps.max_es_guests if pool == admission.ES_POOL
                    else caps.max_guests,
                    same_pool_guests=sum(
                        1 for _mb, other in holding.values()
                        if other == pool),
                    pool=pool)
            except exception.SevHostLimitReached as e:
                LOG.warning('%s', e.message, instance=instance)
                error = as_nova_exception(e, reschedule=True)
                record_refusal(context, instance, EVENT_HOST_LIMIT, error)
                raise error
            self._sev_admitted[instance.uuid] = (plan.pinned_memory_mb,
                                                 pool)

    def _sev_release(self, instance) -> None:
        """Give back the slot of a guest whose build failed here."""
        with self._sev_admission_lock:
            self._sev_admitted.pop(instance.uuid, None)

    @staticmethod
    def _sev_slot(instance, firmware_mb: int) -> tuple[int, str] | None:
        """What an instance on this host pins (MiB) and the ASID pool it
        takes a slot of; None when it is not SEV.
        """
        props = image_properties(instance.image_meta)
        try:
            mode = hardware.get_sev_mode(instance.flavor.extra_specs, props)
            video_mb = hardware.requested_video_ram_mb(props)
        except exception.SevGuestRefused:
            return None
        if mode is SevMode.NONE:
            return None
        return (memory.pinned_memory_mb(instance.flavor.memory_mb, video_mb,
                                        firmware_mb),
                admission.asid_pool(mode))

    def default_root_device_name(self, instance, image_meta, root_bdm):
        # A boot's first hook: Nova names (and so places) the disks before
        # spawn, so the plan's buses must be Nova's first. The plan is kept
        # for spawn; a refusal waits for spawn, where it reschedules or
        # aborts the build with its reason.
        try:
            self._sev_begin(instance, image_meta, pending=True)
        except nova_exception.NovaException as e:
            LOG.debug('SEV request left for spawn to refuse: %s', e,
                      instance=instance)
        return super().default_root_device_name(instance, image_meta,
                                                root_bdm)

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        try:
            plan = self._sev_begin(instance, image_meta, network_info)
            step = self._sev_begin_attestation(context, instance, plan)
            if plan is not None:
                self._sev_refuse_ports(instance, network_info)
                self._sev_admit(context, instance, plan)
            # An attested guest waits, defined, for its owner's session.
            super().spawn(context, instance, image_meta, injected_files,
                          admin_password, allocations,
                          network_info=network_info,
                          block_device_info=block_device_info,
                          power_on=power_on and step.nova_starts,
                          accel_info=accel_info)
            self._sev_after_build(context, instance, plan)
        except Exception:
            with excutils.save_and_reraise_exception():
                self._sev_release(instance)
        finally:
            self._sev_end(instance)

    def _sev_refuse_ports(self, instance, network_info) -> None:
        """The ports are known at spawn: a plan made before them (by
        ``default_root_device_name``) has its device rule applied to them
        here.
        """
        try:
            guest_plan.refuse_host_devices(passthrough_vifs(network_info),
                                           'the ports of the request')
        except exception.SevGuestRefused as e:
            LOG.warning('Refusing SEV guest: %s', e.message,
                        instance=instance)
            raise as_nova_exception(e)

    def _hard_reboot(self, context, instance, network_info, share_info,
                     block_device_info=None, accel_info=None):
        # Nova reads instance.image_meta afresh from the recorded image
        # properties, which the plan fills in.
        with self._sev_rebuild(context, instance, instance.image_meta,
                               network_info, launching=True):
            return super()._hard_reboot(
                context, instance, network_info, share_info,
                block_device_info=block_device_info, accel_info=accel_info)

    def finish_migration(self, context, migration, instance, disk_info,
                         network_info, image_meta, resize_instance,
                         allocations, block_device_info=None,
                         power_on=True, share_info=None):
        with self._sev_rebuild(context, instance, image_meta,
                               network_info) as step:
            super().finish_migration(
                context, migration, instance, disk_info, network_info,
                image_meta, resize_instance, allocations,
                block_device_info=block_device_info,
                power_on=power_on and step.nova_starts,
                **nova_compat.new_kwargs(share_info=share_info))

    def finish_revert_migration(self, context, instance, network_info,
                                migration, block_device_info=None,
                                power_on=True, share_info=None):
        with self._sev_rebuild(context, instance, instance.image_meta,
                               network_info) as step:
            super().finish_revert_migration(
                context, instance, network_info, migration,
                block_device_info=block_device_info,
                power_on=power_on and step.nova_starts,
                **nova_compat.new_kwargs(share_info=share_info))

    def rescue(self, context, instance, network_info, image_meta,
               rescue_password, block_device_info, share_info):
        # The rescue image's properties take the plan's choices for this
        # rescue only: the instance's recorded ones stay its own.
        try:
            self._sev_begin(instance, image_meta, network_info, rescue=True,
                            record=False)
            return super().rescue(context, instance, network_info,
                                  image_meta, rescue_password,
                                  block_device_info, share_info)
        finally:
            self._sev_end(instance)

    def _get_guest_config(self, instance, network_info, image_meta,
                          disk_info, rescue=None, block_device_info=None,
                          context=None, mdevs=None, accel_info=None,
                          share_info=None, old_guest=None):
        guest = super()._get_guest_config(
            instance, network_info, image_meta, disk_info, rescue=rescue,
            block_device_info=block_device_info, context=context,
            mdevs=mdevs, accel_info=accel_info, share_info=share_info,
            **nova_compat.new_kwargs(old_guest=old_guest))
        made = self._sev_plans.get(instance.uuid)
        if made is not None:
            plan = made[1]
        else:
            # A guest built outside the operations above (a revert of a
            # resize, a domain Nova rebuilds): fail closed all the same,
            # with a plan of its own.
            plan = self._sev_make_plan(instance, image_meta, network_info,
                                       rescue=bool(rescue))
        if plan is None:
            return guest
        without_replaced_parts(guest)
        return SevGuestConfig(guest, plan,
                              self._sev_attestation.launch_session(instance))

    def _create_guest(self, context, xml, instance, power_on=True,
                      pause=False, post_xml_callback=None):
        return self._sev_attestation.create_guest(
            super()._create_guest, context, xml, instance, power_on, pause,
            post_xml_callback)

    def get_info(self, instance, use_cache=True):
        if self._sev_attestation.is_held(instance):
            # Nova's wait for RUNNING after a (hard) reboot has no end: a
            # guest held for its owner ends it. The manager reads the real
            # state once the operation is over.
            return nova_hardware.InstanceInfo(state=power_state.RUNNING)
        return super().get_info(instance, use_cache=use_cache)

    # -- the owner's release -------------------------------------------

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None, share_info=None):
        if reboot_type == 'SOFT':
            flow = self._sev_attestation.read(context, instance)
            if attestation.releases(flow):
                return self._sev_attestation.release(context, instance,
                                                     flow)
            if flow.attested:
                # Nova's soft reboot launches the domain again as it is
                # (the used session in it) and runs it: an attested guest
                # is launched only by its owner.
                reboot_type = 'HARD'
        return super().reboot(
            context, instance, network_info, reboot_type,
            block_device_info=block_device_info,
            bad_volumes_callback=bad_volumes_callback,
            accel_info=accel_info, share_info=share_info)

    def unpause(self, instance):
        # Nova's unpause would run a guest paused for its secret without
        # it: for such a guest it is the owner's release.
        flow = self._sev_attestation.read(None, instance)
        if attestation.releases(flow):
            return self._sev_attestation.release(
                getattr(instance, '_context', None), instance, flow)
        return super().unpause(instance)

    # -- hot-plug ----------------------------------------------------------

    def attach_volume(self, context, connection_info, instance, mountpoint,
                      disk_bus=None, device_type=None, encryption=None):
        if sev_mode(instance.flavor, instance.image_meta) is not SevMode.NONE:
            try:
                guest_plan.check_attached_disk(
                    disk_bus, mountpoint.rpartition('/')[2])
            except exception.SevGuestRefused as e:
                LOG.warning('%s', e.message, instance=instance)
                raise as_nova_exception(e)
        return super().attach_volume(
            context, connection_info, instance, mountpoint,
            disk_bus=disk_bus, device_type=device_type,
            encryption=encryption)

    def _check_discard_for_attach_volume(self, conf, instance):
        super()._check_discard_for_attach_volume(conf, instance)
        if sev_mode(instance.flavor, instance.image_meta) is not SevMode.NONE:
            with_iommu(conf)

    def attach_interface(self, context, instance, image_meta, vif):
        try:
            self._sev_refuse(lifecycle.PASSTHROUGH_ATTACH, instance,
                             image_meta, nova_exception.InterfaceAttachFailed,
                             passthrough_vifs([vif]))
        except nova_exception.InterfaceAttachFailed as e:
            # Nova answers the API with its generic "Failed to attach
            # network adapter device": the event says SEV and the port.
            with excutils.save_and_reraise_exception():
                record_refusal(context, instance, EVENT_ATTACH_INTERFACE, e)
        return super().attach_interface(context, instance, image_meta, vif)

    # -- lifecycle guards ------------------------------------------------

    def _sev_refuse(self, operation, instance, image_meta, nova_error,
                    devices: tuple[str, ...] | None = None) -> None:
        """Raise ``nova_error`` when ``operation`` cannot be done to this
        (SEV) instance; ``devices`` None means the operation always
        concerns the guest, an empty tuple that nothing is passed through.
        """
        if devices is not None and not devices:
            return
        mode = sev_mode(instance.flavor, image_meta)
        try:
            lifecycle.check_operation(operation, mode, instance.uuid,
                                      ', '.join(devices or ()))
        except exception.SevOperationRefused as e:
            LOG.warning('%s', e.message, instance=instance)
            raise nova_error(e.message)

    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info,
                                           dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        # NoValidHost: the conductor stops at once (MigrationPreCheckError
        # would make it try every other SEV host) and leaves the instance
        # ACTIVE where it is.
        self._sev_refuse(lifecycle.LIVE_MIGRATION, instance,
                         instance.image_meta, _no_valid_host)
        return super().check_can_live_migrate_destination(
            context, instance, src_compute_info, dst_compute_info,
            block_migration, disk_over_commit)

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data,
                                      block_device_info=None):
        self._sev_refuse(lifecycle.LIVE_MIGRATION, instance,
                         instance.image_meta, _no_valid_host)
        return super().check_can_live_migrate_source(
            context, instance, dest_check_data, block_device_info)

    def suspend(self, context, instance):
        # InstanceFaultRollback: the compute manager puts the instance back
        # to ACTIVE and records the inner error as its fault.
        self._sev_refuse(lifecycle.SUSPEND, instance, instance.image_meta,
                         _suspend_rollback)
        return super().suspend(context, instance)


def _no_valid_host(message: str) -> Exception:
    return nova_exception.NoValidHost(reason=message)


def _suspend_rollback(message: str) -> Exception:
    return nova_exception.InstanceFaultRollback(
        inner_exception=nova_exception.InstanceSuspendFailure(
            reason=message))
