"""A Nova functional test base with SEV and non-SEV libvirt computes.

Nova's fake libvirt reports SEV through its domain capabilities (one
``<features>`` block per compute here), Nova's own kernel check is
answered by its ``AmdSevFixture``, and nova-sev's checks read
``kvm_amd`` parameters and QEMU firmware descriptors from temporary
directories set in ``[sev]``. The driver is loaded the way operators load
it: ``driver.register()``, then ``compute_driver =
sev_libvirt.SevLibvirtDriver``.
Every domain XML handed to libvirt's ``defineXML`` is kept (Nova's fake
rebuilds XML from a subset), keyed by compute host.
"""

import copy
import json
import os
import sysconfig
import unittest

import fixtures
from lxml import etree
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import base
import testtools

from nova_sev.tests.fixtures import nova_harness
from nova_sev.tests.fixtures import sev_host
from nova_sev.virt.libvirt import driver
from nova_sev.virt import memory
from nova_sev.virt import nova_compat

OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd'
OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd'
SEV_DESCRIPTOR = {
    'description': 'OVMF with AMD SEV (test)',
    'interface-types': ['uefi'],
    'mapping': {
        'device': 'flash',
        'executable': {'filename': OVMF_CODE, 'format': 'raw'},
        'nvram-template': {'filename': OVMF_VARS, 'format': 'raw'},
    },
    'targets': [{'architecture': 'x86_64', 'machines': ['pc-q35-*']}],
    'features': ['acpi-s3', 'amd-sev', 'verbose-dynamic'],
    'tags': [],
}

CBITPOS = 47
NO_SEV_FEATURES = (fakelibvirt.virConnect.
                   _domain_capability_features_with_SEV_unsupported)


def sev_features(max_guests: int = 15, max_es_guests: int = 0) -> str:
    """A fake libvirt ``<features>`` block of an SEV host."""
    return "  <features>\n    <gic supported='no'/>\n%s\n  </features>" % (
        sev_host.SEV_FEATURE % {
            'cbitpos': CBITPOS, 'reduced': 1,
            'max': '\n      <maxGuests>%d</maxGuests>\n      '
                   '<maxESGuests>%d</maxESGuests>' % (max_guests,
                                                      max_es_guests)})


def virtio_devices(root):
    """The devices of a domain that are virtio, as libvirt counts them."""
    found = []
    for dev in root.find('devices'):
        model = dev.find('model')
        target = dev.find('target')
        if (dev.get('model') or '').startswith('virtio') or (
                model is not None and
                (model.get('type') or '').startswith('virtio')) or (
                dev.tag == 'disk' and target is not None and
                target.get('bus') == 'virtio') or (
                dev.tag == 'controller' and
                dev.get('type') == 'virtio-serial'):
            found.append(dev)
    return found


def fake_host_info(mem_gib: int = 16) -> fakelibvirt.HostInfo:
    """A compute host of 1 socket, 4 cores, 2 threads and ``mem_gib``."""
    # Nova's fake getInfo() returns kB_mem where libvirt returns MiB.
    return fakelibvirt.HostInfo(cpu_nodes=1, cpu_sockets=1, cpu_cores=4,
                                cpu_threads=2, kB_mem=mem_gib * 1024)


def api_paste_ini() -> str:
    """Nova's api-paste.ini as pip installs it: in the environment's data
    directory (``<venv>/etc/nova``), not beside the package where Nova's
    test configuration looks.
    """
    return os.path.join(sysconfig.get_paths()['data'], 'etc', 'nova',
                        'api-paste.ini')


def running_in_threading_mode_wanted() -> bool:
    return os.environ.get('OS_NOVA_DISABLE_EVENTLET_PATCHING',
                          '').lower() in ('1', 'true', 'yes')


def without_snp_unknown_to_nova(tests: unittest.TestSuite,
                                *snp_cases: type) -> unittest.TestSuite:
    """The tests of ``tests`` the Nova installed can run: the SEV-SNP
    ``snp_cases`` only where Nova knows SEV-SNP (2026.2). Before, its API
    refuses every way of asking for SEV-SNP, which test_snp's
    ``TestSevSnpUnknownToNova`` proves; a ``load_tests`` returns this.
    """
    if nova_compat.SNP_TRAIT_KNOWN:
        return tests
    return unittest.TestSuite(
        test for test in testtools.iterate_tests(tests)
        if not isinstance(test, snp_cases))


class KernelSevFixture(fixtures.Fixture):
    """Nova's own kernel check for SEV, answered as Nova 2026.2's
    ``AmdSevFixture`` (in its ``LibvirtFixture``) answers it; the Nova of
    2025.1 to 2026.1 has no such fixture. The check takes the model since
    2025.2 and none before (SEV).
    """

    def __init__(self):
        super().__init__()
        self.sev = self.sev_es = self.sev_snp = False

    def setUp(self):
        super().setUp()

        def kernel_supports(model='sev'):
            return {'sev': self.sev, 'sev-es': self.sev_es,
                    'sev-snp': self.sev_snp}[model]

        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.host.Host._kernel_supports_amd_sev',
            side_effect=kernel_supports))


class SevServersTestBase(base.ServersTestBase):
    microversion = 'latest'
    # compute host name -> <features> of its domain capabilities
    host_features: dict[str, str] = {}

    def setUp(self):
        self.useFixture(nova_harness.CleanupLogFixture())
        self.flags(api_paste_config=api_paste_ini(), group='wsgi')
        super().setUp()
        # The mode asked for is the mode run: a test module that imported
        # Nova's test package first would silently change it.
        self.assertEqual(running_in_threading_mode_wanted(),
                         nova_compat.concurrency_mode_threading())
        self.amd_sev = (getattr(self.libvirt, 'amd_sev', None) or
                        self.useFixture(KernelSevFixture()))
        self.amd_sev.sev = True
        tmp = self.useFixture(fixtures.TempDir()).path
        self.kvm_amd_params = os.path.join(tmp, 'kvm_amd')
        sev_host.write_kvm_amd_params(self.kvm_amd_params, sev='1',
                                      sev_es='0')
        self.firmware_dir = os.path.join(tmp, 'firmware')
        os.makedirs(self.firmware_dir)
        self.write_descriptor('60-ovmf-sev.json', SEV_DESCRIPTOR)
        self.flags(kvm_amd_parameters_dir=self.kvm_amd_params,
                   firmware_descriptor_dirs=[self.firmware_dir], group='sev')
        # The fake libvirt's host is bare metal, whatever this machine is:
        # the driver reads these CPU flags, not this machine's.
        self.cpuinfo = os.path.join(tmp, 'cpuinfo')
        with open(self.cpuinfo, 'w') as f:
            f.write('processor\t: 0\nflags\t\t: fpu sse2 svm sev\n')
        self.useFixture(fixtures.MonkeyPatch(
            'nova_sev.virt.libvirt.host.CPUINFO', self.cpuinfo))

        self.defined: list[tuple[str, str]] = []
        define = fakelibvirt.Connection.defineXML

        def _define(conn, xml):
            self.defined.append((conn.getHostname(), xml))
            return define(conn, xml)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Connection.defineXML', _define))
        # Devices hot-plugged into a domain: (domain uuid, device XML).
        self.attached: list[tuple[str, str]] = []
        attach = fakelibvirt.Domain.attachDeviceFlags

        def _attach(dom, xml, flags):
            self.attached.append((dom.UUIDString(), xml))
            return attach(dom, xml, flags)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.attachDeviceFlags', _attach))

        self.images = {}
        for name, props in (
                ('plain', {}),
                ('sev-trait', {'trait:HW_CPU_X86_AMD_SEV': 'required'}),
                ('mem-encryption', {'hw_mem_encryption': 'True',
                                    'hw_firmware_type': 'uefi'}),
                ('uefi', {'hw_firmware_type': 'uefi'}),
                ('virtio-blk', {'hw_disk_bus': 'virtio'})):
            self.add_image(name, props)

        self.flavors = {
            'plain': self._create_flavor(name='plain', memory_mb=2048),
            'sev-trait': self._create_flavor(
                name='sev-trait', memory_mb=2048,
                extra_spec={'trait:HW_CPU_X86_AMD_SEV': 'required'}),
            'sev-old-trait': self._create_flavor(
                name='sev-old-trait', memory_mb=2048,
                extra_spec={'trait:HW_CPU_AMD_SEV': 'required'}),
            'mem-encryption': self._create_flavor(
                name='mem-encryption', memory_mb=2048,
                extra_spec={'hw:mem_encryption': 'true'}),
            'sev-es': self._create_flavor(
                name='sev-es', memory_mb=2048,
                extra_spec={'trait:HW_CPU_X86_AMD_SEV_ES': 'required'}),
            'sev-large': self._create_flavor(
                name='sev-large', memory_mb=4096,
                extra_spec={'trait:HW_CPU_X86_AMD_SEV': 'required'}),
        }

    def add_image(self, name, props):
        """A Glance image like Nova's image1 with ``props`` added, kept in
        ``self.images[name]``.
        """
        image = copy.deepcopy(self.glance.image1)
        image['id'] = 'a1b2c3d4-0000-4000-8000-%012d' % len(self.images)
        image['name'] = name
        image['properties'] = dict(image['properties'], **props)
        self.glance.create(None, image)
        self.images[name] = image['id']

    def write_descriptor(self, name, descriptor):
        with open(os.path.join(self.firmware_dir, name), 'w') as f:
            json.dump(descriptor, f)

    def _setup_compute_service(self):
        # The operator's way (see nova-sev-compute): register the driver
        # under nova.virt, then name it in compute_driver.
        self.flags(compute_driver=driver.register())

    def _get_connection(self, host_info=None, pci_info=None, mdev_info=None,
                        vdpa_info=None, libvirt_version=None,
                        qemu_version=None, hostname=None):
        conn = super()._get_connection(
            host_info, pci_info, mdev_info, vdpa_info, libvirt_version,
            qemu_version, hostname)
        conn._domain_capability_features = self.host_features.get(
            hostname, NO_SEV_FEATURES)
        return conn

    def start_sev_compute(self, hostname, sev=True, max_guests=15,
                          mem_gib=16, pci_info=None, max_es_guests=0):
        self.host_features = dict(self.host_features)
        self.host_features[hostname] = (
            sev_features(max_guests, max_es_guests) if sev
            else NO_SEV_FEATURES)
        return self.start_compute(hostname, host_info=fake_host_info(mem_gib),
                                  pci_info=pci_info)

    # -- looking at what happened ------------------------------------------

    def assertSevDomain(self, root, memory_mb=2048, buses=('scsi',),
                        policy=0x33, loader=OVMF_CODE):
        lsec = root.findall('launchSecurity')
        self.assertEqual(1, len(lsec), 'exactly one <launchSecurity>')
        self.assertEqual('sev', lsec[0].get('type'))
        self.assertEqual(str(CBITPOS), lsec[0].findtext('cbitpos'))
        self.assertEqual('1', lsec[0].findtext('reducedPhysBits'))
        self.assertEqual(policy, int(lsec[0].findtext('policy'), 16))
        self.assertIn('q35', root.find('os/type').get('machine'))
        self.assertEqual(loader, root.findtext('os/loader'))
        self.assertEqual(OVMF_VARS,
                         root.find('os/nvram').get('template'))
        devices = virtio_devices(root)
        self.assertTrue(devices)
        for dev in devices:
            self.assertEqual('on', dev.find('driver').get('iommu'),
                             'no iommu on %s' % dev.tag)
        self.assertEqual(
            str(memory.hard_limit_kib(memory_mb)),
            root.findtext('memtune/hard_limit'))
        self.assertIsNotNone(root.find('memoryBacking/locked'))
        if buses is None:
            return
        # The boot disk is not virtio-blk: Nova itself put it on
        # virtio-scsi, as the image left the bus open.
        self.assertEqual(set(buses), {d.find('target').get('bus')
                                      for d in root.findall('devices/disk')})
        self.assertIn('virtio-scsi', [
            c.get('model') for c in root.findall('devices/controller')
            if c.get('type') == 'scsi'])

    def assertPlainDomain(self, root):
        self.assertIsNone(root.find('launchSecurity'))
        self.assertIsNone(root.find('memoryBacking/locked'))
        self.assertIsNone(root.find('memtune/hard_limit'))

    def boot(self, flavor, image='plain', host=None, expected_state='ACTIVE',
             networks='none'):
        api = self.admin_api if host else self.api
        body = self._build_server(
            image_uuid=self.images[image], flavor_id=self.flavors[flavor],
            networks=networks, host=host)
        server = api.post_server({'server': body})
        return self._wait_for_state_change(server, expected_state)

    # Nova's own helpers for these take the API to use, or exist, only
    # since 2026.1.
    def migrate(self, server):
        """Cold migrate ``server`` as the admin; the server resized."""
        self.admin_api.post_server_action(server['id'], {'migrate': None})
        return self._wait_for_state_change(server, 'VERIFY_RESIZE')

    def attach_volume(self, server, volume_id):
        self.api.post_server_volume(
            server['id'], {'volumeAttachment': {'volumeId': volume_id}})
        self._wait_for_volume_attach(server['id'], volume_id)

    def host_of(self, server):
        return self.admin_api.get_server(server['id'])[
            'OS-EXT-SRV-ATTR:host']

    def domain_xmls(self, server):
        """The XML defined for ``server``, oldest first: (host, root)."""
        found = []
        for host, xml in self.defined:
            root = etree.fromstring(xml)
            if root.findtext('uuid') == server['id']:
                found.append((host, root))
        return found

    def last_domain(self, server):
        xmls = self.domain_xmls(server)
        self.assertTrue(xmls, 'no domain defined for %s' % server['id'])
        return xmls[-1]

    def domain(self, hostname, server):
        conn = self.computes[hostname].driver._host.get_connection()
        return conn.lookupByUUIDString(server['id'])

    def event_details(self, server, action):
        """The ``details`` of every event of ``server``'s ``action``."""
        details = []
        for act in self.admin_api.get_instance_actions(server['id']):
            if act['action'] != action:
                continue
            events = self.admin_api.get_instance_action_details(
                server['id'], act['request_id'])['events']
            details += [e.get('details') or '' for e in events]
        return details

    def root_traits(self, hostname):
        return set(self._get_provider_traits(
            self.compute_rp_uuids[hostname]))
