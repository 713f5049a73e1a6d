"""SEV guests checked by the host's real libvirt (embedded QEMU driver).

The domains nova-sev produces from realistic Nova guests must validate
against libvirt's own RelaxNG schema (``virt-xml-validate``), define on a
host whose QEMU capabilities claim SEV (design.md §6), and give a QEMU
command line with the ``sev-guest`` object, ``confidential-guest-support``,
``mem-lock=on`` and ``iommu_platform`` on every virtio device; a host
without SEV refuses the same domain. Guests with locked memory cannot start
in this sandbox, so definition and command line are tested, not boot.

``domainXMLToNative`` rebuilds every NIC from its MAC and model only
(libvirt's qemuConnectDomainXMLToNative clears the rest), so NICs'
``iommu`` is checked in the XML libvirt keeps after defining instead.
"""

import dataclasses
import itertools
import json
import os
import shlex
import subprocess

import fixtures
from lxml import etree
import testtools

from nova_sev.attestation import session
from nova_sev.attestation import sev_cert
from nova_sev import exception
from nova_sev.tests.fixtures import psp
from nova_sev.tests.fixtures import sev_host
from nova_sev.tests.functional import embedded
from nova_sev.virt import hardware
from nova_sev.virt.libvirt import designer
from nova_sev.virt.libvirt import firmware as fw
from nova_sev.virt.libvirt import guest_plan as gp
from nova_sev.virt.libvirt import host
from nova_sev.virt.libvirt import sev_guest

DATA = os.path.join(os.path.dirname(__file__), '..', 'data')
FIRMWARE_DIRS = ['/usr/share/qemu/firmware']
VALIDATE = '/usr/bin/virt-xml-validate'
# The schema virt-xml-validate checks "domain" documents against.
DOMAIN_RNG = '/usr/share/libvirt/schemas/domain.rng'
SEV_TRAIT = {'trait:HW_CPU_X86_AMD_SEV': 'required'}


def _data(name: str) -> str:
    with open(os.path.join(DATA, name), encoding='utf-8') as f:
        return f.read()


def _argv_json(args: list[str], flag: str) -> list[dict]:
    return [json.loads(args[i + 1]) for i, arg in enumerate(args[:-1])
            if arg == flag and args[i + 1].startswith('{')]


class SevGuestRealLibvirtTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.qemu = self.useFixture(embedded.EmbeddedQemuFixture(sev=True))
        result = self.qemu.call_one('domcaps')
        self.assertTrue(result['ok'], result)
        self.domcaps = host.parse_domain_capabilities(result['result'])
        self.firmware = fw.load_descriptors(FIRMWARE_DIRS)

    def _caps(self, sev_es: bool = False, firmware=None):
        params = {'sev': host.KvmAmdParam('sev', True),
                  'sev_es': host.KvmAmdParam('sev_es', sev_es)}
        return host.detect_sev(self.domcaps, params,
                               firmware if firmware is not None
                               else self.firmware)

    def _design(self, domain_xml, extra_specs=None, image_props=None,
                caps=None, options=None):
        xml, plan = sev_guest.design_sev_domain(
            domain_xml, extra_specs or SEV_TRAIT, image_props or {},
            caps or self._caps(), options or gp.SevGuestOptions(
                firmware_descriptor_dirs=tuple(FIRMWARE_DIRS)))
        self.assertIsNotNone(plan)
        return xml, plan

    def assertValid(self, xml: str) -> None:
        path = os.path.join(self.tmp, 'domain.xml')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(xml)
        proc = subprocess.run([VALIDATE, path, 'domain'],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn('validates', proc.stdout + proc.stderr)

    def assertSevArgv(self, argv: str, policy: int) -> list[dict]:
        """Check the SEV parts of a QEMU command line; its virtio devices."""
        args = shlex.split(argv)
        sev = [o for o in _argv_json(args, '-object')
               if o['qom-type'] == 'sev-guest']
        self.assertEqual(1, len(sev), argv)
        self.assertEqual((47, 1, policy), (sev[0]['cbitpos'],
                                           sev[0]['reduced-phys-bits'],
                                           sev[0]['policy']))
        machine = args[args.index('-machine') + 1]
        self.assertIn('confidential-guest-support=%s' % sev[0]['id'],
                      machine)
        self.assertIn('pc-q35-', machine)
        self.assertEqual('mem-lock=on', args[args.index('-overcommit') + 1])
        virtio = [d for d in _argv_json(args, '-device')
                  if d['driver'].startswith(('virtio-', 'vhost-'))
                  and not d['driver'].startswith('virtio-net')]
        for device in virtio:
            self.assertIs(True, device.get('iommu_platform'), device)
        return virtio

    def assertDefinedWithIommu(self, xml: str) -> etree._Element:
        """Define on the SEV host; libvirt keeps launchSecurity and iommu."""
        result = self.qemu.call_one('dumpxml', xml=xml)
        self.assertTrue(result['ok'], result)
        kept = etree.fromstring(result['result'])
        self.assertEqual('sev', kept.find('launchSecurity').get('type'))
        nics = kept.xpath("devices/interface[model/@type='virtio']")
        self.assertNotEqual([], nics)
        for nic in nics:
            self.assertEqual('on', nic.find('driver').get('iommu'))
        return kept

    def assertRefusedWithoutSev(self, xml: str) -> None:
        plain = self.useFixture(embedded.EmbeddedQemuFixture(sev=False))
        results = plain.call([{'op': 'define', 'xml': xml},
                              {'op': 'argv', 'xml': xml}])
        for result in results:
            self.assertFalse(result['ok'], result)
            self.assertIn(embedded.no_sev_define_error(
                embedded.host_versions()['libvirt']), result['error'])

    def _define_and_argv(self, xml: str) -> str:
        define, argv = self.qemu.call([{'op': 'define', 'xml': xml},
                                       {'op': 'argv', 'xml': xml}])
        self.assertTrue(define['ok'], define)
        self.assertTrue(argv['ok'], argv)
        return argv['result']

    def test_nova_guest(self):
        xml, plan = self._design(_data('nova-guest-q35.xml'))
        self.assertEqual(0x33, plan.policy)
        self.assertValid(xml)
        virtio = self.assertSevArgv(self._define_and_argv(xml), 51)
        self.assertEqual(
            ['virtio-balloon-pci', 'virtio-keyboard-pci', 'virtio-rng-pci',
             'virtio-scsi-pci', 'virtio-serial-pci', 'virtio-vga'],
            sorted(d['driver'] for d in virtio))
        kept = self.assertDefinedWithIommu(xml)
        self.assertEqual('4718592', kept.findtext('memtune/hard_limit'))
        self.assertEqual('/usr/share/OVMF/OVMF_CODE_4M.fd',
                         kept.findtext('os/loader'))
        self.assertRefusedWithoutSev(xml)

    def test_all_virtio_devices(self):
        xml, plan = self._design(_data('all-virtio-devices.xml'),
                                 image_props={'hw_mem_encryption': 'true'})
        self.assertValid(xml)
        argv = self._define_and_argv(xml)
        virtio = self.assertSevArgv(argv, 51)
        self.assertEqual(
            ['vhost-vsock-pci', 'virtio-9p-pci', 'virtio-balloon-pci',
             'virtio-keyboard-pci', 'virtio-mouse-pci', 'virtio-rng-pci',
             'virtio-scsi-pci', 'virtio-scsi-pci', 'virtio-serial-pci',
             'virtio-vga'], sorted(d['driver'] for d in virtio))
        # The IDE CD-ROM went to SATA (QEMU's AHCI bus is "ide.N"), the
        # virtio-blk boot disk to virtio-scsi.
        self.assertNotIn('virtio-blk', argv)
        self.assertIn('"driver":"ide-cd"', argv)
        self.assertIn('"driver":"scsi-hd"', argv)
        self.assertDefinedWithIommu(xml)
        self.assertRefusedWithoutSev(xml)

    def test_virtio_blk_allowed(self):
        xml, plan = self._design(
            _data('all-virtio-devices.xml'),
            image_props={'hw_disk_bus': 'virtio'},
            options=gp.SevGuestOptions(allow_virtio_blk_boot_disk=True))
        self.assertValid(xml)
        virtio = self.assertSevArgv(self._define_and_argv(xml), 51)
        self.assertIn('virtio-blk-pci', [d['driver'] for d in virtio])

    def test_sev_es(self):
        # Debian's OVMF lists no amd-sev-es: a descriptor that does, for
        # the same build, lets the plan choose it.
        es_fw = fw.FirmwareDescriptor(
            path=os.path.join(self.tmp, '10-sev-es.json'),
            interface_types=('uefi',), device='flash',
            executable='/usr/share/OVMF/OVMF_CODE_4M.fd',
            nvram_template='/usr/share/OVMF/OVMF_VARS_4M.fd',
            targets=(fw.FirmwareTarget('x86_64', ('pc-q35-*',)),),
            features=(fw.FEATURE_AMD_SEV, fw.FEATURE_AMD_SEV_ES))
        # The injected capability cache gives no SEV-ES ASID count, which
        # libvirt reports as maxESGuests=0: leave it unknown instead.
        self.domcaps.sev.max_es_guests = None
        caps = self._caps(sev_es=True, firmware=self.firmware + [es_fw])
        xml, plan = self._design(
            _data('nova-guest-q35.xml'),
            extra_specs={'trait:HW_CPU_X86_AMD_SEV_ES': 'required'},
            caps=caps)
        self.assertEqual(hardware.SevMode.SEV_ES, plan.mode)
        self.assertValid(xml)
        self.assertSevArgv(self._define_and_argv(xml), 0x37)

    def test_attested_launch_session(self):
        # The domain of an attested launch: stateless firmware and the
        # owner's <dhCert>/<session>.
        stateless = fw.FirmwareDescriptor(
            path=os.path.join(self.tmp, '50-ovmf-amdsev.json'),
            interface_types=('uefi',), device=fw.DEVICE_MEMORY,
            executable=embedded.STATELESS_OVMF, nvram_template=None,
            targets=(fw.FirmwareTarget('x86_64', ('pc-q35-*',)),),
            features=(fw.FEATURE_AMD_SEV,))
        xml, plan = sev_guest.design_sev_domain(
            _data('nova-guest-q35.xml'), SEV_TRAIT, {},
            self._caps(firmware=self.firmware + [stateless]),
            gp.SevGuestOptions(), attested=True)
        self.assertTrue(plan.attested)
        platform = psp.FakePlatform()
        launch = session.new_session(
            sev_cert.parse_sev_cert(platform.pdh_cert, 'PDH'), plan.policy)
        root = designer.parse_domain(xml)
        designer.write_launch_session(root, launch.godh_b64,
                                      launch.session_b64)
        xml = etree.tostring(root, encoding='unicode')
        self.assertValid(xml)
        argv = self._define_and_argv(xml)
        sev = [o for o in _argv_json(shlex.split(argv), '-object')
               if o['qom-type'] == 'sev-guest'][0]
        # libvirt hands QEMU the owner's certificate and session as files
        # it writes beside the domain; argv names them.
        self.assertTrue(sev['dh-cert-file'].endswith('dh_cert.base64'), sev)
        self.assertTrue(sev['session-file'].endswith('session.base64'),
                        sev)
        self.assertEqual(0x33, sev['policy'])
        # The stateless build is a ROM (-bios), with no NVRAM.
        self.assertIn(embedded.STATELESS_OVMF, shlex.split(argv))
        kept = etree.fromstring(self.qemu.call_one('dumpxml',
                                                   xml=xml)['result'])
        self.assertEqual(launch.godh_b64,
                         kept.findtext('launchSecurity/dhCert'))
        self.assertEqual(launch.session_b64,
                         kept.findtext('launchSecurity/session'))
        self.assertIsNone(kept.find('os/nvram'))

    def test_huge_pages(self):
        base = _data('nova-guest-q35.xml').replace(
            '<vcpu', "<memoryBacking><hugepages/></memoryBacking><vcpu")
        xml, plan = self._design(base)
        self.assertIsNone(plan.hard_limit_kib)
        self.assertValid(xml)
        # No hugetlbfs here: libvirt defines the guest but cannot build
        # its command line.
        kept = self.assertDefinedWithIommu(xml)
        self.assertIsNone(kept.find('memtune/hard_limit'))
        self.assertIsNotNone(kept.find('memoryBacking/locked'))
        self.assertIsNotNone(kept.find('memoryBacking/hugepages'))

    def test_every_produced_domain_validates_and_defines(self):
        nova = _data('nova-guest-q35.xml')
        bases = (
            nova, _data('all-virtio-devices.xml'),
            nova.replace('pc-q35-7.2', 'q35'),
            nova.replace(" machine='pc-q35-7.2'", ''),
            nova.replace("dev='sda' bus='sata'", "dev='hdc' bus='ide'"),
            nova.replace("<features>", "<features><smm state='on'/>"),
            nova.replace('<vcpu', "<memtune><soft_limit unit='KiB'>1024"
                         "</soft_limit></memtune><vcpu"),
        )
        requests = (
            ({'trait:HW_CPU_X86_AMD_SEV': 'required'}, {}),
            ({'trait:HW_CPU_AMD_SEV': 'required'}, {'hw_disk_bus': 'scsi'}),
            ({}, {'hw_mem_encryption': 'true', 'hw_video_ram': '16'}),
            ({'hw:mem_encryption': 'True'},
             {'hw_machine_type': 'pc-q35-7.2', 'hw_disk_bus': 'sata'}),
        )
        options = (gp.SevGuestOptions(),
                   gp.SevGuestOptions(policy='0x0b',
                                      allow_virtio_blk_boot_disk=True))
        schema = etree.RelaxNG(etree.parse(DOMAIN_RNG))
        produced = []
        for i, (base, (specs, props)) in enumerate(
                itertools.product(bases, requests)):
            xml, plan = self._design(base, specs, props,
                                     options=options[i % len(options)])
            if not schema.validate(etree.fromstring(xml.encode())):
                self.fail('%s\n%s' % (schema.error_log, xml))
            produced.append(xml)
        results = self.qemu.call([{'op': 'define', 'xml': xml}
                                  for xml in produced])
        for xml, result in zip(produced, results):
            self.assertTrue(result['ok'], '%s\n%s' % (result, xml))
        self.assertValid(produced[-1])

    def _guest_xml(self, uri, *args):
        params = os.path.join(self.tmp, 'parameters')
        sev_host.write_kvm_amd_params(params, sev='1', sev_es='0')
        domain = os.path.join(self.tmp, 'nova.xml')
        with open(domain, 'w', encoding='utf-8') as f:
            f.write(_data('nova-guest-q35.xml'))
        return embedded.run_cli('guest-xml', '--domain', domain,
                                '--connection', uri,
                                '--kvm-amd-params', params, *args)

    def test_guest_xml_command(self):
        proc = self._guest_xml(self.qemu.uri, '--extra-spec',
                               'trait:HW_CPU_AMD_SEV=required')
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertIn('SEV guest: policy 0x0033', proc.stderr)
        self.assertValid(proc.stdout)
        self.assertSevArgv(self._define_and_argv(proc.stdout), 51)

    def test_guest_xml_command_refused_by_host(self):
        plain = self.useFixture(embedded.EmbeddedQemuFixture(sev=False))
        proc = self._guest_xml(plain.uri, '--image-property',
                               'hw_mem_encryption=true')
        self.assertEqual(1, proc.returncode, proc.stderr)
        self.assertEqual('', proc.stdout)
        self.assertEqual(1, len(proc.stderr.strip().splitlines()),
                         proc.stderr)
        self.assertIn("<sev supported='no'/>", proc.stderr)
        self.assertIn('hw_mem_encryption=true', proc.stderr)


SNP_TRAIT = {'trait:HW_CPU_X86_AMD_SEV_SNP': 'required'}
SNP_REQUESTS = (
    (SNP_TRAIT, {}),
    ({}, {'trait:HW_CPU_X86_AMD_SEV_SNP': 'required',
          'hw_firmware_stateless': 'true'}),
    ({'hw:mem_encryption': 'true',
      'hw:mem_encryption_model': 'amd-sev-snp'}, {}),
    ({}, {'hw_mem_encryption': 'true',
          'hw_mem_encryption_model': 'amd-sev-snp',
          'hw_disk_bus': 'sata'}),
)


class SevSnpGuestRealLibvirtTestCase(testtools.TestCase):
    """SEV-SNP guests judged by the installed libvirt and QEMU.

    What is expected follows the libvirt read at run time: from libvirt
    10.5 on (Debian 13: libvirt 11.3, QEMU 10.0) SNP is injected into the
    capability cache (the sev-guest and sev-snp-guest flags and the <sev>
    element) and every SNP guest must validate, define and show its
    sev-snp-guest object; a root with SEV alone refuses it. The stateless
    OVMF build gets a descriptor with amd-sev-snp in the host's
    /etc/qemu/firmware for the test (the embed root's etc/qemu/firmware is
    not read; the CI runs the tests as root), removed afterwards. Before
    10.5 (Debian 12: libvirt 9.0) detection must say SNP is not usable
    because libvirt is too old, an SNP request must fail closed, and
    libvirt itself must refuse an SNP domain.
    """

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.qemu = self.useFixture(embedded.EmbeddedQemuFixture(
            sev=True, snp=True))
        version, domcaps = self.qemu.call([{'op': 'version'},
                                           {'op': 'domcaps'}])
        self.assertTrue(version['ok'] and domcaps['ok'], (version, domcaps))
        self.libvirt_has_snp = (version['result'] >=
                                embedded.LIBVIRT_SNP_VERSION)
        # libvirt itself must agree: it keeps the SNP flag exactly when it
        # is new enough.
        self.assertEqual(self.libvirt_has_snp, self.qemu.snp_injected)
        self.domcaps = host.parse_domain_capabilities(domcaps['result'])
        # libvirt reads the ASID counts from the host's CPU, not from the
        # cache: a host without SEV reports maxESGuests=0. Leave it unknown
        # (a real SNP host reports its ES/SNP slots).
        self.assertEqual(0, self.domcaps.sev.max_es_guests)
        self.domcaps.sev.max_es_guests = None
        if self.libvirt_has_snp:
            self.useFixture(embedded.SnpFirmwareDescriptorFixture())
            self.firmware = fw.load_descriptors(
                [embedded.HOST_FIRMWARE_DIR] + FIRMWARE_DIRS)
        else:
            # libvirt before 10.5 does not know the amd-sev-snp feature:
            # leave the host's directory alone and hand detection the
            # descriptor, so that libvirt's age is the only reason left.
            self.firmware = fw.load_descriptors(FIRMWARE_DIRS) + [
                fw.parse_descriptor('99-snp.json',
                                    embedded.snp_firmware_descriptor())]

    def _caps(self):
        params = {'sev': host.KvmAmdParam('sev', True),
                  'sev_es': host.KvmAmdParam('sev_es', True),
                  'sev_snp': host.KvmAmdParam('sev_snp', True)}
        return host.detect_sev(self.domcaps, params, self.firmware)

    def _design(self, domain_xml, extra_specs=SNP_TRAIT, image_props=None,
                caps=None):
        return sev_guest.design_sev_domain(
            domain_xml, extra_specs, image_props or {}, caps or self._caps(),
            gp.SevGuestOptions())

    def test_detection(self):
        caps = self._caps()
        self.assertTrue(caps.sev_usable, caps.sev_reasons)
        # With sev_snp on, SEV-ES is off whatever else holds.
        self.assertFalse(caps.sev_es_usable)
        self.assertIn('CVE-2025-48514', ' '.join(caps.sev_es_reasons))
        if self.libvirt_has_snp:
            self.assertIn('sev-snp', self.domcaps.launch_security.sectypes)
            self.assertTrue(caps.sev_snp_usable, caps.sev_snp_reasons)
            self.assertEqual(embedded.STATELESS_OVMF,
                             caps.snp_firmware[0].executable)
        else:
            self.assertFalse(caps.sev_snp_usable)
            self.assertEqual(1, len(caps.sev_snp_reasons),
                             caps.sev_snp_reasons)
            self.assertIn('libvirt or QEMU is too old',
                          caps.sev_snp_reasons[0])
            self.assertIn('libvirt >= 10.5', caps.sev_snp_reasons[0])

    def _snp_argv(self, argv: str, host_data: str,
                  kernel_hashes: bool = False) -> None:
        args = shlex.split(argv)
        snp = [o for o in _argv_json(args, '-object')
               if o['qom-type'] == 'sev-snp-guest']
        self.assertEqual(1, len(snp), argv)
        self.assertEqual(47, snp[0]['cbitpos'])
        self.assertEqual(1, snp[0]['reduced-phys-bits'])
        # 0x00030000, printed in decimal.
        self.assertEqual(196608, snp[0]['policy'])
        self.assertIs(False, snp[0]['author-key-enabled'])
        self.assertIs(False, snp[0]['vcek-disabled'])
        self.assertEqual(host_data, snp[0]['host-data'])
        self.assertIs(kernel_hashes, snp[0].get('kernel-hashes', False))
        machine = args[args.index('-machine') + 1]
        self.assertIn('confidential-guest-support=%s' % snp[0]['id'],
                      machine)
        self.assertIn('pc-q35-', machine)
        self.assertEqual('mem-lock=off', args[args.index('-overcommit') + 1])
        self.assertNotIn('pflash', argv)
        virtio = [d for d in _argv_json(args, '-device')
                  if d['driver'].startswith(('virtio-', 'vhost-'))
                  and not d['driver'].startswith('virtio-net')]
        self.assertNotEqual([], virtio)
        for device in virtio:
            self.assertIs(True, device.get('iommu_platform'), device)

    def test_snp_guests(self):
        nova = _data('nova-guest-q35.xml')
        uuid = etree.fromstring(nova).findtext('uuid')
        if not self.libvirt_has_snp:
            self._check_fails_closed(nova)
            return
        schema = etree.RelaxNG(etree.parse(DOMAIN_RNG))
        bases = (nova, _data('all-virtio-devices.xml'),
                 nova.replace('</type>', '</type><kernel>/boot/vmlinuz'
                              '</kernel><cmdline>console=ttyS0</cmdline>',
                              1))
        produced = []
        for base, (specs, props) in itertools.product(bases, SNP_REQUESTS):
            xml, plan = self._design(base, specs, props)
            self.assertEqual(hardware.SevMode.SEV_SNP, plan.mode)
            if not schema.validate(etree.fromstring(xml.encode())):
                self.fail('%s\n%s' % (schema.error_log, xml))
            produced.append((xml, plan))
        self.assertValid(produced[0][0])
        results = self.qemu.call(
            [op for xml, _plan in produced
             for op in ({'op': 'define', 'xml': xml},
                        {'op': 'argv', 'xml': xml})])
        for i, (xml, plan) in enumerate(produced):
            define, argv = results[2 * i], results[2 * i + 1]
            self.assertTrue(define['ok'], '%s\n%s' % (define, xml))
            self.assertTrue(argv['ok'], '%s\n%s' % (argv, xml))
            self._snp_argv(argv['result'], plan.snp.host_data,
                           plan.snp.kernel_hashes)
        self.assertEqual(gp.snp_host_data(uuid), produced[0][1].snp.host_data)
        self.assertTrue(produced[-1][1].snp.kernel_hashes)
        # libvirt keeps what nova-sev wrote: SNP, the ROM, iommu on NICs.
        kept = self.qemu.call_one('dumpxml', xml=produced[0][0])
        self.assertTrue(kept['ok'], kept)
        kept = etree.fromstring(kept['result'])
        lsec = kept.find('launchSecurity')
        self.assertEqual('sev-snp', lsec.get('type'))
        self.assertEqual(gp.snp_host_data(uuid), lsec.findtext('hostData'))
        self.assertIsNone(kept.find('memoryBacking/locked'))
        self.assertIsNone(kept.find('os/nvram'))
        self.assertEqual(embedded.STATELESS_OVMF, kept.findtext('os/loader'))
        for nic in kept.xpath("devices/interface[model/@type='virtio']"):
            self.assertEqual('on', nic.find('driver').get('iommu'))
        # The same domain on a root with SEV but without SNP: refused.
        sev_only = self.useFixture(embedded.EmbeddedQemuFixture(sev=True))
        for result in sev_only.call([{'op': 'define',
                                      'xml': produced[0][0]},
                                     {'op': 'argv', 'xml': produced[0][0]}]):
            self.assertFalse(result['ok'], result)
            self.assertIn('sev-snp', result['error'])
            self.assertIn('not supported', result['error'])

    def _check_fails_closed(self, nova: str) -> None:
        caps = self._caps()
        for specs, props in SNP_REQUESTS:
            e = self.assertRaises(exception.SevSNPNotUsable, self._design,
                                  nova, specs, props, caps)
            self.assertIn('libvirt or QEMU is too old', str(e))
        # libvirt itself refuses the SNP domain nova-sev would write on a
        # capable host: its schema has no sev-snp launch security.
        capable = dataclasses.replace(caps, sev_snp_usable=True,
                                      sev_snp_reasons=())
        xml, _plan = self._design(nova, caps=capable)
        for result in self.qemu.call([{'op': 'define', 'xml': xml},
                                      {'op': 'argv', 'xml': xml}]):
            self.assertFalse(result['ok'], result)
            self.assertIn('launchSecurity', result['error'])

    def assertValid(self, xml: str) -> None:
        SevGuestRealLibvirtTestCase.assertValid(self, xml)

    def test_guest_xml_command(self):
        params = os.path.join(self.tmp, 'parameters')
        sev_host.write_kvm_amd_params(params, sev='1', sev_es='0',
                                      sev_snp='Y')
        domain = os.path.join(self.tmp, 'nova.xml')
        with open(domain, 'w', encoding='utf-8') as f:
            f.write(_data('nova-guest-q35.xml'))
        # The domain capabilities this libvirt gives, with the ES/SNP ASID
        # slots a real SNP host reports (see setUp), as an operator saves
        # them with "virsh domcapabilities".
        self.domcaps.sev.max_es_guests = 494
        domcaps = os.path.join(self.tmp, 'domcaps.xml')
        with open(domcaps, 'w', encoding='utf-8') as f:
            f.write(self.domcaps.to_xml())
        proc = embedded.run_cli(
            'guest-xml', '--domain', domain, '--domcaps', domcaps,
            '--kvm-amd-params', params, '--extra-spec',
            'trait:HW_CPU_X86_AMD_SEV_SNP=required')
        if not self.libvirt_has_snp:
            self.assertEqual(1, proc.returncode, proc.stderr)
            self.assertEqual('', proc.stdout)
            self.assertIn('SEV-SNP was requested', proc.stderr)
            self.assertIn('too old', proc.stderr)
            return
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertIn('SEV-SNP guest: policy 0x00030000', proc.stderr)
        self.assertValid(proc.stdout)
        argv = self.qemu.call_one('argv', xml=proc.stdout)
        self.assertTrue(argv['ok'], argv)
        self._snp_argv(argv['result'], gp.snp_host_data(
            etree.fromstring(proc.stdout).findtext('uuid')))
