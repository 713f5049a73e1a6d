import hashlib
import os

import fixtures
import testtools

from nova_sev.cmd import connection
from nova_sev import exception


class ConnectionTestCase(testtools.TestCase):

    def test_daemon_socket_means_system(self):
        sock = self.useFixture(fixtures.TempDir()).join('libvirt-sock')
        open(sock, 'w').close()
        self.assertEqual('qemu:///system', connection.default_uri((sock,)))

    def test_no_daemon_means_embedded(self):
        uri = connection.default_uri(('/nonexistent/sock',))
        self.assertTrue(uri.startswith('qemu:///embed?root=/'), uri)

    def test_embed_root(self):
        self.assertEqual('/x/y', connection.embed_root(
            'qemu:///embed?root=/x/y'))
        self.assertIsNone(connection.embed_root('qemu:///system'))

    def test_is_local(self):
        self.assertTrue(connection.is_local('qemu:///system'))
        self.assertFalse(connection.is_local('qemu+ssh://host1/system'))

    def test_version_string(self):
        self.assertEqual('9.0.0', connection.version_string(9000000))
        self.assertEqual('7.2.22', connection.version_string(7002022))


EMULATOR = '/usr/bin/qemu-system-x86_64'
# The head of a libvirt 9.0 capability cache file, as it writes one.
CACHE_XML = """<qemuCaps>
  <emulator>%s</emulator>
  <qemuctime>1796591058</qemuctime>
  <selfvers>9000000</selfvers>
  <flag name='kvm'/>
  <version>7002022</version>
  <kvmVersion>0</kvmVersion>
""" % EMULATOR


class _Conn:
    """A connection whose getVersion() is counted."""

    def __init__(self):
        self.asked = 0

    def getVersion(self):
        self.asked += 1
        return 8002000


class QemuVersionTestCase(testtools.TestCase):

    def test_cached_version(self):
        self.assertEqual(7002022, connection.cached_qemu_version(
            CACHE_XML, EMULATOR, 9000000))

    def test_cache_of_another_emulator_or_libvirt_is_not_used(self):
        self.assertIsNone(connection.cached_qemu_version(
            CACHE_XML, '/usr/bin/qemu-kvm', 9000000))
        self.assertIsNone(connection.cached_qemu_version(
            CACHE_XML, EMULATOR, 11003000))
        self.assertIsNone(connection.cached_qemu_version(
            CACHE_XML.replace('<version>7002022</version>', ''), EMULATOR,
            9000000))

    def _root(self, text):
        root = self.useFixture(fixtures.TempDir()).path
        cache = os.path.join(root, 'cache', 'qemu', 'capabilities')
        os.makedirs(cache)
        name = hashlib.sha256(EMULATOR.encode()).hexdigest() + '.xml'
        with open(os.path.join(cache, name), 'w') as f:
            f.write(text)
        return 'qemu:///embed?root=' + root

    def test_embedded_root_cache_answers(self):
        conn = _Conn()
        uri = self._root(CACHE_XML)
        self.assertEqual(7002022,
                         connection.qemu_version(conn, uri, EMULATOR,
                                                 9000000))
        self.assertEqual(0, conn.asked)

    def test_libvirt_asked_without_a_usable_cache(self):
        stale = self._root(CACHE_XML.replace('9000000', '8000000'))
        for uri, emulator in ((stale, EMULATOR),
                              ('qemu:///embed?root=/nonexistent', EMULATOR),
                              ('qemu:///system', EMULATOR),
                              (stale, None)):
            conn = _Conn()
            self.assertEqual(8002000,
                             connection.qemu_version(conn, uri, emulator,
                                                     9000000))
            self.assertEqual(1, conn.asked, uri)


class DefaultConnectionTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.opened = []

    def _open(self, fail_system):
        def open_connection(uri, readonly=False):
            self.opened.append(uri)
            if fail_system and uri == connection.SYSTEM_URI:
                raise exception.HostCheckFailed(reason='refused')
            return 'conn:' + uri
        self.useFixture(fixtures.MonkeyPatch(
            'nova_sev.cmd.connection.open_connection',
            open_connection))
        self.useFixture(fixtures.MonkeyPatch(
            'nova_sev.cmd.connection.default_uri',
            lambda: connection.SYSTEM_URI))

    def test_daemon_answers(self):
        self._open(fail_system=False)
        conn, uri = connection.open_default_connection()
        self.assertEqual(connection.SYSTEM_URI, uri)
        self.assertEqual(['qemu:///system'], self.opened)

    def test_stale_daemon_socket_falls_back_to_embedded(self):
        self._open(fail_system=True)
        conn, uri = connection.open_default_connection()
        self.assertEqual(connection.embedded_uri(), uri)
        self.assertEqual(['qemu:///system', uri], self.opened)
        self.assertEqual('conn:' + uri, conn)
