"""The measured inputs read from a domain's XML."""

import testtools

from nova_sev.attestation import launch_inputs
from nova_sev import exception

XML = """<domain type='kvm'>
  <vcpu placement='static'%(current)s>4</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader type='rom'>/usr/share/ovmf/OVMF.fd</loader>
    <kernel>/boot/vmlinuz</kernel><initrd>/boot/initrd.img</initrd>
    <cmdline>console=ttyS0</cmdline>
  </os>
  %(cpu)s
  %(sec)s
</domain>"""
SNP = ("<launchSecurity type='sev-snp' authorKey='no' vcek='yes'%s>"
       "<policy>0x00030000</policy><hostData>QUJD</hostData>"
       "</launchSecurity>")
CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC 7763 64-Core Processor
stepping\t: 1

processor\t: 1
cpu family\t: 99
"""


def launch(cpu='', sec='', current=''):
    return launch_inputs.domain_launch(XML % {
        'cpu': cpu, 'sec': sec, 'current': current})


class TestDomainLaunch(testtools.TestCase):

    def test_snp(self):
        got = launch("<cpu mode='custom'><model>EPYC-Genoa</model></cpu>",
                     SNP % " kernelHashes='yes'", " current='2'")
        self.assertEqual('snp', got.mode)
        self.assertEqual(0x30000, got.policy)
        self.assertEqual('/usr/share/ovmf/OVMF.fd', got.firmware)
        self.assertEqual('rom', got.firmware_type)
        self.assertEqual(2, got.vcpus)
        self.assertEqual('EPYC-Genoa', got.vcpu_type)
        self.assertEqual('QUJD', got.host_data)
        self.assertTrue(got.kernel_hashes)
        self.assertEqual(
            ['--mode', 'snp', '--ovmf', '/usr/share/ovmf/OVMF.fd',
             '--vcpus', '2', '--vcpu-type', 'EPYC-Genoa',
             '--kernel', '/boot/vmlinuz', '--initrd', '/boot/initrd.img',
             '--append', 'console=ttyS0'],
            launch_inputs.expected_measurement_argv(got))

    def test_kernel_without_hashes_is_not_measured(self):
        got = launch("<cpu><model>EPYC</model></cpu>", SNP % '')
        self.assertFalse(got.kernel_hashes)
        self.assertNotIn('--kernel',
                         launch_inputs.expected_measurement_argv(got))

    def test_sev_and_es_by_policy(self):
        sev = ("<launchSecurity type='sev'><policy>%s</policy>"
               "</launchSecurity>")
        self.assertEqual('sev', launch(sec=sev % '0x0033').mode)
        self.assertEqual('seves', launch(sec=sev % '0x0037').mode)
        self.assertEqual(['--mode', 'sev', '--ovmf',
                          '/usr/share/ovmf/OVMF.fd'],
                         launch_inputs.expected_measurement_argv(
                             launch(sec=sev % '0x0033')))

    def test_not_sev(self):
        self.assertIsNone(launch().mode)

    def test_host_cpu(self):
        got = launch("<cpu mode='host-passthrough'/>", SNP % '')
        self.assertTrue(got.host_cpu)
        self.assertEqual('host', got.vcpu_type)
        argv = launch_inputs.expected_measurement_argv(got, 0xa00f11)
        self.assertEqual(['--vcpu-sig', '0xa00f11'], argv[-2:])
        self.assertIn('HOST_CPU_SIGNATURE',
                      launch_inputs.expected_measurement_argv(got))

    def test_host_model_names_no_model(self):
        got = launch("<cpu mode='host-model'/>", SNP % '')
        self.assertIsNone(got.vcpu_type)
        self.assertIn('MODEL', launch_inputs.expected_measurement_argv(got))
        # libvirt's live XML of a running host-model guest names it.
        got = launch("<cpu mode='host-model'><model fallback='forbid'>"
                     "EPYC-Milan</model></cpu>", SNP % '')
        self.assertEqual('EPYC-Milan', got.vcpu_type)

    def test_bad_xml(self):
        self.assertRaises(exception.InvalidLibvirtXML,
                          launch_inputs.domain_launch, '<domain')

    def test_cpuinfo_signature(self):
        self.assertEqual(0xa00f11, launch_inputs.cpuinfo_signature(CPUINFO))
        self.assertIsNone(launch_inputs.cpuinfo_signature('processor: 0\n'))
