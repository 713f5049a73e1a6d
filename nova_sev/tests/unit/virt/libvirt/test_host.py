import dataclasses
import os

import fixtures
import libvirt
import testtools

from nova_sev.tests.fixtures import sev_host
from nova_sev.virt.libvirt import firmware as fw
from nova_sev.virt.libvirt import host


def _params(sev='1', sev_es='1'):
    return {'sev': host.parse_kvm_amd_param('sev', sev),
            'sev_es': host.parse_kvm_amd_param('sev_es', sev_es)}


def _descriptor(*features):
    return fw.FirmwareDescriptor(
        path='/usr/share/qemu/firmware/60-edk2-x86_64.json',
        interface_types=('uefi',), device='flash',
        executable='/usr/share/OVMF/OVMF_CODE_4M.fd',
        nvram_template='/usr/share/OVMF/OVMF_VARS_4M.fd',
        targets=(fw.FirmwareTarget('x86_64', ('pc-q35-*',)),),
        features=features)


class KvmAmdParamTestCase(testtools.TestCase):

    def test_on_values(self):
        for raw in ('1', '1\n', 'Y', 'Y\n', ' y '):
            self.assertTrue(host.parse_kvm_amd_param('sev', raw).enabled, raw)

    def test_off_values(self):
        for raw in ('0\n', 'N', 'n'):
            param = host.parse_kvm_amd_param('sev', raw)
            self.assertFalse(param.enabled)
            self.assertIn('has not enabled it', param.reason)

    def test_garbage(self):
        for raw in ('', 'yes', '2', '\x00\xff', 'Y' * 100):
            param = host.parse_kvm_amd_param('sev', raw)
            self.assertFalse(param.enabled, raw)
            self.assertIn('unexpected value', param.reason)

    def test_unreadable(self):
        param = host.parse_kvm_amd_param('sev_es', None, 'Permission denied')
        self.assertFalse(param.enabled)
        self.assertIn('Permission denied', param.reason)
        self.assertIn('kvm_amd', param.reason)

    def test_read_from_directory(self):
        d = self.useFixture(fixtures.TempDir()).path
        sev_host.write_kvm_amd_params(d, sev='Y', sev_es=None)
        params = host.read_kvm_amd_params(d)
        self.assertTrue(params['sev'].enabled)
        self.assertFalse(params['sev_es'].enabled)
        self.assertIn('No such file', params['sev_es'].reason)

    def test_read_a_directory_instead_of_a_file(self):
        d = self.useFixture(fixtures.TempDir()).path
        os.mkdir(os.path.join(d, 'sev'))
        params = host.read_kvm_amd_params(d)
        self.assertFalse(params['sev'].enabled)
        self.assertIn('could not be read', params['sev'].reason)

    def test_fifo_is_not_read(self):
        self.useFixture(fixtures.Timeout(20, gentle=True))
        d = self.useFixture(fixtures.TempDir()).path
        os.mkfifo(os.path.join(d, 'sev'))
        raw, error = host.read_param_file(os.path.join(d, 'sev'))
        self.assertIsNone(raw)
        self.assertEqual('%s/sev: a FIFO, not a regular file' % d, error)
        params = host.read_kvm_amd_params(d)
        self.assertIn('a FIFO, not a regular file', params['sev'].reason)

    def test_device_is_not_read(self):
        self.useFixture(fixtures.Timeout(20, gentle=True))
        raw, error = host.read_param_file('/dev/zero')
        self.assertIsNone(raw)
        self.assertIn('a character device, not a regular file', error)

    def test_symlink_to_a_regular_file_is_read(self):
        d = self.useFixture(fixtures.TempDir()).path
        sev_host.write_kvm_amd_params(d, sev='Y')
        os.symlink(os.path.join(d, 'sev'), os.path.join(d, 'link'))
        self.assertEqual(('Y\n', None),
                         host.read_param_file(os.path.join(d, 'link')))

    def test_binary_garbage_file(self):
        d = self.useFixture(fixtures.TempDir()).path
        with open(os.path.join(d, 'sev'), 'wb') as f:
            f.write(b'\xff\xfe\x00')
        params = host.read_kvm_amd_params(d)
        self.assertFalse(params['sev'].enabled)
        self.assertIn('unexpected value', params['sev'].reason)


class DetectSevTestCase(testtools.TestCase):

    def _caps(self, **kwargs):
        return host.parse_domain_capabilities(sev_host.domcaps_xml(**kwargs))

    def test_usable(self):
        caps = host.detect_sev(self._caps(), _params())
        self.assertTrue(caps.sev_usable)
        self.assertTrue(caps.sev_es_usable)
        self.assertEqual((), caps.sev_reasons)
        self.assertEqual(47, caps.cbitpos)
        self.assertEqual(1, caps.reduced_phys_bits)
        self.assertEqual(15, caps.max_guests)
        self.assertEqual(494, caps.max_es_guests)
        self.assertIsNone(caps.firmware)

    def test_domcaps_say_no(self):
        caps = host.detect_sev(self._caps(sev=False), _params())
        self.assertFalse(caps.sev_usable)
        self.assertFalse(caps.sev_es_usable)
        self.assertEqual(1, len(caps.sev_reasons))
        self.assertIn("<sev supported='no'/>", caps.sev_reasons[0])
        self.assertIn('BIOS', caps.sev_reasons[0])
        self.assertIn('SEV itself is not usable', caps.sev_es_reasons)

    def test_not_an_amd_cpu_comes_first(self):
        # An Intel host: the vendor is the reason, and no reason sends the
        # operator to BIOS or kernel settings it does not have.
        caps = host.detect_sev(self._caps(sev=False, cpu_vendor='Intel'),
                               _params(sev=None, sev_es=None))
        self.assertFalse(caps.sev_usable)
        self.assertEqual('Intel', caps.cpu_vendor)
        self.assertIn('made by Intel', caps.sev_reasons[0])
        self.assertIn('AMD EPYC', caps.sev_reasons[0])
        for reason in caps.sev_reasons + caps.sev_es_reasons:
            self.assertNotIn('BIOS', reason)
            self.assertNotIn('mem_encrypt', reason)
            self.assertNotIn('module loaded', reason)

    def test_amd_or_unnamed_vendor_keeps_the_remedies(self):
        for vendor in ('AMD', 'Hygon', None):
            caps = host.detect_sev(self._caps(sev=False, cpu_vendor=vendor),
                                   _params(sev=None))
            self.assertIn('BIOS', caps.sev_reasons[0], vendor)
            self.assertIn('kvm_amd module loaded', caps.sev_reasons[1])

    def test_vendor_only_explains_what_libvirt_does_not_offer(self):
        # Detection is by function (the spec): where libvirt offers SEV the
        # vendor adds no refusal, and the kernel remedies stay.
        caps = host.detect_sev(self._caps(cpu_vendor='Intel'), _params())
        self.assertTrue(caps.sev_usable)
        self.assertEqual((), caps.sev_reasons)
        caps = host.detect_sev(self._caps(cpu_vendor='Intel'),
                               _params(sev='0'))
        self.assertEqual(1, len(caps.sev_reasons))
        self.assertIn('mem_encrypt=on kvm_amd.sev=1', caps.sev_reasons[0])

    def test_kernel_says_no(self):
        # Both checks are required: the first does not imply the second.
        caps = host.detect_sev(self._caps(), _params(sev='0'))
        self.assertFalse(caps.sev_usable)
        self.assertIn('mem_encrypt=on kvm_amd.sev=1', caps.sev_reasons[0])

    def test_every_failed_check_is_kept(self):
        caps = host.detect_sev(self._caps(sev=False), _params(sev=None),
                               firmware=[])
        self.assertEqual(3, len(caps.sev_reasons))

    def test_no_domcaps(self):
        caps = host.detect_sev(None, _params(), domcaps_error='no /dev/kvm')
        self.assertFalse(caps.sev_usable)
        self.assertIn('no /dev/kvm', caps.sev_reasons[0])

    def test_wrong_arch_or_virt_type(self):
        caps = host.detect_sev(self._caps(domain='qemu', arch='aarch64',
                                          machine='virt'), _params())
        self.assertFalse(caps.sev_usable)
        self.assertIn('qemu/aarch64', caps.sev_reasons[0])
        self.assertIn('no q35', caps.sev_reasons[1])

    def test_missing_cbitpos(self):
        xml = sev_host.domcaps_xml().replace(
            '<cbitpos>47</cbitpos>', '')
        caps = host.detect_sev(host.parse_domain_capabilities(xml),
                               _params())
        self.assertFalse(caps.sev_usable)
        self.assertIn('libvirt >= 4.5', caps.sev_reasons[0])

    def test_launch_security_form_alone(self):
        xml = sev_host.domcaps_xml(sev=False, sectypes=('sev',))
        caps = host.detect_sev(host.parse_domain_capabilities(xml),
                               _params())
        self.assertTrue(caps.sev_usable)
        self.assertIsNone(caps.cbitpos)

    def test_sev_es_kernel_off(self):
        caps = host.detect_sev(self._caps(), _params(sev_es='N'))
        self.assertTrue(caps.sev_usable)
        self.assertFalse(caps.sev_es_usable)
        self.assertIn("'sev_es' is 'N'", caps.sev_es_reasons[0])

    def test_sev_es_no_asids(self):
        caps = host.detect_sev(self._caps(max_es_guests=0), _params())
        self.assertFalse(caps.sev_es_usable)
        self.assertIn('maxESGuests=0', caps.sev_es_reasons[0])
        self.assertIsNone(caps.max_es_guests)

    def test_unknown_asid_count(self):
        # libvirt prints 0 when it could not read the count: not a limit.
        caps = host.detect_sev(self._caps(max_guests=0), _params())
        self.assertTrue(caps.sev_usable)
        self.assertIsNone(caps.max_guests)

    def test_firmware(self):
        sev_only = _descriptor('amd-sev')
        caps = host.detect_sev(self._caps(), _params(), firmware=[sev_only])
        self.assertTrue(caps.sev_usable)
        self.assertFalse(caps.sev_es_usable)
        self.assertIn('amd-sev-es', caps.sev_es_reasons[0])
        self.assertEqual((sev_only,), caps.firmware)
        caps = host.detect_sev(self._caps(), _params(),
                               firmware=[_descriptor('acpi-s3')])
        self.assertFalse(caps.sev_usable)
        self.assertIn('ovmf', caps.sev_reasons[0])


class SevHostTestCase(testtools.TestCase):

    def test_detects_once(self):
        fake = self.useFixture(sev_host.SevHostFixture())
        sev = host.SevHost(lambda: fake.conn, fake.params_dir)
        for _ in range(100):
            self.assertTrue(sev.get_capabilities().sev_usable)
        self.assertEqual(['getDomainCapabilities'], fake.conn.calls)

    def test_reads_the_cpu_flags_it_is_given(self):
        # nova-compute passes /proc/cpuinfo; without it the question of a
        # hypervisor stays open.
        fake = self.useFixture(sev_host.SevHostFixture(sev=False))
        path = self.useFixture(fixtures.TempDir()).join('cpuinfo')
        with open(path, 'w') as f:
            f.write('flags\t\t: fpu hypervisor\n')
        caps = host.SevHost(lambda: fake.conn, fake.params_dir,
                            cpuinfo=path).get_capabilities()
        self.assertTrue(caps.virtual_machine)
        self.assertEqual(host.REASON_VIRTUAL_MACHINE, caps.sev_reasons[0])
        caps = host.SevHost(lambda: fake.conn,
                            fake.params_dir).get_capabilities()
        self.assertIsNone(caps.virtual_machine)
        self.assertIn('BIOS', caps.sev_reasons[0])

    def test_reset_detects_again(self):
        fake = self.useFixture(sev_host.SevHostFixture())
        sev = host.SevHost(lambda: fake.conn, fake.params_dir)
        self.assertTrue(sev.get_capabilities().sev_usable)
        fake.conn.domcaps = sev_host.domcaps_xml(sev=False)
        self.assertTrue(sev.get_capabilities().sev_usable)
        sev.reset()
        self.assertFalse(sev.get_capabilities().sev_usable)
        self.assertEqual(2, len(fake.conn.calls))

    def test_libvirt_error_means_not_usable(self):
        fake = self.useFixture(sev_host.SevHostFixture())
        # libvirtError takes the thread's last libvirt error when one is
        # set (an earlier test's): clear it so the message is ours.
        libvirt.virResetLastError()
        fake.conn.domcaps = libvirt.libvirtError('connection reset')
        caps = host.SevHost(lambda: fake.conn,
                            fake.params_dir).get_capabilities()
        self.assertFalse(caps.sev_usable)
        self.assertIn('connection reset', caps.sev_reasons[0])

    def test_malformed_domcaps_mean_not_usable(self):
        fake = self.useFixture(sev_host.SevHostFixture())
        fake.conn.domcaps = '<domainCapabilities><features><sev supported='
        caps = host.SevHost(lambda: fake.conn,
                            fake.params_dir).get_capabilities()
        self.assertFalse(caps.sev_usable)
        self.assertIn('Malformed libvirt XML', caps.sev_reasons[0])

    def test_firmware_dirs(self):
        fake = self.useFixture(sev_host.SevHostFixture())
        empty = self.useFixture(fixtures.TempDir()).path
        caps = host.SevHost(lambda: fake.conn, fake.params_dir,
                            [empty]).get_capabilities()
        self.assertFalse(caps.sev_usable)
        self.assertEqual((), caps.firmware)


def _snp_params(sev_snp='Y', sev_es='Y'):
    params = _params(sev_es=sev_es)
    params['sev_snp'] = host.parse_kvm_amd_param('sev_snp', sev_snp)
    return params


class DetectSevSnpTestCase(testtools.TestCase):
    """SEV-SNP is decided by detect_sev from the same facts as SEV."""

    def _caps(self, sectypes=sev_host.SNP_SECTYPES, **kwargs):
        return host.parse_domain_capabilities(
            sev_host.domcaps_xml(sectypes=sectypes, **kwargs))

    def _firmware(self):
        return [_descriptor('amd-sev', 'amd-sev-es'),
                sev_host.snp_descriptor()]

    def test_usable(self):
        caps = host.detect_sev(self._caps(), _snp_params(), self._firmware())
        self.assertTrue(caps.sev_usable)
        self.assertTrue(caps.sev_snp_usable)
        self.assertEqual((), caps.sev_snp_reasons)
        self.assertEqual((sev_host.snp_descriptor(),), caps.snp_firmware)
        self.assertEqual(494, caps.max_es_guests)

    def test_snp_turns_sev_es_off(self):
        # AMD's fix for CVE-2025-48514 disables SEV-ES once SNP is on, and
        # Nova ignores SEV-ES there (LP#2157891): so does detection.
        caps = host.detect_sev(self._caps(), _snp_params(), self._firmware())
        self.assertFalse(caps.sev_es_usable)
        self.assertIn('CVE-2025-48514', caps.sev_es_reasons[0])
        self.assertIn('LP#2157891', caps.sev_es_reasons[0])
        # Off in the kernel: SEV-ES stays as it was.
        caps = host.detect_sev(self._caps(), _snp_params(sev_snp='N'),
                               self._firmware())
        self.assertTrue(caps.sev_es_usable)

    def test_kernel_param_off_or_missing(self):
        for raw, text in (('N', "'sev_snp' is 'N'"),
                          (None, 'could not be read')):
            params = _snp_params()
            params['sev_snp'] = host.parse_kvm_amd_param('sev_snp', raw,
                                                         'No such file')
            caps = host.detect_sev(self._caps(), params, self._firmware())
            self.assertTrue(caps.sev_usable)
            self.assertFalse(caps.sev_snp_usable)
            self.assertEqual(1, len(caps.sev_snp_reasons))
            self.assertIn(text, caps.sev_snp_reasons[0])
            self.assertIn('kvm_amd.sev_snp=1', caps.sev_snp_reasons[0])
        # Parameters read without sev_snp at all (an old kernel).
        caps = host.detect_sev(self._caps(), _params(), self._firmware())
        self.assertFalse(caps.sev_snp_usable)

    def test_libvirt_too_old(self):
        # libvirt 9.0 lists launch security types, without sev-snp.
        caps = host.detect_sev(self._caps(sectypes=('sev',)), _snp_params(),
                               self._firmware())
        self.assertTrue(caps.sev_usable)
        self.assertFalse(caps.sev_snp_usable)
        self.assertEqual(1, len(caps.sev_snp_reasons))
        self.assertIn('sectypes: sev)', caps.sev_snp_reasons[0])
        self.assertIn('libvirt >= 10.5', caps.sev_snp_reasons[0])
        # Older still: no <launchSecurity> element.
        caps = host.detect_sev(self._caps(sectypes=None), _snp_params(),
                               self._firmware())
        self.assertIn('no <launchSecurity> element', caps.sev_snp_reasons[0])

    def test_launch_security_not_supported(self):
        xml = sev_host.domcaps_xml(sectypes=('sev-snp',)).replace(
            "<launchSecurity supported='yes'>",
            "<launchSecurity supported='no'>")
        caps = host.detect_sev(host.parse_domain_capabilities(xml),
                               _snp_params(), self._firmware())
        self.assertFalse(caps.sev_snp_usable)
        self.assertIn("supported='no'", caps.sev_snp_reasons[0])

    def test_no_snp_firmware(self):
        caps = host.detect_sev(self._caps(), _snp_params(),
                               [_descriptor('amd-sev', 'amd-sev-snp')])
        # A flash build with an NVRAM template is not stateless.
        self.assertFalse(caps.sev_snp_usable)
        self.assertIn('amd-sev-snp', caps.sev_snp_reasons[0])
        self.assertIn('/etc/qemu/firmware', caps.sev_snp_reasons[0])
        self.assertEqual((), caps.snp_firmware)
        # Firmware not examined: not a reason.
        caps = host.detect_sev(self._caps(), _snp_params())
        self.assertTrue(caps.sev_snp_usable)
        self.assertIsNone(caps.snp_firmware)

    def test_no_es_asids(self):
        caps = host.detect_sev(self._caps(max_es_guests=0), _snp_params(),
                               self._firmware())
        self.assertFalse(caps.sev_snp_usable)
        self.assertIn('SEV-ES and SEV-SNP guests (maxESGuests=0)',
                      caps.sev_snp_reasons[0])

    def test_sev_not_usable(self):
        # A descriptor with amd-sev-snp alone: no firmware for SEV.
        snp_only = dataclasses.replace(sev_host.snp_descriptor(),
                                       features=('amd-sev-snp',))
        caps = host.detect_sev(self._caps(), _snp_params(), [snp_only])
        self.assertFalse(caps.sev_usable)
        self.assertFalse(caps.sev_snp_usable)
        self.assertIn('SEV itself is not usable', caps.sev_snp_reasons)

    def test_every_reason_is_kept(self):
        caps = host.detect_sev(self._caps(sectypes=('sev',),
                                          max_es_guests=0),
                               _snp_params(sev_snp='0'), [])
        self.assertEqual(5, len(caps.sev_snp_reasons))

    def test_one_libvirt_call(self):
        fake = self.useFixture(sev_host.SevHostFixture(
            sev_snp_param='Y', sectypes=sev_host.SNP_SECTYPES))
        sev = host.SevHost(lambda: fake.conn, fake.params_dir)
        for _ in range(10):
            self.assertTrue(sev.get_capabilities().sev_snp_usable)
        self.assertEqual(['getDomainCapabilities'], fake.conn.calls)


class VirtualMachineTestCase(testtools.TestCase):
    """Where the CPU flags say a hypervisor runs the host."""

    def _caps(self, **kwargs):
        return host.parse_domain_capabilities(sev_host.domcaps_xml(**kwargs))

    def test_runs_under_hypervisor(self):
        self.assertTrue(host.runs_under_hypervisor(
            'processor\t: 0\nflags\t\t: fpu hypervisor lahf_lm\n'
            'processor\t: 1\nflags\t\t: fpu\n'))
        self.assertFalse(host.runs_under_hypervisor(
            'flags\t\t: fpu vme hypervisorx\n'))
        self.assertFalse(host.runs_under_hypervisor(''))

    def test_read_cpuinfo(self):
        path = self.useFixture(fixtures.TempDir()).join('cpuinfo')
        self.assertIsNone(host.read_cpuinfo(path))
        with open(path, 'w') as f:
            f.write('flags\t: sse hypervisor\n')
        self.assertTrue(host.read_cpuinfo(path))

    def test_no_sev_offered_the_hypervisor_is_the_reason(self):
        caps = host.detect_sev(self._caps(sev=False),
                               _params(sev=None, sev_es=None),
                               virtual_machine=True)
        self.assertFalse(caps.sev_usable)
        self.assertTrue(caps.virtual_machine)
        self.assertEqual(host.REASON_VIRTUAL_MACHINE, caps.sev_reasons[0])
        for reason in (caps.sev_reasons + caps.sev_es_reasons +
                       caps.sev_snp_reasons):
            self.assertNotIn('BIOS', reason)
            self.assertNotIn('mem_encrypt', reason)

    def test_another_vendor_comes_first(self):
        caps = host.detect_sev(self._caps(sev=False, cpu_vendor='Intel'),
                               _params(), virtual_machine=True)
        self.assertIn('made by Intel', caps.sev_reasons[0])
        self.assertNotIn(host.REASON_VIRTUAL_MACHINE, caps.sev_reasons)

    def test_sev_offered_is_unchanged(self):
        # A hypervisor that passes SEV through (and the injected test
        # hosts): the same answer as bare metal.
        snp = dict(_params(), sev_snp=host.parse_kvm_amd_param('sev_snp', 'Y'))
        for params in (_params(), _params(sev='0'), snp):
            vm = host.detect_sev(self._caps(), params, virtual_machine=True)
            metal = host.detect_sev(self._caps(), params,
                                    virtual_machine=False)
            self.assertEqual(dataclasses.replace(metal, virtual_machine=True),
                             vm)
