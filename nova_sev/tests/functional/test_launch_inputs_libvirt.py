"""The measurement inputs nova-sev derives for a domain against what real
libvirt would start QEMU with (``domainXMLToNative('qemu-argv')``).

Each domain is defined in an SEV-capable embedded QEMU root;
``nova-sev launch-info --inputs-only`` reads it back from libvirt in its
own process, and its firmware, vCPU count, vCPU type (the ``-cpu`` model
that decides the VMSA), policy and kernel hashes must be what the QEMU
command line of the same domain says. Whatever this host's libvirt is
(9.0 on Debian 12, 11.3 on Debian 13), the comparison is with its own
command line, parsed for both of the forms libvirt gives pflash firmware
(``-blockdev`` with node ``libvirt-pflash0-storage``, or ``-drive
if=pflash``).
"""

import base64
import hashlib
import json
import os
import shlex

import fixtures
import libvirt
from lxml import etree
import testtools

from nova_sev.attestation import launch_digest
from nova_sev.tests.functional import embedded

DOMAIN = """<domain type='kvm'>
  <name>%(name)s</name>
  <memory unit='MiB'>256</memory>
  <vcpu placement='static'%(current)s>%(vcpus)d</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    %(loader)s
    %(kernel)s
  </os>
  <features><acpi/></features>
  %(cpu)s
  <launchSecurity type='sev'%(hashes)s><cbitpos>47</cbitpos>
    <reducedPhysBits>1</reducedPhysBits><policy>%(policy)s</policy>
  </launchSecurity>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>"""
ROM = "<loader type='rom'>%s</loader>"
PFLASH = "<loader readonly='yes' type='pflash'>%s</loader>"
CUSTOM_CPU = ("<cpu mode='custom' match='exact' check='none'>"
              "<model fallback='forbid'>%s</model></cpu>")
STATELESS_OVMF = embedded.STATELESS_OVMF
CODE_OVMF = '/usr/share/OVMF/OVMF_CODE_4M.fd'
SNP_DOMAIN = """<domain type='kvm'>
  <name>%(name)s</name>
  <memory unit='MiB'>256</memory>
  <vcpu placement='static'>%(vcpus)d</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader type='rom'>%(firmware)s</loader>
  </os>
  <features><acpi/></features>
  %(cpu)s
  <launchSecurity type='sev-snp' authorKey='no' vcek='yes'>
    <cbitpos>47</cbitpos><reducedPhysBits>1</reducedPhysBits>
    <policy>0x00030000</policy><hostData>%(host_data)s</hostData>
  </launchSecurity>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>"""


def qemu_argv_facts(argv_text: str) -> dict:
    """What the QEMU command line says about the measured inputs."""
    argv = shlex.split(argv_text)
    facts = {'firmware': None, 'cpu': None, 'vcpus': None, 'policy': None,
             'launch': None, 'host_data': None,
             'kernel_hashes': False, 'kernel': None, 'initrd': None,
             'append': None}
    for option, value in zip(argv, argv[1:] + ['']):
        if option == '-cpu':
            facts['cpu'] = value.split(',')[0]
        elif option == '-smp':
            facts['vcpus'] = int(value.split(',')[0])
        elif option == '-bios':
            facts['firmware'] = value
        elif option in ('-kernel', '-initrd', '-append'):
            facts[option[1:]] = value
        elif option == '-blockdev' and value.startswith('{'):
            node = json.loads(value)
            if node.get('node-name') == 'libvirt-pflash0-storage':
                facts['firmware'] = node['filename']
        elif option == '-drive' and 'if=pflash' in value and \
                'unit=0' in value:
            facts['firmware'] = dict(
                p.partition('=')[::2] for p in value.split(','))['file']
        elif option == '-object' and value.startswith('{'):
            obj = json.loads(value)
            if obj.get('qom-type') in ('sev-guest', 'sev-snp-guest'):
                facts['launch'] = obj['qom-type']
                facts['policy'] = obj['policy']
                facts['kernel_hashes'] = bool(obj.get('kernel-hashes'))
                facts['host_data'] = obj.get('host-data')
    return facts


class LaunchInputsTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.qemu = self.useFixture(embedded.EmbeddedQemuFixture(sev=True))
        self.dir = self.useFixture(fixtures.TempDir()).path
        for path in (STATELESS_OVMF, CODE_OVMF):
            if not os.path.exists(path):
                raise AssertionError('%s is missing: install the ovmf '
                                     'package (bindep test profile)' % path)

    def kernel_files(self):
        paths = []
        for name in ('vmlinuz', 'initrd.img'):
            path = os.path.join(self.dir, name)
            with open(path, 'wb') as f:
                f.write(name.encode() * 100)
            paths.append(path)
        return paths

    def epyc_models(self) -> list[str]:
        """The EPYC models this host's QEMU knows (its domain
        capabilities) whose signature the digest library knows.
        """
        caps = self.qemu.call_one('domcaps')
        self.assertTrue(caps['ok'], caps)
        known = {m.text for m in etree.fromstring(caps['result']).findall(
            "cpu/mode[@name='custom']/model")}
        models = [m for m in launch_digest.vcpu_type_names() if m in known]
        self.assertGreaterEqual(len(models), 3, known)
        return models

    def domains(self):
        kernel, initrd = self.kernel_files()
        models = self.epyc_models()
        # Spread over the list: the oldest, the newest, one between.
        first, middle, last = models[0], models[len(models) // 2], models[-1]
        direct = ('<kernel>%s</kernel><initrd>%s</initrd>'
                  '<cmdline>console=ttyS0 root=/dev/vda1</cmdline>'
                  % (kernel, initrd))
        cases = [
            # name, firmware, cpu, vcpus, current, policy, kernel, hashes
            ('sev-rom-newest', ROM % STATELESS_OVMF,
             CUSTOM_CPU % last, 4, None, '0x0033', '', False),
            ('es-pflash', PFLASH % CODE_OVMF,
             CUSTOM_CPU % middle, 8, None, '0x0037', '', False),
            ('es-rom-current', ROM % STATELESS_OVMF,
             CUSTOM_CPU % first, 4, 2, '0x0037', '', False),
            ('es-passthrough', ROM % STATELESS_OVMF,
             "<cpu mode='host-passthrough' check='none'/>", 3, None,
             '0x0037', '', False),
            ('es-default-cpu', ROM % STATELESS_OVMF, '', 1, None, '0x0037',
             '', False),
            ('es-kernel-hashes', ROM % STATELESS_OVMF,
             CUSTOM_CPU % middle, 2, None, '0x0037', direct, True),
            ('sev-kernel-no-hashes', ROM % STATELESS_OVMF,
             CUSTOM_CPU % last, 1, None, '0x0033', direct, False),
        ]
        for (name, loader, cpu, vcpus, current, policy, kernel,
             hashes) in cases:
            yield name, DOMAIN % {
                'name': name, 'loader': loader, 'cpu': cpu, 'vcpus': vcpus,
                'current': " current='%d'" % current if current else '',
                'policy': policy, 'kernel': kernel,
                'hashes': " kernelHashes='yes'" if hashes else ''}

    def test_inputs_match_qemu_argv(self):
        domains = list(self.domains())
        ops = []
        for _name, xml in domains:
            ops += [{'op': 'define', 'keep': True, 'xml': xml},
                    {'op': 'argv', 'xml': xml}]
        results = self.qemu.call(ops)
        for result in results:
            self.assertTrue(result['ok'], result)
        for index, (name, _xml) in enumerate(domains):
            facts = qemu_argv_facts(results[2 * index + 1]['result'])
            proc = embedded.run_cli('launch-info', name, '--inputs-only',
                                    '--format', 'json', '--connection',
                                    self.qemu.uri)
            self.assertEqual(0, proc.returncode, proc.stderr)
            inputs = json.loads(proc.stdout)['measurement_inputs']
            self.assertEqual(facts['firmware'], inputs['firmware'], name)
            with open(facts['firmware'], 'rb') as f:
                self.assertEqual(hashlib.sha384(f.read()).hexdigest(),
                                 inputs['firmware_sha384'], name)
            self.assertEqual(facts['vcpus'], inputs['vcpus'], name)
            self.assertEqual(facts['cpu'], inputs['vcpu_type'], name)
            self.assertEqual(facts['policy'], inputs['policy'], name)
            self.assertEqual('seves' if facts['policy'] & 0x4 else 'sev',
                             inputs['mode'], name)
            self.assertEqual(facts['kernel_hashes'],
                             inputs['kernel_hashes'], name)
            command = inputs['expected_measurement']
            if facts['kernel_hashes']:
                self.assertEqual(facts['kernel'], inputs['kernel'])
                self.assertEqual(facts['initrd'], inputs['initrd'])
                self.assertEqual(facts['append'], inputs['cmdline'])
                self.assertIn('--kernel', command)
            else:
                # A kernel QEMU does not hash is not measured.
                self.assertNotIn('--kernel', command)
            if inputs['mode'] == 'seves' and facts['cpu'] == 'host':
                self.assertIn('--vcpu-sig', command, name)
            elif inputs['mode'] == 'seves':
                self.assertEqual(
                    ['--vcpus', str(facts['vcpus']), '--vcpu-type',
                     facts['cpu']],
                    command[command.index('--vcpus'):][:4], name)

    def test_host_model_names_no_model(self):
        # Until libvirt expands host-model at start, the XML names no
        # model while the command line has one derived from this host's
        # CPU: nova-sev must not claim a vCPU type then.
        xml = DOMAIN % {'name': 'es-host-model', 'loader': ROM %
                        STATELESS_OVMF, 'cpu': "<cpu mode='host-model'/>",
                        'vcpus': 1, 'current': '', 'policy': '0x0037',
                        'kernel': '', 'hashes': ''}
        define, argv = self.qemu.call([
            {'op': 'define', 'keep': True, 'xml': xml},
            {'op': 'argv', 'xml': xml}])
        self.assertTrue(define['ok'], define)
        proc = embedded.run_cli('launch-info', 'es-host-model',
                                '--inputs-only', '--format', 'json',
                                '--connection', self.qemu.uri)
        self.assertEqual(0, proc.returncode, proc.stderr)
        inputs = json.loads(proc.stdout)['measurement_inputs']
        self.assertEqual('host-model', inputs['cpu_mode'])
        self.assertIsNone(inputs['vcpu_type'])
        self.assertIn('MODEL', inputs['expected_measurement'])
        if argv['ok']:
            self.assertIsNotNone(qemu_argv_facts(argv['result'])['cpu'])

    def test_snp_as_this_libvirt_does(self):
        host_data = base64.b64encode(bytes(range(32))).decode()
        model = self.epyc_models()[-1]
        xml = SNP_DOMAIN % {
            'name': 'snp-guest', 'vcpus': 3, 'firmware': STATELESS_OVMF,
            'cpu': CUSTOM_CPU % model, 'host_data': host_data}
        if libvirt.getVersion() < embedded.LIBVIRT_SNP_VERSION:
            # libvirt before 10.5 has no SEV-SNP: it refuses the domain,
            # and there is nothing to derive.
            define = self.qemu.call_one('define', xml=xml)
            self.assertFalse(define['ok'])
            self.assertIn('launchSecurity', define['error'])
            return
        # A root of its own with SEV-SNP in the capability cache, as
        # libvirt's caps_10.0.0_x86_64+amdsev.xml has it.
        qemu = self.useFixture(embedded.EmbeddedQemuFixture(sev=True,
                                                            snp=True))
        define, argv = qemu.call([
            {'op': 'define', 'keep': True, 'xml': xml},
            {'op': 'argv', 'xml': xml}])
        self.assertTrue(define['ok'], define)
        self.assertTrue(argv['ok'], argv)
        facts = qemu_argv_facts(argv['result'])
        self.assertEqual('sev-snp-guest', facts['launch'])
        proc = embedded.run_cli('launch-info', 'snp-guest', '--inputs-only',
                                '--format', 'json', '--connection',
                                qemu.uri)
        self.assertEqual(0, proc.returncode, proc.stderr)
        inputs = json.loads(proc.stdout)['measurement_inputs']
        self.assertEqual('snp', inputs['mode'])
        self.assertEqual(facts['firmware'], inputs['firmware'])
        self.assertEqual(facts['vcpus'], inputs['vcpus'])
        self.assertEqual(facts['cpu'], inputs['vcpu_type'])
        self.assertEqual(facts['policy'], inputs['policy'])
        self.assertEqual(facts['host_data'], inputs['host_data'])
        self.assertEqual(
            ['--mode', 'snp', '--ovmf', facts['firmware'], '--vcpus',
             str(facts['vcpus']), '--vcpu-type', facts['cpu']],
            inputs['expected_measurement'][2:])
