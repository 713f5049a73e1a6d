"""What SEV instances cannot undergo is refused, leaving them as they were;
what they can undergo keeps them SEV and on SEV hosts.
"""

import fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.api import client

from nova_sev.tests.functional.nova_driver import base


class TestSevLifecycle(base.SevServersTestBase):
    # Casts stay casts, as in a deployment: the API answers before the
    # compute host refuses.
    CAST_AS_CALL = False

    def resources(self, server):
        return {rp: alloc['resources'] for rp, alloc in
                self._get_allocations_by_server_uuid(server['id']).items()}

    def assertUnchanged(self, server, host, allocations):
        server = self._wait_for_server_parameter(
            server, {'status': 'ACTIVE', 'OS-EXT-STS:task_state': None,
                     'OS-EXT-SRV-ATTR:host': host})
        self.assertEqual(allocations, self.resources(server))
        self.assertEqual(fakelibvirt.VIR_DOMAIN_RUNNING,
                         self.domain(host, server).info()[0])
        return server

    def test_refusals_leave_the_instance_as_it_was(self):
        self.start_sev_compute('sev')
        self.start_sev_compute('sev2')
        server = self.boot('sev-trait')
        host = self.host_of(server)
        allocations = self.resources(server)
        defined = len(self.defined)

        # Live migration: refused by the destination's pre-check before
        # anything moves. From microversion 2.34 the API accepts the request
        # and the migration ends in error; before it, the API waits for the
        # pre-checks and says why.
        self.admin_api.post_server_action(
            server['id'], {'os-migrateLive': {'host': None,
                                              'block_migration': 'auto'}})
        self._wait_for_migration_status(server, ['error'])
        self.assertUnchanged(server, host, allocations)
        self.admin_api.microversion = '2.30'
        ex = self.assertRaises(
            client.OpenStackApiException, self.admin_api.post_server_action,
            server['id'], {'os-migrateLive': {'host': None,
                                              'block_migration': 'auto'}})
        self.admin_api.microversion = self.microversion
        self.assertEqual(400, ex.response.status_code)
        self.assertIn('Live migration refused for SEV instance %s: QEMU '
                      'cannot migrate encrypted guest memory' % server['id'],
                      str(ex))
        self.assertUnchanged(server, host, allocations)

        # Suspend (and so resume): rolled back, the guest keeps running.
        self.api.post_server_action(server['id'], {'suspend': {}})
        self._wait_for_action_fail_completion(
            server, 'suspend', 'compute_suspend_instance')
        self.assertUnchanged(server, host, allocations)
        self.assertTrue(any(
            'Suspend refused for SEV instance' in d
            for d in self.event_details(server, 'suspend')),
            self.event_details(server, 'suspend'))
        # Nothing was redefined by any of it.
        self.assertEqual(defined, len(self.defined))

    def test_moves_keep_sev_and_sev_hosts(self):
        self.start_sev_compute('sev')
        self.start_sev_compute('sev2')
        # The most attractive host to the RAM weigher, were SEV ignored.
        self.start_sev_compute('plain', sev=False, mem_gib=64)
        # Nova's fake host has no disk files to measure before a move.
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.driver.LibvirtDriver._get_instance_disk_info',
            return_value=[]))
        server = self.boot('sev-trait')

        def check(flavor_mb=2048, host=None):
            host = host or self.host_of(server)
            self.assertIn(host, ('sev', 'sev2'))
            defined_on, root = self.last_domain(server)
            self.assertEqual(host, defined_on)
            self.assertSevDomain(root, flavor_mb)
            return host

        first = check()
        count = len(self.domain_xmls(server))
        self._reboot_server(server, hard=True)
        self.assertGreater(len(self.domain_xmls(server)), count)
        check()

        server = self.migrate(server)
        self._confirm_resize(server)
        second = check()
        self.assertNotEqual(first, second)

        server = self._resize_server(server, self.flavors['sev-large'])
        self._confirm_resize(server)
        self.assertEqual(first, check(4096))

        self._shelve_server(server)
        server = self._unshelve_server(server)
        check(4096)

        server = self._rebuild_server(server, self.images['sev-trait'])
        host = check(4096)

        self.computes[host].stop()
        service = self.admin_api.get_services(
            host=host, binary='nova-compute')[0]
        self.admin_api.put_service_force_down(service['id'], True)
        other = 'sev2' if host == 'sev' else 'sev'
        # Nova keeps the power state it finds, which the stopped service
        # may have left as SHUTOFF: only where it lands matters here.
        self.admin_api.post_server_action(server['id'], {'evacuate': {}})
        self._wait_for_migration_status(server, ['done'])
        self._wait_for_server_parameter(server, {
            'OS-EXT-SRV-ATTR:host': other, 'OS-EXT-STS:task_state': None})
        check(4096, other)
