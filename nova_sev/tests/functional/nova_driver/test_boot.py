"""SEV guests booted through Nova 34 with the SEV driver: where they land,
the domain handed to libvirt, and the traits in placement.
"""

import copy
from unittest import mock

from lxml import etree
from nova.tests import fixtures as nova_fixtures
import os_resource_classes as orc
import os_traits

from nova_sev.tests.fixtures import sev_host
from nova_sev.tests.functional.nova_driver import base
from nova_sev.virt.libvirt import guest_plan
from nova_sev.virt import nova_compat

SEV_TRAITS = {os_traits.HW_CPU_X86_AMD_SEV, os_traits.HW_CPU_AMD_SEV}
OVMF_ES = '/usr/share/OVMF/OVMF_CODE_4M.sev-es.fd'


class TestSevBoot(base.SevServersTestBase):

    def test_each_way_of_asking(self):
        self.start_sev_compute('sev')
        self.start_sev_compute('plain', sev=False)

        # Traits: both spellings on the SEV host's root provider, none on
        # the other; Nova's own provider of SEV contexts keeps its
        # inventory: a child provider since 2025.2, the root before.
        self.assertEqual(SEV_TRAITS, SEV_TRAITS & self.root_traits('sev'))
        self.assertNotIn(os_traits.HW_CPU_X86_AMD_SEV_ES,
                         self.root_traits('sev'))
        self.assertFalse(SEV_TRAITS & self.root_traits('plain'))
        children = self.placement.get(
            '/resource_providers?in_tree=%s' % self.compute_rp_uuids['sev'],
            version='1.14').body['resource_providers']
        child = [rp for rp in children if rp['name'] == 'sev_amd_sev']
        if nova_compat.NOVA_MAJOR >= 32:
            self.assertEqual(1, len(child))
            contexts_rp = child[0]['uuid']
        else:
            self.assertEqual([], child)
            contexts_rp = self.compute_rp_uuids['sev']
        self.assertIn(orc.MEM_ENCRYPTION_CONTEXT,
                      self._get_provider_inventory(contexts_rp))

        requests = [('sev-trait', 'plain'), ('sev-old-trait', 'plain'),
                    ('plain', 'sev-trait'), ('mem-encryption', 'uefi'),
                    ('plain', 'mem-encryption')]
        for flavor, image in requests:
            server = self.boot(flavor, image)
            self.assertEqual('sev', self.host_of(server),
                             '%s/%s' % (flavor, image))
            host, root = self.last_domain(server)
            self.assertEqual('sev', host)
            self.assertSevDomain(root)

        # Without SEV, a flavor schedules on either host and gets nothing.
        for host in ('sev', 'plain'):
            server = self.boot('plain', host=host)
            self.assertEqual(host, self.host_of(server))
            self.assertPlainDomain(self.last_domain(server)[1])

    def test_hot_plugged_devices_get_iommu(self):
        # An operator who allows virtio-blk boot disks (newer guest
        # kernels): the image may then ask for it.
        self.flags(allow_virtio_blk_boot_disk=True, group='sev')
        self.start_sev_compute('sev')
        server = self.boot('sev-trait',
                           networks=[{'port': self.neutron.port_1['id']}])
        root = self.last_domain(server)[1]
        self.assertSevDomain(root)
        self.assertEqual('on', root.find(
            'devices/interface/driver').get('iommu'))

        port = self.neutron.create_port()['port']
        self._attach_interface(server, port['id'])
        self.attach_volume(server, nova_fixtures.CinderFixture.SWAP_OLD_VOL)
        nic, disk = [etree.fromstring(xml) for uuid, xml in self.attached
                     if uuid == server['id']]
        self.assertEqual('interface', nic.tag)
        self.assertEqual('on', nic.find('driver').get('iommu'))
        # The volume follows the guest onto virtio-scsi, whose controller
        # has the iommu.
        self.assertEqual('scsi', disk.find('target').get('bus'))

        virtio = self.boot('sev-trait', image='virtio-blk')
        root = self.last_domain(virtio)[1]
        self.assertEqual(['virtio', 'virtio'], [
            d.find('target').get('bus') for d in root.findall('devices/disk')])
        self.assertSevDomain(root, buses=None)
        self.attach_volume(virtio, nova_fixtures.CinderFixture.SWAP_NEW_VOL)
        [disk] = [etree.fromstring(xml) for uuid, xml in self.attached
                  if uuid == virtio['id']]
        self.assertEqual('virtio', disk.find('target').get('bus'))
        self.assertEqual('on', disk.find('driver').get('iommu'))

    def test_sev_es(self):
        # A host whose kernel, libvirt and OVMF also do SEV-ES.
        sev_host.write_kvm_amd_params(self.kvm_amd_params, sev='1',
                                      sev_es='1')
        descriptor = copy.deepcopy(base.SEV_DESCRIPTOR)
        descriptor['features'].append('amd-sev-es')
        descriptor['mapping']['executable']['filename'] = OVMF_ES
        self.write_descriptor('50-ovmf-sev-es.json', descriptor)
        self.start_sev_compute('sev-es', max_es_guests=15)
        self.assertEqual(SEV_TRAITS | {os_traits.HW_CPU_X86_AMD_SEV_ES},
                         (SEV_TRAITS | {os_traits.HW_CPU_X86_AMD_SEV_ES}) &
                         self.root_traits('sev-es'))
        server = self.boot('sev-es')
        root = self.last_domain(server)[1]
        self.assertSevDomain(root, policy=0x37, loader=OVMF_ES)

    def test_request_groups(self):
        # Placement puts a flavor that requires the SEV trait in a numbered
        # or suffixed request group on the SEV host: the guest must be SEV.
        self.start_sev_compute('sev')
        self.start_sev_compute('plain', sev=False)
        for prefix in ('trait1', 'trait2', 'trait_SEV'):
            group = prefix[len('trait'):]
            flavor = self._create_flavor(
                name='grouped%s' % group, memory_mb=2048, extra_spec={
                    '%s:%s' % (prefix, os_traits.HW_CPU_X86_AMD_SEV):
                        'required',
                    'resources%s:%s' % (group, orc.VCPU): '1'})
            self.flavors[prefix] = flavor
            server = self.boot(prefix)
            self.assertEqual('sev', self.host_of(server), prefix)
            self.assertSevDomain(self.last_domain(server)[1])

        # A group without resources: placement refuses the request, as
        # "nova-sev check-flavor" says.
        self.flavors['resourceless'] = self._create_flavor(
            name='resourceless', memory_mb=2048, extra_spec={
                'trait1:%s' % os_traits.HW_CPU_X86_AMD_SEV: 'required'})
        server = self.boot('resourceless', expected_state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        self.assertEqual([], self.domain_xmls(server))

    def test_one_plan_per_operation(self):
        # A boot makes its plan once (default_root_device_name makes it,
        # spawn and the domain use it); a hard reboot makes one more.
        self.start_sev_compute('sev')
        with mock.patch.object(guest_plan, 'make_guest_plan',
                               wraps=guest_plan.make_guest_plan) as made:
            server = self.boot('sev-trait')
            self.assertEqual(1, made.call_count)
            self.assertSevDomain(self.last_domain(server)[1])
            self._reboot_server(server, hard=True)
            self.assertEqual(2, made.call_count)
            self.assertSevDomain(self.last_domain(server)[1])
            # A guest without SEV never gets as far as a plan.
            self.boot('plain')
            self.assertEqual(2, made.call_count)
