"""Property test: malformed domain capabilities, domain XML and ``kvm_amd``
parameter files fed to ``host-check`` and ``guest-xml``.

Whatever the input, a command ends with its documented exit status (0, 1
or 2; 2 whenever the input is known to be malformed), at most one error
line of bounded length, never a traceback or "unexpected error"; and what
it prints as a domain is well-formed XML whose ``<launchSecurity>``
carries only possible values.
"""

import io
import json
import os
from unittest import mock

import fixtures
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import testtools

from nova_sev.cmd import common
from nova_sev.cmd import config
from nova_sev.cmd import sev
from nova_sev.tests.fixtures import sev_host
from nova_sev.virt.libvirt import config as vconfig

DATA = os.path.join(os.path.dirname(__file__), '..', '..', 'data')
with open(os.path.join(DATA, 'nova-guest-q35.xml'), encoding='utf-8') as f:
    NOVA_DOMAIN = f.read()
NOVA_MEMORY = "<memory unit='KiB'>4194304</memory>"
# The error line and the "nova-sev: " before it.
MAX_ERROR_LINE = common.MAX_ERROR_CHARS + 100

NUMBERS = st.one_of(
    st.integers(-2 ** 70, 2 ** 70),
    st.integers(-2, 70),
    st.text(alphabet='0123456789-+xXeE._ \n&<;a', max_size=12),
    st.sampled_from(('9' * 5000, '0x2f', '047', '', '1e3', '\u0664\u0667')),
)


def mostly(usual, odd):
    """``usual`` seven times in eight, ``odd`` otherwise (st.one_of would
    flatten nested choices and weigh by their count).
    """
    return st.tuples(st.integers(0, 7), usual, odd).map(
        lambda t: t[2] if t[0] == 0 else t[1])


# Mostly possible values, so that many examples reach a verdict or a
# domain; one in eight is anything.
BITS = mostly(st.integers(0, 63), NUMBERS)
SLOTS = mostly(st.one_of(st.none(), st.integers(0, 1000)), NUMBERS)
SIZES = mostly(st.integers(1, 2 ** 34).map(str), NUMBERS)
UNITS = mostly(st.sampled_from(('b', 'KiB', 'k', 'KB', 'MiB', 'M')),
               st.one_of(st.sampled_from(('GB', 'GiB', 'TiB', 'T', 'PiB',
                                          'EiB', 'E', '', 'furlong', 'KiB"',
                                          'K&amp;')),
                         st.text(max_size=6)))
# Changes after which the document is not well-formed or carries a DTD:
# always exit 2.
BREAKING = st.sampled_from(('truncate', 'dtd', 'entity', 'open-tag',
                            'undefined-entity', 'bytes'))
MAYBE_BREAKING = mostly(st.none(), BREAKING)


def _break(text: str, how: str, where: int) -> str:
    if how == 'truncate':
        return text[:where % (len(text) - 20)]
    if how == 'dtd':
        return '<!DOCTYPE d [<!ENTITY x "%s">]>' % ('y' * where) + text
    if how == 'entity':
        return ('<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>' +
                text.replace('</arch>', '&x;</arch>').replace(
                    '</name>', '&x;</name>'))
    last = text.rindex('</')
    if how == 'open-tag':
        return text[:last] + '<%s' % ('q' * where) + text[last:]
    if how == 'undefined-entity':
        return text[:last] + '&nope;' + text[last:]
    return '\ufeff\x00' + text


SYSFS = mostly(
    st.sampled_from(('1', 'Y', '0', 'N', 'y', 'n', '1\n', 'Y\n')),
    st.one_of(st.binary(max_size=80).map(lambda b: b.decode('latin-1')),
              st.sampled_from(('fifo', 'dir', 'missing')).map(
                  lambda k: (k,))))


class MalformedInputPropertyTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        # A read that blocks (a FIFO) fails the test instead of hanging it.
        self.useFixture(fixtures.Timeout(600, gentle=True))
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.params = os.path.join(self.tmp, 'params')
        os.mkdir(self.params)

    def _write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, 'w', encoding='utf-8',
                  errors='surrogateescape') as f:
            f.write(text)
        return path

    def _params(self, values):
        for name, value in zip(('sev', 'sev_es'), values):
            path = os.path.join(self.params, name)
            if os.path.isdir(path):
                os.rmdir(path)
            elif os.path.lexists(path):
                os.unlink(path)
            if value == ('fifo',):
                os.mkfifo(path)
            elif value == ('dir',):
                os.mkdir(path)
            elif value != ('missing',):
                with open(path, 'w', encoding='latin-1') as f:
                    f.write(value)

    def _run(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        try:
            with mock.patch('sys.stdout', out), mock.patch('sys.stderr', err):
                rc = sev.main(list(argv))
        finally:
            config.CONF.clear()
        lines = err.getvalue().splitlines()
        self.assertNotIn('Traceback', err.getvalue())
        self.assertNotIn('unexpected error', err.getvalue())
        self.assertLessEqual(len(lines), 1, err.getvalue())
        for line in lines:
            self.assertLessEqual(len(line), MAX_ERROR_LINE)
        self.assertIn(rc, (common.EXIT_OK, common.EXIT_REFUSED,
                           common.EXIT_ERROR))
        return rc, out.getvalue()

    def _domcaps(self, data):
        values = {'cbitpos': data.draw(BITS),
                  'reduced': data.draw(BITS),
                  'max_guests': data.draw(SLOTS),
                  'max_es_guests': data.draw(SLOTS)}
        xml = sev_host.domcaps_xml(**values)
        if data.draw(st.sampled_from((False, False, False, True))):
            # A second <sev>, the same or another.
            other = sev_host.domcaps_xml(
                sev=data.draw(st.booleans()), cbitpos=data.draw(BITS))
            start = other.index('<features>') + len('<features>')
            xml = xml.replace('</features>', other[start:other.index(
                '</features>')] + '</features>')
        breaking = data.draw(MAYBE_BREAKING)
        if breaking:
            xml = _break(xml, breaking, data.draw(st.integers(1, 5000)))
        return xml, breaking

    @settings(max_examples=150, deadline=None)
    @given(st.data())
    def test_host_check(self, data):
        xml, breaking = self._domcaps(data)
        self._params((data.draw(SYSFS), data.draw(SYSFS)))
        rc, out = self._run('host-check', '--domcaps',
                            self._write('caps.xml', xml), '--kvm-amd-params',
                            self.params, '--format', 'json')
        if breaking:
            self.assertEqual(common.EXIT_ERROR, rc)
        if rc == common.EXIT_ERROR:
            self.assertEqual('', out)
            return
        report = json.loads(out)
        if report['sev']['cbitpos'] is not None:
            self.assertIn(report['sev']['cbitpos'], range(64))
        if report['sev']['reduced_phys_bits'] is not None:
            self.assertIn(report['sev']['reduced_phys_bits'], range(64))
        for part in ('sev', 'sev_es'):
            guests = report[part]['max_guests']
            self.assertTrue(guests is None or 0 <= guests < 2 ** 32)

    @settings(max_examples=150, deadline=None)
    @given(st.data())
    def test_guest_xml(self, data):
        domain = NOVA_DOMAIN.replace(NOVA_MEMORY, "<memory unit='%s'>%s"
                                     "</memory>" % (data.draw(UNITS),
                                                    data.draw(SIZES)))
        if data.draw(st.booleans()):
            domain = domain.replace(
                "<model type='virtio'", "<model type='virtio' vram='%s'"
                % data.draw(SIZES), 1)
        hostdevs = data.draw(st.sampled_from((0, 0, 1, 600)))
        domain = domain.replace('</devices>', "<hostdev mode='subsystem' "
                                "type='pci'/>" * hostdevs + '</devices>')
        breaking = data.draw(MAYBE_BREAKING)
        if breaking:
            domain = _break(domain, breaking, data.draw(st.integers(1, 5000)))
        caps, caps_breaking = self._domcaps(data)
        self._params((data.draw(SYSFS), data.draw(SYSFS)))
        extra = data.draw(st.sampled_from((
            'trait:HW_CPU_X86_AMD_SEV=required',
            'trait:HW_CPU_X86_AMD_SEV_ES=required', 'hw:cpu_policy=shared')))
        rc, out = self._run(
            'guest-xml', '--domain', self._write('domain.xml', domain),
            '--domcaps', self._write('caps.xml', caps), '--kvm-amd-params',
            self.params, '--extra-spec', extra)
        if breaking or (caps_breaking and 'SEV' in extra):
            self.assertEqual(common.EXIT_ERROR, rc)
        if rc != common.EXIT_OK:
            self.assertEqual('', out)
            return
        # What is printed is well-formed XML without DTD or entities.
        root = vconfig.parse_xml(out, 'domain')
        lsec = root.findall('launchSecurity')
        if 'SEV' not in extra:
            self.assertEqual([], lsec)
            return
        self.assertEqual(1, len(lsec))
        self.assertIn(int(lsec[0].findtext('cbitpos')), range(64))
        self.assertIn(int(lsec[0].findtext('reducedPhysBits')), range(64))
        self.assertTrue(root.findtext('memtune/hard_limit').isdigit())
