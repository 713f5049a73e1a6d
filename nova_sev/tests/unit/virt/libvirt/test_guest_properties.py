"""Property test over random flavor, image, host and option combinations.

A request for SEV either raises one of the specific SevGuestRefused
exceptions or produces a domain with exactly one ``<launchSecurity>`` (and
everything else an SEV guest needs); a request without SEV never gets one
and is never refused; nothing else raises.
"""

import os

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from lxml import etree
import testtools

from nova_sev import exception
from nova_sev.tests.unit.virt.libvirt import test_guest_plan as tgp
from nova_sev.virt import hardware
from nova_sev.virt.libvirt import designer
from nova_sev.virt.libvirt import guest_plan as gp
from nova_sev.virt.libvirt import sev_guest

DATA = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'data')
with open(os.path.join(DATA, 'nova-guest-q35.xml'), encoding='utf-8') as f:
    NOVA_DOMAIN = f.read()

DOMAINS = (
    NOVA_DOMAIN,
    NOVA_DOMAIN,
    NOVA_DOMAIN,
    NOVA_DOMAIN.replace('pc-q35-7.2', 'q35'),
    NOVA_DOMAIN.replace(" machine='pc-q35-7.2'", ''),
    NOVA_DOMAIN.replace('pc-q35-7.2', 'pc-i440fx-7.2'),
    NOVA_DOMAIN.replace("dev='sda' bus='sata'", "dev='hdc' bus='ide'"),
    NOVA_DOMAIN.replace(
        '</devices>', "<hostdev mode='subsystem' type='pci'><source>"
        "<address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/>"
        "</source></hostdev></devices>"),
    NOVA_DOMAIN.replace(
        '<vcpu', "<memoryBacking><hugepages/></memoryBacking><vcpu"),
)

SEV_KEYS = ('trait:HW_CPU_X86_AMD_SEV', 'trait:HW_CPU_AMD_SEV',
            'trait:HW_CPU_X86_AMD_SEV_ES')
# Mostly absent (None) or valid values, so that many examples reach a
# plan; some garbage.
TRAIT_VALUES = st.sampled_from((None, None, 'required', 'required',
                                'Required', 'forbidden', 'preferred'))
BOOL_VALUES = st.sampled_from((None, None, 'true', 'True', '1', 'yes', True,
                               'false', 'no', False, 'maybe'))
MODEL_VALUES = st.sampled_from((None, None, None, None, 'amd-sev',
                                'amd-sev-es', 'amd-snp'))
# Keys that say nothing about SEV, with values an SEV guest may refuse.
NEUTRAL_FLAVOR = {
    'hw:mem_page_size': st.sampled_from(('large', 'small', '2MB', 'any')),
    'pci_passthrough:alias': st.sampled_from(('gpu:1', 'nic:2')),
    'resources:VGPU': st.sampled_from(('0', '0', '1')),
    'hw:cpu_policy': st.just('dedicated'),
}
NEUTRAL_IMAGE = {
    'hw_machine_type': st.sampled_from(('q35', 'pc-q35-7.2', 'q35', 'pc')),
    'hw_disk_bus': st.sampled_from(('scsi', 'sata', 'scsi', 'virtio',
                                    'ide')),
    'hw_cdrom_bus': st.sampled_from(('sata', 'scsi', 'sata', 'ide')),
    'hw_video_ram': st.sampled_from(('0', '16', '64')),
}


def _sev_request(enc_key, model_key):
    keys = {key: TRAIT_VALUES for key in SEV_KEYS}
    keys[enc_key] = BOOL_VALUES
    keys[model_key] = MODEL_VALUES
    return st.fixed_dictionaries({}, optional=keys)


def _clean(enc_key, model_key):
    """Requests as users write them: one way of asking, or nothing."""
    return st.sampled_from((
        {}, {'trait:HW_CPU_X86_AMD_SEV': 'required'},
        {'trait:HW_CPU_AMD_SEV': 'required'}, {enc_key: 'true'},
        {enc_key: 'True', model_key: 'amd-sev'},
        {'trait:HW_CPU_X86_AMD_SEV_ES': 'required'},
        {enc_key: 'true', model_key: 'amd-sev-es'}))


def _sev_flavor():
    return st.one_of(
        _clean('hw:mem_encryption', 'hw:mem_encryption_model'),
        _sev_request('hw:mem_encryption', 'hw:mem_encryption_model'))


def _sev_image():
    return st.one_of(
        _clean('hw_mem_encryption', 'hw_mem_encryption_model'),
        _sev_request('hw_mem_encryption', 'hw_mem_encryption_model'))


def _neutral(keys):
    return st.fixed_dictionaries({}, optional=keys)


def _caps():
    return st.builds(
        tgp.caps, sev=st.sampled_from((True, True, True, False)),
        sev_es=st.sampled_from((True, True, False)),
        firmware=st.sampled_from((
            (tgp.SEV_FW, tgp.SEV_ES_FW), (tgp.SEV_FW, tgp.SEV_ES_FW),
            (tgp.SEV_FW,), (tgp.SECURE_FW, tgp.SEV_FW),
            (tgp.descriptor(features=('acpi-s3',)),), ())))


def _options():
    return st.builds(
        gp.SevGuestOptions,
        firmware_overhead_mb=st.integers(0, 64),
        qemu_overhead_mb=st.integers(0, 1024),
        allow_virtio_blk_boot_disk=st.booleans(),
        policy=st.sampled_from((None, None, None, '', '0x33', '0x3', '0x30',
                                '0x01', 'bad', '0x1ffffffff')),
        allow_insecure_policy=st.booleans())


def _no_sev_specs():
    """SEV keys whose values never ask for SEV."""
    return st.dictionaries(st.sampled_from(SEV_KEYS),
                           st.just('forbidden'), max_size=2)


# Nova's request groups: the unsuffixed one, numbered and suffixed ones.
GROUPS = ('', '1', '2', '_SEV', '-x')
SEV_TRAIT_NAMES = ('HW_CPU_X86_AMD_SEV', 'HW_CPU_AMD_SEV')
SEV_ES_TRAIT_NAME = 'HW_CPU_X86_AMD_SEV_ES'
GROUPED_TRAIT_VALUES = st.sampled_from(('required', 'required', 'forbidden',
                                        'Required', 'preferred'))
_TRUE = ('true', 'True', '1', 'yes', True)
_FALSE = ('false', 'no', False)


def _grouped_request():
    """Flavor trait keys spread over request groups, some groups with
    resources, and perhaps hw:mem_encryption.
    """
    traits = st.dictionaries(
        st.builds('trait{}:{}'.format, st.sampled_from(GROUPS),
                  st.sampled_from(SEV_TRAIT_NAMES + (SEV_ES_TRAIT_NAME,))),
        GROUPED_TRAIT_VALUES, max_size=3)
    resources = st.dictionaries(
        st.builds('resources{}:VCPU'.format, st.sampled_from(GROUPS[1:])),
        st.just('1'), max_size=2)
    enc = st.fixed_dictionaries({}, optional={
        'hw:mem_encryption': st.sampled_from(_TRUE + _FALSE + ('maybe',))})
    return st.builds(_combine, traits, resources, enc)


def _expected(extra_specs, image_props):
    """What a request asks for, read independently of nova_sev.hardware
    by the rule placement applies: a trait in any request group of the
    flavor, or the image's unsuffixed traits. (garbage, encryption asked,
    encryption forbidden, SEV-ES asked, SEV-ES forbidden).
    """
    garbage = False
    enc_yes = enc_no = es_yes = es_no = False
    for source, props in (('flavor', extra_specs), ('image', image_props)):
        for key, value in props.items():
            prefix, sep, name = key.partition(':')
            if value is None:
                continue
            if key in ('hw:mem_encryption', 'hw_mem_encryption'):
                if value in _TRUE:
                    enc_yes = True
                elif value in _FALSE:
                    enc_no = True
                else:
                    garbage = True
                continue
            if not prefix.startswith('trait') or (
                    source == 'image' and prefix != 'trait'):
                continue
            if name not in SEV_TRAIT_NAMES + (SEV_ES_TRAIT_NAME,):
                continue
            wanted = str(value).lower()
            if wanted not in ('required', 'forbidden'):
                garbage = True
            elif name == SEV_ES_TRAIT_NAME:
                es_yes = es_yes or wanted == 'required'
                es_no = es_no or wanted == 'forbidden'
                enc_yes = enc_yes or wanted == 'required'
            else:
                enc_yes = enc_yes or wanted == 'required'
                enc_no = enc_no or wanted == 'forbidden'
    return garbage, enc_yes, enc_no, es_yes, es_no


def _combine(*dicts):
    result = {}
    for d in dicts:
        result.update(d)
    return result


class TestSevGuestProperties(testtools.TestCase):

    def _check_sev_domain(self, xml, plan, options):
        root = etree.fromstring(xml)
        lsec = root.findall('launchSecurity')
        self.assertEqual(1, len(lsec))
        policy = int(lsec[0].findtext('policy'), 16)
        self.assertEqual(plan.policy, policy)
        self.assertEqual(plan.mode is hardware.SevMode.SEV_ES,
                         bool(policy & gp.POLICY_ES))
        if not options.allow_insecure_policy:
            self.assertEqual(0x3, policy & 0x3)
        self.assertTrue(hardware.is_q35(root.find('os/type').get('machine')))
        self.assertEqual('pflash', root.find('os/loader').get('type'))
        self.assertIsNotNone(root.find('memoryBacking/locked'))
        for dev in root.find('devices'):
            if designer._is_virtio(dev):
                self.assertEqual('on', dev.find('driver').get('iommu'))
        self.assertEqual([], root.xpath("devices/disk[target/@bus='ide']"))
        self.assertEqual([], root.findall('devices/hostdev'))

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(DOMAINS), _sev_flavor(), _sev_image(),
           _neutral(NEUTRAL_FLAVOR), _neutral(NEUTRAL_IMAGE), _caps(),
           _options())
    def test_sev_request(self, domain, sev_flavor, sev_image, flavor_extra,
                         image_extra, caps, options):
        extra_specs = _combine(flavor_extra, sev_flavor)
        image_props = _combine(image_extra, sev_image)
        try:
            xml, plan = sev_guest.design_sev_domain(
                domain, extra_specs, image_props, caps, options)
        except exception.SevGuestRefused as e:
            self.assertTrue(str(e))
            return
        mode = hardware.get_sev_mode(extra_specs, image_props)
        if mode is hardware.SevMode.NONE:
            self.assertIsNone(plan)
            self.assertEqual(domain, xml)
            self.assertNotIn('launchSecurity', xml)
        else:
            self._check_sev_domain(xml, plan, options)

    @settings(max_examples=100, deadline=None)
    @given(st.sampled_from(DOMAINS), _no_sev_specs(), _no_sev_specs(),
           _neutral(NEUTRAL_FLAVOR), _neutral(NEUTRAL_IMAGE), _caps(),
           _options())
    def test_no_sev_request(self, domain, sev_flavor, sev_image,
                            flavor_extra, image_extra, caps, options):
        xml, plan = sev_guest.design_sev_domain(
            domain, _combine(flavor_extra, sev_flavor),
            _combine(image_extra, sev_image), caps, options)
        self.assertIsNone(plan)
        self.assertEqual(domain, xml)

    @settings(max_examples=400, deadline=None)
    @given(st.sampled_from(DOMAINS), _grouped_request(), _sev_image(),
           _neutral(NEUTRAL_FLAVOR), _neutral(NEUTRAL_IMAGE), _caps(),
           _options())
    def test_request_groups(self, domain, grouped, sev_image, flavor_extra,
                            image_extra, caps, options):
        """Whatever group asks for SEV, the guest is SEV or refused; a
        group that forbids it while another asks is a conflict.
        """
        extra_specs = _combine(flavor_extra, grouped)
        image_props = _combine(image_extra, sev_image)
        # Models are the subject of test_sev_request.
        image_props.pop('hw_mem_encryption_model', None)
        garbage, enc_yes, enc_no, es_yes, es_no = _expected(extra_specs,
                                                            image_props)
        try:
            xml, plan = sev_guest.design_sev_domain(
                domain, extra_specs, image_props, caps, options)
        except exception.SevRequestConflict:
            self.assertTrue((enc_yes and enc_no) or (es_yes and es_no))
            return
        except exception.InvalidSevRequest:
            self.assertTrue(garbage)
            return
        except exception.SevGuestRefused as e:
            # Refused by the host or the guest plan: only SEV guests are.
            self.assertTrue(enc_yes, str(e))
            self.assertFalse(garbage)
            return
        self.assertFalse(garbage)
        self.assertFalse(enc_yes and enc_no)
        self.assertFalse(es_yes and es_no)
        if enc_yes:
            self._check_sev_domain(xml, plan, options)
            self.assertEqual(es_yes, plan.mode is hardware.SevMode.SEV_ES)
        else:
            self.assertIsNone(plan)
            self.assertEqual(domain, xml)

    @settings(max_examples=200, deadline=None)
    @given(_grouped_request(), _sev_image(), _neutral(NEUTRAL_IMAGE),
           _caps(), _caps(), _options())
    def test_moves_keep_sev(self, grouped, sev_image, image_extra, source,
                            destination, options):
        """A guest built as SEV, moved (cold migration, resize, evacuate,
        unshelve: the destination plans it again from the request and the
        image properties recorded at build) is SEV there too, on the same
        machine type and disk bus, or refused; never plain.
        """
        image_props = _combine(image_extra, sev_image)
        image_props.pop('hw_mem_encryption_model', None)
        try:
            _xml, plan = sev_guest.design_sev_domain(
                NOVA_DOMAIN, grouped, image_props, source, options)
        except exception.SevGuestRefused:
            return
        if plan is None:
            return
        recorded = _combine(image_props,
                            gp.image_choices(plan, image_props))
        try:
            xml, moved = sev_guest.design_sev_domain(
                NOVA_DOMAIN, grouped, recorded, destination, options)
        except exception.SevGuestRefused as e:
            self.assertNotIsInstance(e, exception.SevRequestConflict)
            return
        self.assertIsNotNone(moved)
        self._check_sev_domain(xml, moved, options)
        self.assertEqual(plan.mode, moved.mode)
        self.assertEqual(plan.machine_type, moved.machine_type)
        # The plan's bus is the default it sets where the image left the bus
        # open; after the build the bus is recorded.
        self.assertEqual(plan.disk_bus or image_props.get('hw_disk_bus'),
                         moved.disk_bus or recorded.get('hw_disk_bus'))
