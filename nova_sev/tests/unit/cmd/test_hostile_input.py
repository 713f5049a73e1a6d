"""Hostile and odd input to the ``nova-sev`` commands, as an operator (or
an attacker who hands one a file) gives it: each case ends in one short
line naming what to fix and the documented exit status, never in
"unexpected error", a hang or a traceback.
"""

import io
import logging
import os
import sys
import threading

import fixtures

from nova_sev.cmd import common
from nova_sev.cmd import config
from nova_sev.tests.fixtures import sev_host
from nova_sev.tests.unit.cmd import base

DATA = os.path.join(os.path.dirname(__file__), '..', '..', 'data')
with open(os.path.join(DATA, 'nova-guest-q35.xml'), encoding='utf-8') as f:
    NOVA_DOMAIN = f.read()
NOVA_MEMORY = "<memory unit='KiB'>4194304</memory>"
SEV = 'trait:HW_CPU_X86_AMD_SEV=required'
# Longer than any error line quoting its input should be.
SHORT = 600


class HostileInputTestCase(base.CommandTestCase):

    def setUp(self):
        super().setUp()
        self.params = os.path.join(self.tmp, 'parameters')
        sev_host.write_kvm_amd_params(self.params, sev='1', sev_es='1')

    def run_command(self, *args):
        """One command, with the output of the ones before forgotten."""
        for stream in (self.stdout, self.stderr):
            stream.seek(0)
            stream.truncate()
        config.CONF.clear()
        return super().run_command(*args)

    def error(self):
        err = self.stderr.getvalue()
        self.assertNotIn('unexpected error', err)
        return err

    def domcaps(self, text, name='domcaps.xml'):
        return self.write_file(name, text)


class HostCheckImpossibleFactsTestCase(HostileInputTestCase):
    """Domain capabilities that no AMD host reports: "could not check"."""

    command = 'host-check'

    def check(self, xml):
        path = self.domcaps(xml)
        rc = self.run_command('--domcaps', path, '--kvm-amd-params',
                              self.params)
        self.assertEqual(common.EXIT_ERROR, rc)
        self.assertEqual('', self.stdout.getvalue())
        err = self.error()
        self.assertIn(path, err)
        self.assertLess(len(err), SHORT)
        return err

    def test_cbitpos_outside_0_to_63(self):
        for value in (-1, 64, 999):
            err = self.check(sev_host.domcaps_xml(cbitpos=value))
            self.assertIn('Impossible domain capabilities', err)
            self.assertIn('<cbitpos> is %d' % value, err)
            self.assertIn('from 0 to 63', err)

    def test_cbitpos_63_and_0_are_possible(self):
        for value in (0, 63):
            rc = self.run_command(
                '--domcaps', self.domcaps(sev_host.domcaps_xml(
                    cbitpos=value)), '--kvm-amd-params', self.params)
            self.assertEqual(common.EXIT_OK, rc, self.stderr.getvalue())

    def test_negative_reduced_phys_bits(self):
        err = self.check(sev_host.domcaps_xml(reduced=-3))
        self.assertIn('<reducedPhysBits> is -3', err)

    def test_negative_asid_counts(self):
        err = self.check(sev_host.domcaps_xml(max_guests=-1))
        self.assertIn('<maxGuests> is -1', err)
        err = self.check(sev_host.domcaps_xml(max_es_guests=-5))
        self.assertIn('<maxESGuests> is -5', err)

    def test_two_sev_elements_that_disagree(self):
        xml = sev_host.domcaps_xml().replace(
            "<gic supported='no'/>", "<sev supported='no'/>")
        err = self.check(xml)
        self.assertIn('2 <sev> elements that disagree', err)

    def test_two_different_cbitpos(self):
        xml = sev_host.domcaps_xml().replace(
            '<cbitpos>47</cbitpos>', '<cbitpos>47</cbitpos><cbitpos>51'
            '</cbitpos>')
        err = self.check(xml)
        self.assertIn('<cbitpos> is given 2 times with different values '
                      '(47, 51)', err)

    def test_repeated_identical_facts_are_accepted(self):
        sev = sev_host.SEV_FEATURE % {'cbitpos': 47, 'reduced': 1,
                                      'max': ''}
        xml = sev_host.domcaps_xml(max_guests=None, max_es_guests=None)
        xml = xml.replace("<gic supported='no'/>", sev.strip())
        rc = self.run_command('--domcaps', self.domcaps(xml),
                              '--kvm-amd-params', self.params)
        self.assertEqual(common.EXIT_OK, rc, self.stderr.getvalue())

    def test_supported_neither_yes_nor_no(self):
        xml = sev_host.domcaps_xml().replace("<sev supported='yes'>",
                                             "<sev supported='maybe'>")
        err = self.check(xml)
        self.assertIn("supported is 'maybe'", err)

    def test_huge_cbitpos_is_not_echoed(self):
        err = self.check(sev_host.domcaps_xml(cbitpos='9' * 1000000))
        self.assertIn('more characters', err)

    def test_malformed_xml_names_the_file(self):
        self.check('<domainCapabilities><features>')

    def test_dtd_and_entities_refused(self):
        xml = sev_host.domcaps_xml().replace(
            '<domainCapabilities>', '<!DOCTYPE domainCapabilities [<!ENTITY '
            'x SYSTEM "file:///etc/passwd">]><domainCapabilities>', 1)
        xml = xml.replace('<arch>x86_64</arch>', '<arch>&x;</arch>')
        err = self.check(xml)
        self.assertIn('document type declaration', err)
        self.assertNotIn('root:', err)

    def test_not_utf8(self):
        path = os.path.join(self.tmp, 'latin1.xml')
        with open(path, 'wb') as f:
            f.write(sev_host.domcaps_xml().replace(
                'x86_64</arch>', 'x86_64\xe9</arch>').encode('latin-1'))
        rc = self.run_command('--domcaps', path)
        self.assertEqual(common.EXIT_ERROR, rc)
        self.assertIn('is not UTF-8 text', self.error())


class KvmAmdParamFilesTestCase(HostileInputTestCase):
    """``kvm_amd`` parameters that are not sysfs files."""

    command = 'host-check'

    def setUp(self):
        super().setUp()
        # A regression blocks in open(): fail the test, do not hang the run.
        self.useFixture(fixtures.Timeout(20, gentle=True))

    def test_fifo_does_not_hang(self):
        path = os.path.join(self.params, 'sev')
        os.unlink(path)
        os.mkfifo(path)
        rc = self.run_command('--domcaps',
                              self.domcaps(sev_host.domcaps_xml()),
                              '--kvm-amd-params', self.params,
                              '--format', 'json')
        self.assertEqual(common.EXIT_REFUSED, rc)
        out = self.stdout.getvalue()
        self.assertIn("kvm_amd parameter 'sev' could not be read (%s: a "
                      "FIFO, not a regular file)" % path, out)

    def test_fifo_in_guest_xml_is_a_refusal(self):
        self.command = 'guest-xml'
        os.unlink(os.path.join(self.params, 'sev_es'))
        os.mkfifo(os.path.join(self.params, 'sev_es'))
        rc = self.run_command(
            '--domain', self.write_file('domain.xml', NOVA_DOMAIN),
            '--domcaps', self.domcaps(sev_host.domcaps_xml()),
            '--kvm-amd-params', self.params, '--extra-spec',
            'trait:HW_CPU_X86_AMD_SEV_ES=required')
        self.assertEqual(common.EXIT_REFUSED, rc)
        self.assertIn('a FIFO, not a regular file', self.error())

    def test_odd_values(self):
        for value in ('2', 'true', 'Y Y', '\x01'):
            sev_host.write_kvm_amd_params(self.params, sev=value)
            rc = self.run_command('--domcaps',
                                  self.domcaps(sev_host.domcaps_xml()),
                                  '--kvm-amd-params', self.params)
            self.assertEqual(common.EXIT_REFUSED, rc, value)
            self.assertIn("kvm_amd parameter 'sev' holds unexpected value "
                          "%r, expected 1/Y or 0/N" % value,
                          self.stdout.getvalue())


class GuestXmlHostileInputTestCase(HostileInputTestCase):

    command = 'guest-xml'

    def guest_xml(self, domain, *args, name='domain.xml'):
        return self.run_command(
            '--domain', self.write_file(name, domain), '--domcaps',
            self.domcaps(sev_host.domcaps_xml()), '--kvm-amd-params',
            self.params, '--extra-spec', SEV, *args)

    def memory(self, element):
        self.assertIn(NOVA_MEMORY, NOVA_DOMAIN)
        return NOVA_DOMAIN.replace(NOVA_MEMORY, element)

    def refused_memory(self, element):
        rc = self.guest_xml(self.memory(element))
        self.assertEqual(common.EXIT_ERROR, rc)
        self.assertEqual('', self.stdout.getvalue())
        err = self.error()
        self.assertIn('Invalid memory (domain in %s)' % os.path.join(
            self.tmp, 'domain.xml'), err)
        return err

    def test_no_memory(self):
        err = self.refused_memory('<memory>0</memory>')
        self.assertIn("<memory> is '0' KiB, libvirt refuses a domain "
                      "without memory", err)

    def test_memory_in_floating_point_notation(self):
        err = self.refused_memory("<memory unit='KiB'>1e30</memory>")
        self.assertIn("<memory> is '1e30' KiB, not a whole number", err)

    def test_memory_no_host_has(self):
        err = self.refused_memory("<memory unit='TiB'>100000000</memory>")
        self.assertIn("<memory> is '100000000' TiB, more than 4294967296 "
                      "MiB (4 PiB", err)
        err = self.refused_memory(
            "<memory unit='KB'>%s</memory>" % ('1' + '0' * 30))
        self.assertIn('more than 4294967296 MiB', err)

    def test_unknown_unit(self):
        err = self.refused_memory("<memory unit='furlongs'>1</memory>")
        self.assertIn('not a unit libvirt knows', err)

    def test_memory_arithmetic_is_integer(self):
        # 4 PiB in decimal kilobytes: exact, not 4.5e15 rounded.
        rc = self.guest_xml(self.memory(
            "<memory unit='KB'>4503599627370</memory>"))
        self.assertEqual(common.EXIT_OK, rc, self.stderr.getvalue())
        # 4503599627370000 bytes = 4398046511103.515625 KiB, rounded up,
        # is 4294967296 MiB after rounding up again; hard limit adds
        # 16 + 496 MiB.
        self.assertIn('hard limit %d KiB' % ((4294967296 + 512) * 1024),
                      self.stderr.getvalue())
        self.assertNotIn('e+', self.stdout.getvalue())

    def test_smallest_memory(self):
        rc = self.guest_xml(self.memory("<memory unit='b'>1</memory>"))
        self.assertEqual(common.EXIT_OK, rc, self.stderr.getvalue())
        self.assertIn('17 MiB pinned', self.stderr.getvalue())

    def test_entity_reference_refused(self):
        domain = NOVA_DOMAIN.replace(
            "<domain type='kvm'", '<!DOCTYPE domain [<!ENTITY xxe "evil">]>'
            "<domain type='kvm'", 1)
        domain = domain.replace('<name>', '<name>&xxe;', 1)
        for extra in ((), ('--extra-spec', SEV)):
            rc = self.run_command(
                '--domain', self.write_file('domain.xml', domain),
                '--kvm-amd-params', self.params, *extra)
            self.assertEqual(common.EXIT_ERROR, rc)
            self.assertEqual('', self.stdout.getvalue())
            self.assertIn('document type declaration', self.error())

    def test_entity_without_dtd_refused(self):
        rc = self.guest_xml(NOVA_DOMAIN.replace('<name>', '<name>&xxe;', 1))
        self.assertEqual(common.EXIT_ERROR, rc)
        self.assertIn('xxe', self.error())

    def test_malformed_xml_names_the_file(self):
        rc = self.guest_xml(NOVA_DOMAIN[:200], name='cut.xml')
        self.assertEqual(common.EXIT_ERROR, rc)
        self.assertIn('Malformed libvirt XML (domain in %s)' % os.path.join(
            self.tmp, 'cut.xml'), self.error())

    def _stdin(self, data, errors):
        stdin = io.TextIOWrapper(io.BytesIO(data), encoding='utf-8',
                                 errors=errors)
        self.useFixture(fixtures.MonkeyPatch('sys.stdin', stdin))

    def test_non_utf8_stdin(self):
        data = NOVA_DOMAIN.replace('<name>', '<name>\xe9', 1).encode(
            'latin-1')
        # A UTF-8 locale (strict) and the C locale (surrogateescape).
        for errors in ('strict', 'surrogateescape'):
            self._stdin(data, errors)
            rc = self.run_command('--domain', '-', '--kvm-amd-params',
                                  self.params, '--extra-spec', SEV)
            self.assertEqual(common.EXIT_ERROR, rc)
            self.assertIn('--domain from stdin is not UTF-8 text (byte 0xe9',
                          self.error())

    def test_text_stdin_without_buffer(self):
        self.useFixture(fixtures.MonkeyPatch('sys.stdin',
                                             io.StringIO(NOVA_DOMAIN)))
        rc = self.run_command('--domain', '-', '--kvm-amd-params',
                              self.params)
        self.assertEqual(common.EXIT_OK, rc)
        self.assertEqual(NOVA_DOMAIN, self.stdout.getvalue())

    def test_many_host_devices_listed_briefly(self):
        hostdevs = ''.join(
            "<hostdev mode='subsystem' type='pci'><source><address "
            "domain='0x0000' bus='0x%02x' slot='0x%02x' function='0x0'/>"
            "</source></hostdev>" % (i // 32, i % 32) for i in range(500))
        rc = self.guest_xml(NOVA_DOMAIN.replace('</devices>',
                                                hostdevs + '</devices>'))
        self.assertEqual(common.EXIT_REFUSED, rc)
        err = self.error()
        self.assertIn('PCI host device 0x0000:0x00:0x02.0x0 and 497 more',
                      err)
        self.assertLess(len(err), SHORT)


class PlanMemoryAbsurdValuesTestCase(HostileInputTestCase):

    command = 'plan-memory'

    def usage_error(self, *args):
        e = self.assertRaises(SystemExit, self.run_command, *args)
        self.assertEqual(common.EXIT_ERROR, e.code)
        return self.error()

    def test_floating_point_notation(self):
        err = self.usage_error('--host-ram-mb', '1e30', '--flavor-ram-mb',
                               '4096')
        self.assertIn("argument --host-ram-mb: '1e30' is not a whole "
                      "number", err)
        self.assertIn('nova-sev plan-memory --help', err)

    def test_host_no_one_has(self):
        rc = self.run_command('--host-ram-mb', '1' + '0' * 30,
                              '--flavor-ram-mb', '4096')
        self.assertEqual(common.EXIT_ERROR, rc)
        self.assertEqual('', self.stdout.getvalue())
        self.assertIn('host RAM (MiB) is %s, more than any host has: at '
                      'most 4294967296 MiB (4 PiB' % ('1' + '0' * 30),
                      self.error())

    def test_largest_host(self):
        rc = self.run_command('--host-ram-mb', '4294967296',
                              '--flavor-ram-mb', '4096', '--format', 'json')
        self.assertEqual(common.EXIT_OK, rc, self.stderr.getvalue())

    def test_flavor_video_and_guests_no_one_has(self):
        for args, words in (
                (('--flavor-ram-mb', str(2 ** 40)), 'flavor RAM (MiB)'),
                (('--flavor-ram-mb', '4096', '--video-mb', str(2 ** 40)),
                 'video memory (MiB)'),
                (('--flavor-ram-mb', '4096', '--guests', str(2 ** 40)),
                 'at most 4294967295 (SEV ASID counts are 32-bit)'),
                (('--flavor-ram-mb', '4096', '--max-asids', str(2 ** 40)),
                 'number of ASID slots')):
            rc = self.run_command('--host-ram-mb', '100000', *args)
            self.assertEqual(common.EXIT_ERROR, rc, args)
            self.assertIn(words, self.error())

    def test_too_many_digits(self):
        err = self.usage_error('--host-ram-mb', '9' * 5000,
                               '--flavor-ram-mb', '4096')
        self.assertIn('has too many digits', err)
        self.assertLess(len(err), SHORT)

    def test_unicode_digits(self):
        err = self.usage_error('--host-ram-mb', '\uff14\uff10',
                               '--flavor-ram-mb', '4096')
        self.assertIn('is not a whole number', err)


class ConfigFileTestCase(HostileInputTestCase):
    """Bad --config-file contents, named by option, value and file."""

    command = 'plan-memory'

    def plan(self, *config_files):
        args = ['--host-ram-mb', '65536', '--flavor-ram-mb', '4096']
        for path in config_files:
            args += ['--config-file', path]
        return self.run_command(*args)

    def conf(self, text, name='nova.conf'):
        return self.write_file(name, text)

    def refused(self, *config_files):
        rc = self.plan(*config_files)
        self.assertEqual(common.EXIT_ERROR, rc)
        self.assertEqual('', self.stdout.getvalue())
        return self.error()

    def test_binary_config_file(self):
        path = os.path.join(self.tmp, 'binary.conf')
        with open(sys.executable, 'rb') as exe, open(path, 'wb') as f:
            f.write(exe.read(4096))
        err = self.refused(path)
        self.assertIn('--config-file %s is not a text configuration file'
                      % path, err)

    def test_bad_sev_values(self):
        for line, words in (
                ('firmware_overhead_mb = lots',
                 "[sev]firmware_overhead_mb = 'lots'"),
                ('firmware_overhead_mb = -16',
                 "[sev]firmware_overhead_mb = '-16'"),
                ('qemu_overhead_mb = 99999999999',
                 "[sev]qemu_overhead_mb = '99999999999'"),
                ('allow_virtio_blk_boot_disk = maybe',
                 "[sev]allow_virtio_blk_boot_disk = 'maybe'")):
            path = self.conf('[sev]\n%s\n' % line)
            err = self.refused(path)
            self.assertIn('Invalid configuration: %s in %s is not valid'
                          % (words, path), err)

    def test_bad_value_in_guest_xml(self):
        self.command = 'guest-xml'
        path = self.conf('[sev]\nallow_virtio_blk_boot_disk = maybe\n')
        rc = self.run_command(
            '--domain', self.write_file('domain.xml', NOVA_DOMAIN),
            '--domcaps', self.domcaps(sev_host.domcaps_xml()),
            '--kvm-amd-params', self.params, '--extra-spec', SEV,
            '--config-file', path)
        self.assertEqual(common.EXIT_ERROR, rc)
        self.assertIn("[sev]allow_virtio_blk_boot_disk = 'maybe' in %s"
                      % path, self.error())

    def test_last_file_wins(self):
        bad = self.conf('[sev]\nfirmware_overhead_mb = lots\n', 'bad.conf')
        good = self.conf('[sev]\nfirmware_overhead_mb = 32\n', 'good.conf')
        self.assertEqual(common.EXIT_OK, self.plan(bad, good),
                         self.stderr.getvalue())
        err = self.refused(good, bad)
        self.assertIn('in %s is not valid' % bad, err)

    def test_config_from_a_pipe(self):
        # --config-file <(...): read once, by oslo.config.
        self.useFixture(fixtures.Timeout(20, gentle=True))
        path = os.path.join(self.tmp, 'pipe.conf')
        os.mkfifo(path)

        def write():
            with open(path, 'w') as f:
                f.write('[sev]\nfirmware_overhead_mb = 32\n')
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        self.assertEqual(common.EXIT_OK, self.plan(path),
                         self.stderr.getvalue())
        writer.join()
        self.assertIn('32 MiB firmware/ROM/ACPI', self.stdout.getvalue())

    def test_checking_keeps_the_log_quiet(self):
        # Reading every option must not freeze the log levels before the
        # commands lower nova_sev's to WARN (their findings go to stdout).
        self.assertEqual(common.EXIT_OK, self.plan())
        self.assertEqual(logging.WARNING, logging.getLogger(
            'nova_sev.virt.libvirt.host').getEffectiveLevel())

    def test_bad_logging_value(self):
        path = self.conf('[DEFAULT]\ndebug = maybe\n')
        err = self.refused(path)
        self.assertIn("[DEFAULT]debug = 'maybe' in %s is not valid" % path,
                      err)

    def test_unwritable_log_file(self):
        path = self.conf('[DEFAULT]\nlog_file = %s\n' % os.path.join(
            self.tmp, 'no', 'such', 'dir', 'x.log'))
        err = self.refused(path)
        self.assertIn('cannot set up logging', err)

    def test_undefined_substitution(self):
        path = self.conf('[sev]\npolicy = $nowhere\n')
        err = self.refused(path)
        self.assertIn("[sev]policy = '$nowhere' in %s" % path, err)


class JsonInputTestCase(HostileInputTestCase):

    command = 'check-flavor'

    def test_nested_too_deep(self):
        path = self.write_file('flavor.json', '[' * 100000 + ']' * 100000)
        rc = self.run_command('--flavor-json', path)
        self.assertEqual(common.EXIT_ERROR, rc)
        self.assertIn('--flavor-json %s is nested too deeply' % path,
                      self.error())

    def test_ram_no_host_has(self):
        path = self.write_file('flavor.json', {
            'name': 'big', 'ram': 2 ** 60,
            'properties': {'trait:HW_CPU_X86_AMD_SEV': 'required'}})
        rc = self.run_command('--flavor-json', path)
        self.assertEqual(common.EXIT_ERROR, rc)
        self.assertIn('"ram" is %d MiB, more than 4294967296 MiB' % 2 ** 60,
                      self.error())

    def test_huge_ram_value_is_not_echoed(self):
        path = self.write_file('flavor.json', {'ram': ['x' * 100000]})
        rc = self.run_command('--flavor-json', path)
        self.assertEqual(common.EXIT_ERROR, rc)
        self.assertLess(len(self.error()), SHORT)

    def test_not_utf8(self):
        path = os.path.join(self.tmp, 'flavor.json')
        with open(path, 'wb') as f:
            f.write(b'{"name": "\xff"}')
        rc = self.run_command('--flavor-json', path)
        self.assertEqual(common.EXIT_ERROR, rc)
        self.assertIn('is not UTF-8 text', self.error())

    def test_server_json_nested_too_deep(self):
        self.command = 'verify-measurement'
        path = self.write_file('server.json', '{"a":' * 100000)
        key = os.path.join(self.tmp, 'tk')
        with open(key, 'wb') as f:
            f.write(b'\0' * 32)
        firmware = self.write_file('OVMF.fd', 'x')
        rc = self.run_command('--server-json', path, '--tk', key,
                              '--firmware', firmware)
        self.assertEqual(common.EXIT_ERROR, rc)
        self.assertIn('--server-json %s is nested too deeply' % path,
                      self.error())
