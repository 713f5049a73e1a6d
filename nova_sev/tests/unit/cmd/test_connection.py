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
