"""``nova-sev launch-info`` against real libvirt (the embedded QEMU driver).

No host here can run an SEV guest (no /dev/sev), so these tests cover
what the real libvirt (9.0 on Debian 12, 11.3 on 13) answers for domains
that are defined but not running: an SEV domain (libvirt refuses: "domain
is not running"), a domain without launch security (no parameters: not
SEV) and a domain that does not exist. A running SEV guest's report is
tested against a fake at the libvirt-python boundary, in
nova_sev/tests/unit/attestation.
"""

import subprocess

import testtools

from nova_sev.cmd import common
from nova_sev.tests.functional import embedded

SEV_UUID = '6b1f3c0e-2a4d-4c55-9e0a-7d3f1b2c4e5a'
DOMAIN_XML = """<domain type='kvm'>
  <name>%(name)s</name>
  <uuid>%(uuid)s</uuid>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd\
</loader>
  </os>
  <features><acpi/></features>
  %(launch_security)s
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>"""
LAUNCH_SECURITY = ("<launchSecurity type='sev'><cbitpos>47</cbitpos>"
                   "<reducedPhysBits>1</reducedPhysBits>"
                   "<policy>0x0033</policy></launchSecurity>")


class LaunchInfoRealLibvirtTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.qemu = self.useFixture(embedded.EmbeddedQemuFixture(sev=True))
        results = self.qemu.call([
            {'op': 'define', 'keep': True, 'xml': DOMAIN_XML % {
                'name': 'sev-guest', 'uuid': SEV_UUID,
                'launch_security': LAUNCH_SECURITY}},
            {'op': 'define', 'keep': True, 'xml': DOMAIN_XML % {
                'name': 'plain-guest',
                'uuid': '0f0e0d0c-0b0a-4908-8706-050403020100',
                'launch_security': ''}},
        ])
        for result in results:
            self.assertTrue(result['ok'], result)

    def launch_info(self, domain: str) -> subprocess.CompletedProcess:
        proc = embedded.run_cli('launch-info', domain,
                                '--connection', self.qemu.uri)
        self.assertNotIn('Traceback', proc.stderr)
        self.assertEqual(1, len(proc.stderr.splitlines()), proc.stderr)
        self.assertEqual('', proc.stdout)
        return proc

    def test_sev_domain_not_running(self):
        for domain in ('sev-guest', SEV_UUID):
            proc = self.launch_info(domain)
            self.assertEqual(common.EXIT_ERROR, proc.returncode)
            self.assertIn('No SEV launch information for domain %s: '
                          'Requested operation is not valid: domain is not '
                          'running (the measurement exists only while the '
                          'guest runs)' % domain, proc.stderr)

    def test_domain_without_launch_security(self):
        proc = self.launch_info('plain-guest')
        self.assertEqual(common.EXIT_REFUSED, proc.returncode)
        self.assertIn('domain plain-guest on %s is not an SEV guest'
                      % self.qemu.uri, proc.stderr)

    def test_no_such_domain(self):
        proc = self.launch_info('instance-0000abcd')
        self.assertEqual(common.EXIT_ERROR, proc.returncode)
        self.assertIn('no domain with that name, UUID or id on %s'
                      % self.qemu.uri, proc.stderr)
