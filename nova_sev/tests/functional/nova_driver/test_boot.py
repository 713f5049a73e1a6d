"""SEV guests booted through Nova 34 with the SEV driver: where they land,
the domain handed to libvirt, and the traits in placement.
"""

import os_resource_classes as orc
import os_traits

from nova_sev.tests.functional.nova_driver import base
from nova_sev.virt import memory

SEV_TRAITS = {os_traits.HW_CPU_X86_AMD_SEV, os_traits.HW_CPU_AMD_SEV}


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


class TestSevBoot(base.SevServersTestBase):

    def assertSevDomain(self, root, memory_mb=2048):
        lsec = root.findall('launchSecurity')
        self.assertEqual(1, len(lsec), 'exactly one <launchSecurity>')
        self.assertEqual('sev', lsec[0].get('type'))
        self.assertEqual(str(base.CBITPOS), lsec[0].findtext('cbitpos'))
        self.assertEqual('1', lsec[0].findtext('reducedPhysBits'))
        self.assertEqual(0x33, int(lsec[0].findtext('policy'), 16))
        self.assertIn('q35', root.find('os/type').get('machine'))
        self.assertEqual(base.OVMF_CODE, root.findtext('os/loader'))
        self.assertEqual(base.OVMF_VARS,
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
        # The boot disk is not virtio-blk: Nova itself put it on
        # virtio-scsi, as the image left the bus open.
        buses = {d.find('target').get('bus')
                 for d in root.findall('devices/disk')}
        self.assertEqual({'scsi'}, buses)
        self.assertIn('virtio-scsi', [
            c.get('model') for c in root.findall('devices/controller')
            if c.get('type') == 'scsi'])

    def assertPlainDomain(self, root):
        self.assertIsNone(root.find('launchSecurity'))
        self.assertIsNone(root.find('memoryBacking/locked'))
        self.assertIsNone(root.find('memtune/hard_limit'))

    def test_each_way_of_asking(self):
        self.start_sev_compute('sev')
        self.start_sev_compute('plain', sev=False)

        # Traits: both spellings on the SEV host's root provider, none on
        # the other; Nova's own child provider keeps its inventory.
        self.assertEqual(SEV_TRAITS, SEV_TRAITS & self.root_traits('sev'))
        self.assertNotIn(os_traits.HW_CPU_X86_AMD_SEV_ES,
                         self.root_traits('sev'))
        self.assertFalse(SEV_TRAITS & self.root_traits('plain'))
        children = self.placement.get(
            '/resource_providers?in_tree=%s' % self.compute_rp_uuids['sev'],
            version='1.14').body['resource_providers']
        child = [rp for rp in children if rp['name'] == 'sev_amd_sev']
        self.assertEqual(1, len(child))
        self.assertIn(orc.MEM_ENCRYPTION_CONTEXT,
                      self._get_provider_inventory(child[0]['uuid']))

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
