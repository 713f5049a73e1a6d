"""SEV-SNP guests booted through Nova with the SEV driver, beside an
SEV-only host and a plain host: where they land, the domain handed to
libvirt, the trait, failing closed, and the ASID pool SNP shares with
SEV-ES.

Nova knows SEV-SNP since 2026.2 (os-traits 3.9.0 has its trait, the API
its encryption model). On the releases before, the host cannot report the
trait and the API refuses the model: ``TestSevSnpUnknownToNova`` holds
those releases to failing closed instead (``load_tests`` runs the class of
the Nova installed).
"""

import base64
import hashlib
import time

from nova.tests.functional.api import client
import os_traits

from nova_sev.tests.fixtures import sev_host
from nova_sev.tests.functional.nova_driver import base
from nova_sev.virt import nova_compat

SNP = nova_compat.HW_CPU_X86_AMD_SEV_SNP
SNP_LIBVIRT_VERSION = 10005000
SNP_QEMU_VERSION = 9001000
OVMF_STATELESS = '/usr/share/ovmf/OVMF.fd'
SNP_DESCRIPTOR = {
    'description': 'Stateless OVMF with AMD SEV-SNP (test)',
    'interface-types': ['uefi'],
    'mapping': {'device': 'memory', 'filename': OVMF_STATELESS},
    'targets': [{'architecture': 'x86_64', 'machines': ['pc-q35-*']}],
    'features': ['amd-sev', 'amd-sev-snp'],
    'tags': [],
}
# The flavors that ask for SEV-SNP.
SNP_FLAVORS = {
    'snp-trait': {'trait:HW_CPU_X86_AMD_SEV_SNP': 'required'},
    'snp-model': {'hw:mem_encryption': 'true',
                  'hw:mem_encryption_model': 'amd-sev-snp'},
}
# Nova's fake libvirt reports SEV with <sev>; libvirt >= 10.5 adds the
# launch security types, sev-snp among them, on an SNP host.
LAUNCH_SECURITY_SNP = sev_host.LAUNCH_SECURITY % '\n'.join(
    '        <value>%s</value>' % t for t in sev_host.SNP_SECTYPES)


def snp_features(max_guests: int = 15, max_es_guests: int = 15) -> str:
    return base.sev_features(max_guests, max_es_guests).replace(
        '\n  </features>', '\n%s\n  </features>' % LAUNCH_SECURITY_SNP)


class SevSnpTestBase(base.SevServersTestBase):

    def setUp(self):
        super().setUp()
        # Nova's own kernel check (its SEV-SNP child provider) reads the
        # fixture; nova-sev's reads each host's [sev] directory.
        self.amd_sev.sev_snp = True
        self.write_descriptor('30-ovmf-sev-snp.json', SNP_DESCRIPTOR)
        for name, props in (
                ('snp-trait', {'trait:HW_CPU_X86_AMD_SEV_SNP': 'required'}),
                ('snp-model', {'hw_mem_encryption': 'True',
                               'hw_mem_encryption_model': 'amd-sev-snp',
                               'hw_firmware_type': 'uefi',
                               'hw_firmware_stateless': 'True'}),
                ('uefi-stateless', {'hw_firmware_type': 'uefi',
                                    'hw_firmware_stateless': 'True'}),
                ('kernel', {'kernel_id': self.images['plain'],
                            'ramdisk_id': None})):
            self.add_image(name, props)

    def _start(self, hostname, snp=True, sev=True, max_es_guests=15):
        """Start a compute whose kvm_amd parameters are its own: SNP
        (sev_snp on, sev-snp among the launch security types), SEV and
        SEV-ES only, or no SEV at all.
        """
        params = self.kvm_amd_params + '-' + hostname
        sev_host.write_kvm_amd_params(params, sev='1' if sev else '0',
                                      sev_es='1',
                                      sev_snp='Y' if snp else None)
        self.flags(kvm_amd_parameters_dir=params, group='sev')
        self.host_features = dict(self.host_features)
        self.host_features[hostname] = (
            snp_features(max_es_guests=max_es_guests) if snp else
            base.sev_features(max_es_guests=max_es_guests) if sev else
            base.NO_SEV_FEATURES)
        versions = {}
        if snp:
            # The first libvirt and QEMU with SEV-SNP; Nova reports
            # COMPUTE_SECURITY_STATELESS_FIRMWARE from libvirt 8.6 on.
            versions = {'libvirt_version': SNP_LIBVIRT_VERSION,
                        'qemu_version': SNP_QEMU_VERSION}
        return self.start_compute(hostname, host_info=base.fake_host_info(),
                                  **versions)

    def assertSnpDomain(self, root, server, kernel_hashes='no'):
        lsec = root.findall('launchSecurity')
        self.assertEqual(1, len(lsec), 'exactly one <launchSecurity>')
        lsec = lsec[0]
        self.assertEqual({'type': 'sev-snp', 'authorKey': 'no',
                          'vcek': 'yes', 'kernelHashes': kernel_hashes},
                         dict(lsec.attrib))
        self.assertEqual(0x30000, int(lsec.findtext('policy'), 16))
        self.assertEqual(str(base.CBITPOS), lsec.findtext('cbitpos'))
        self.assertEqual(base64.b64encode(hashlib.sha256(
            b'nova-sev-host-data-v1:' + server['id'].encode()).digest()
        ).decode(), lsec.findtext('hostData'))
        self.assertIn('q35', root.find('os/type').get('machine'))
        self.assertEqual(OVMF_STATELESS, root.findtext('os/loader'))
        self.assertEqual('rom', root.find('os/loader').get('type'))
        self.assertIsNone(root.find('os/nvram'))
        self.assertIsNone(root.find('memoryBacking/locked'))
        self.assertIsNone(root.find('memtune/hard_limit'))
        devices = base.virtio_devices(root)
        self.assertTrue(devices)
        for dev in devices:
            self.assertEqual('on', dev.find('driver').get('iommu'),
                             'no iommu on %s' % dev.tag)


class TestSevSnp(SevSnpTestBase):

    def setUp(self):
        super().setUp()
        for name, specs in SNP_FLAVORS.items():
            self.flavors[name] = self._create_flavor(
                name=name, memory_mb=2048, extra_spec=specs)

    def test_each_way_of_asking(self):
        self._start('snp')
        self._start('sev', snp=False)
        self._start('plain', snp=False, sev=False)
        self.assertIn(SNP, self.root_traits('snp'))
        # With sev_snp on, SEV-ES is off (AMD's CVE-2025-48514 fix).
        self.assertNotIn(os_traits.HW_CPU_X86_AMD_SEV_ES,
                         self.root_traits('snp'))
        self.assertNotIn(SNP, self.root_traits('sev'))
        self.assertIn(os_traits.HW_CPU_X86_AMD_SEV, self.root_traits('sev'))
        self.assertNotIn(SNP, self.root_traits('plain'))

        for flavor, image in (('snp-trait', 'plain'),
                              ('plain', 'snp-trait'),
                              ('snp-model', 'uefi-stateless'),
                              ('plain', 'snp-model')):
            server = self.boot(flavor, image)
            self.assertEqual('snp', self.host_of(server),
                             '%s/%s' % (flavor, image))
            host, root = self.last_domain(server)
            self.assertEqual('snp', host)
            self.assertSnpDomain(root, server)

        # SEV still works on the SNP host.
        server = self.boot('sev-trait', host='snp')
        self.assertSevDomainOnSnpHost(server)

    def assertSevDomainOnSnpHost(self, server):
        self.assertEqual('snp', self.host_of(server))
        root = self.last_domain(server)[1]
        self.assertSevDomain(root)

    def test_no_snp_host(self):
        self._start('sev', snp=False)
        self._start('plain', snp=False, sev=False)
        # Placement finds no host with the trait, by any way of asking.
        for flavor, image in (('snp-trait', 'plain'),
                              ('snp-model', 'uefi-stateless')):
            server = self.boot(flavor, image, expected_state='ERROR')
            self.assertIn('No valid host', server['fault']['message'])
            self.assertEqual([], self.domain_xmls(server))

    def test_fail_closed_when_the_host_loses_snp(self):
        self._start('snp')
        self.assertIn(SNP, self.root_traits('snp'))
        # libvirt reconnects offering SEV but no longer SEV-SNP; placement
        # still has the trait until the next periodic update.
        compute = self.computes['snp']
        compute.driver._host.get_connection()._domain_capability_features = (
            base.sev_features(max_es_guests=15))
        compute.driver._handle_conn_event(True, None)
        server = self.boot('snp-trait', expected_state='ERROR')
        # The user reads why (Nova cuts the fault at 255 characters; the
        # log has it whole), and nothing was defined.
        self.assertIn('aborted: Invalid input received: SEV-SNP was requested '
                      '(flavor extra spec trait:HW_CPU_X86_AMD_SEV_SNP='
                      'required) but this host cannot run SEV-SNP guests',
                      server['fault']['message'])
        self.assertIn('cannot run SEV-SNP guests: libvirt domain capabilities '
                      'offer no sev-snp launch security',
                      self.stdlog.logger.output)
        self.assertEqual([], self.domain_xmls(server))
        self._run_periodics()
        self.assertNotIn(SNP, self.root_traits('snp'))

    def test_snp_and_sev_es_share_the_pool(self):
        # Two ES/SNP ASID slots: two SNP guests fill them.
        self._start('snp', max_es_guests=2)
        first = self.boot('snp-trait')
        second = self.boot('snp-trait')
        self.assertEqual(['snp', 'snp'], [self.host_of(s)
                                          for s in (first, second)])
        third = self.boot('snp-trait', host='snp', expected_state='ERROR')
        self.assertEqual([], self.domain_xmls(third))
        self.assertIn('all 2 ES/SNP ASID slots (libvirt maxESGuests) are in '
                      'use by SEV-ES and SEV-SNP guests',
                      self.stdlog.logger.output)
        # Plain SEV guests draw on the other pool.
        sev = self.boot('sev-trait', host='snp')
        self.assertEqual('snp', self.host_of(sev))

    def test_direct_kernel_boot_gets_kernel_hashes(self):
        self._start('snp')
        server = self.boot('snp-trait', image='kernel')
        self.assertSnpDomain(self.last_domain(server)[1], server,
                             kernel_hashes='yes')


class TestSevSnpUnknownToNova(SevSnpTestBase):
    """Nova 2025.1 to 2026.1 on an SEV-SNP host: every way of asking for
    SEV-SNP is refused or built as SEV-SNP, never as a plain or SEV guest.
    """

    def test_api_refuses_the_flavors(self):
        # Nova's API checks a flavor's traits against os-traits; 2025.1
        # knows no hw:mem_encryption_model, 2025.2 and 2026.1 no
        # amd-sev-snp value for it.
        for name, specs in SNP_FLAVORS.items():
            error = self.assertRaises(
                client.OpenStackApiException, self._create_flavor,
                name=name, memory_mb=2048, extra_spec=specs)
            self.assertEqual(400, error.response.status_code, name)

    def test_each_way_of_asking_fails_closed(self):
        self._start('snp')
        self._start('sev', snp=False)
        # No SNP trait (placement would refuse the whole update), SEV's are.
        self.assertNotIn(SNP, self.root_traits('snp'))
        self.assertIn(os_traits.HW_CPU_X86_AMD_SEV, self.root_traits('snp'))
        for image in ('snp-trait', 'snp-model'):
            self.assertSnpOrRefused('plain', image)
        # SEV still works on the SNP host.
        server = self.boot('sev-trait', host='snp')
        self.assertSevDomain(self.last_domain(server)[1])

    def assertSnpOrRefused(self, flavor, image):
        try:
            server = self.api.post_server({'server': self._build_server(
                image_uuid=self.images[image],
                flavor_id=self.flavors[flavor], networks='none')})
        except client.OpenStackApiException as e:
            # Refused by Nova's API (an image property it cannot read).
            self.assertEqual(400, e.response.status_code)
            return
        server = self.built(server)
        domains = self.domain_xmls(server)
        if server['status'] == 'ERROR':
            self.assertEqual([], domains, '%s/%s' % (flavor, image))
        else:
            self.assertSnpDomain(domains[-1][1], server)

    def built(self, server):
        """``server`` once its build has ended, either way."""
        for _ in range(100):
            server = self.api.get_server(server['id'])
            if server['status'] != 'BUILD':
                return server
            time.sleep(0.1)
        self.fail('server %s still building' % server['id'])


def load_tests(loader, tests, pattern):
    """The SEV-SNP tests of the Nova installed (module docstring)."""
    case = (TestSevSnp if nova_compat.SNP_TRAIT_KNOWN
            else TestSevSnpUnknownToNova)
    return loader.loadTestsFromTestCase(case)
