import fixtures
import testtools

from nova_sev.virt.libvirt import connection


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
