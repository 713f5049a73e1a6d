"""Host limits and failing closed: an SEV guest that does not fit makes
Nova try another host; a host that cannot give SEV aborts the build with
the reason as the fault. Either way no domain is defined for it.
"""

import os
import threading
import time

import fixtures
import nova.conf as nova_conf
import os_resource_classes as orc
import os_traits

from nova_sev.tests.functional.nova_driver import base
from nova_sev.virt.libvirt import driver


class TestSevLimits(base.SevServersTestBase):

    def test_asid_slots_and_pinned_memory(self):
        # Placement may overcommit RAM; pinned SEV memory may not be.
        self.flags(ram_allocation_ratio=1.5, reserved_host_memory_mb=512)
        # Free RAM decides, not past build failures: sev-small (32 GiB) is
        # always tried first.
        self.flags(ram_weight_multiplier=1000.0,
                   build_failure_weight_multiplier=0.0,
                   group='filter_scheduler')
        self.start_sev_compute('sev-small', max_guests=1, mem_gib=32)
        self.start_sev_compute('sev-mem', mem_gib=4)

        first = self.boot('sev-trait', host='sev-small')
        self.assertEqual('sev-small', self.host_of(first))

        # sev-small's one ASID slot is taken: refused there, and with no
        # other host allowed the build ends in ERROR.
        second = self.boot('sev-trait', host='sev-small',
                           expected_state='ERROR')
        self.assertIn('fault', second)
        self.assertEqual([], self.domain_xmls(second))
        self.assertIn('SEV host limit on sev-small: all 1 ASID slots '
                      '(libvirt maxGuests) are in use',
                      self.stdlog.logger.output)
        # Left to the scheduler: tried on sev-small first, refused there,
        # rescheduled to sev-mem.
        refusals = self.stdlog.logger.output.count(
            'SEV host limit on sev-small')
        third = self.boot('sev-trait')
        self.assertEqual('sev-mem', self.host_of(third))
        self.assertGreater(self.stdlog.logger.output.count(
            'SEV host limit on sev-small'), refusals)

        # 2 x 2048 MiB of pinned RAM > 4096 - 512 MiB: with no other host
        # allowed, the build fails on the memory limit.
        fourth = self.boot('sev-trait', host='sev-mem',
                           expected_state='ERROR')
        self.assertIn('SEV host limit on sev-mem: SEV guests would pin 4096 '
                      'MiB of RAM and video > 3584 MiB (host RAM 4096 MiB - '
                      'reserved_host_memory_mb 512)',
                      self.stdlog.logger.output)
        self.assertIn('fault', fourth)
        self.assertEqual([], self.domain_xmls(fourth))

    def test_fail_closed_when_the_host_loses_sev(self):
        self.start_sev_compute('sev')
        self.assertIn(os_traits.HW_CPU_X86_AMD_SEV, self.root_traits('sev'))
        # libvirt reconnects and no longer offers SEV; placement still has
        # the trait until the next periodic update.
        compute = self.computes['sev']
        compute.driver._host.get_connection()._domain_capability_features = (
            base.NO_SEV_FEATURES)
        compute.driver._handle_conn_event(True, None)

        server = self.boot('sev-trait', expected_state='ERROR')
        # The user reads why: the build is aborted with the reason.
        self.assertIn('but this host cannot run SEV guests: libvirt domain '
                      'capabilities report no SEV', server['fault']['message'])
        self.assertIn('aborted', server['fault']['message'])
        self.assertEqual([], self.domain_xmls(server))

        self._run_periodics()
        self.assertFalse(
            {os_traits.HW_CPU_X86_AMD_SEV, os_traits.HW_CPU_AMD_SEV} &
            self.root_traits('sev'))


class TestSevAdmission(base.SevServersTestBase):
    """Admission under nova-compute's concurrent builds, and what the user
    reads when no host is left.
    """
    # Casts stay casts, as in a deployment: unshelves run at once.
    CAST_AS_CALL = False

    def wait_for_end_of_build(self, server_id, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.admin_api.get_server(server_id)
            # Nova saves an instance in ERROR before its fault.
            if server['status'] == 'ACTIVE' or (
                    server['status'] == 'ERROR' and 'fault' in server):
                return server
            time.sleep(0.1)
        self.fail('%s still building after %ds' % (server_id, timeout))

    def test_concurrent_builds_admit_exactly_the_free_slots(self):
        self.start_sev_compute('sev', max_guests=3)
        first = self.boot('sev-trait', host='sev')
        free_slots, builds = 2, 4

        # All four builds reach admission before any is admitted: they run
        # at once in nova-compute (max_concurrent_builds is 10), and the
        # barrier would break (failing the builds) if they did not.
        barrier = threading.Barrier(builds, timeout=60)
        admit = driver.SevLibvirtDriver._sev_admit

        def _admit(drv, context, instance, plan):
            barrier.wait()
            return admit(drv, context, instance, plan)

        self.useFixture(fixtures.MonkeyPatch(
            'nova_sev.virt.libvirt.driver.SevLibvirtDriver._sev_admit',
            _admit))
        body = self._build_server(
            image_uuid=self.images['plain'],
            flavor_id=self.flavors['sev-trait'], networks='none',
            host='sev')
        body.update(min_count=builds, max_count=builds)
        self.admin_api.post_server({'server': body})
        servers = [self.wait_for_end_of_build(s['id'])
                   for s in self.admin_api.get_servers()
                   if s['id'] != first['id']]
        self.assertEqual(builds, len(servers))
        self.assertFalse(barrier.broken)
        active = [s for s in servers if s['status'] == 'ACTIVE']
        refused = [s for s in servers if s['status'] == 'ERROR']
        self.assertEqual(free_slots, len(active))
        for server in active:
            self.assertSevDomain(self.last_domain(server)[1])
        for server in refused:
            self.assertEqual([], self.domain_xmls(server))
            # Nova's fault says only that the retries ran out; the event
            # names the limit.
            self.assertIn('Exceeded maximum number of retries',
                          server['fault']['message'])
            self.assertIn(
                'SEV host limit on sev: all 3 ASID slots (libvirt maxGuests) '
                'are in use', '\n'.join(self.event_details(server, 'create')))

    def test_concurrent_unshelves_admit_exactly_the_free_slots(self):
        self.start_sev_compute('sev', max_guests=2)
        self.start_sev_compute('other')
        servers = [self.boot('sev-trait', host='other') for _ in range(3)]
        for server in servers:
            self._shelve_server(server)

        barrier = threading.Barrier(len(servers), timeout=60)
        admit = driver.SevLibvirtDriver._sev_admit

        def _admit(drv, context, instance, plan):
            barrier.wait()
            return admit(drv, context, instance, plan)

        self.useFixture(fixtures.MonkeyPatch(
            'nova_sev.virt.libvirt.driver.SevLibvirtDriver._sev_admit',
            _admit))
        for server in servers:
            self.admin_api.post_server_action(
                server['id'], {'unshelve': {'host': 'sev'}})
        ends = []
        deadline = time.monotonic() + 120
        for server in servers:
            while time.monotonic() < deadline:
                server = self.admin_api.get_server(server['id'])
                if server['OS-EXT-STS:task_state'] is None and \
                        server['status'] in ('ACTIVE', 'SHELVED_OFFLOADED'):
                    break
                time.sleep(0.1)
            ends.append(server)
        self.assertFalse(barrier.broken)
        self.assertEqual(['ACTIVE', 'ACTIVE', 'SHELVED_OFFLOADED'],
                         sorted(s['status'] for s in ends))
        [refused] = [s for s in ends if s['status'] == 'SHELVED_OFFLOADED']
        self.assertIn(
            'SEV host limit on sev: all 2 ASID slots (libvirt maxGuests) '
            'are in use', '\n'.join(self.event_details(refused, 'unshelve')))

    def test_memory_limit_named_when_hosts_run_out(self):
        self.flags(ram_allocation_ratio=1.5, reserved_host_memory_mb=512)
        self.start_sev_compute('sev-mem', mem_gib=4)
        self.boot('sev-trait')
        # 2 x 2048 MiB of pinned RAM > 4096 - 512 MiB; placement (RAM
        # overcommitted) offers the host, the driver refuses it, and no
        # host is left.
        server = self.boot('sev-trait', expected_state='ERROR')
        self.assertIn('Exceeded maximum number of retries',
                      server['fault']['message'])
        self.assertIn(
            'SEV host limit on sev-mem: SEV guests would pin 4096 MiB of RAM '
            'and video > 3584 MiB', '\n'.join(
                self.event_details(server, 'create')))


class TestSevPlacementCounting(base.SevServersTestBase):
    """With ``resources:MEM_ENCRYPTION_CONTEXT=1`` in the flavor, placement
    counts ASID slots (Nova's ``<node>_amd_sev`` provider holds one per
    ``maxGuests``) on every placement: boots, cold migrations, resizes,
    evacuations and unshelves are offered only hosts with a free slot,
    before anything is copied, and atomically.
    """
    # Casts stay casts, as in a deployment (and as the moves of
    # test_lifecycle run).
    CAST_AS_CALL = False

    def test_every_move_goes_where_a_slot_is_free(self):
        # Nova's fake host has no disk files to measure before a move.
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.driver.LibvirtDriver._get_instance_disk_info',
            return_value=[]))
        self.start_sev_compute('sev-a', max_guests=1)
        self.start_sev_compute('sev-b', max_guests=1)
        self.start_sev_compute('plain', sev=False, mem_gib=64)
        self.flavors['counted'] = self._create_flavor(
            name='counted', memory_mb=2048, extra_spec={
                'trait:%s' % os_traits.HW_CPU_X86_AMD_SEV: 'required',
                'resources:%s' % orc.MEM_ENCRYPTION_CONTEXT: '1'})

        first = self.boot('counted')
        second = self.boot('counted')
        first_host, second_host = self.host_of(first), self.host_of(second)
        self.assertEqual({'sev-a', 'sev-b'}, {first_host, second_host})

        # No slot left anywhere: placement finds no host, and the driver is
        # never asked.
        third = self.boot('counted', expected_state='ERROR')
        self.assertIn('No valid host', third['fault']['message'])
        self.assertEqual([], self.domain_xmls(third))

        # A cold migration finds no host either: the guest stays where it
        # is, running, and nothing is defined elsewhere.
        defined = len(self.defined)
        self.admin_api.post_server_action(first['id'], {'migrate': None})
        self._wait_for_action_fail_completion(
            first, 'migrate', 'conductor_migrate_server')
        first = self._wait_for_server_parameter(
            first, {'status': 'ACTIVE', 'OS-EXT-STS:task_state': None})
        self.assertEqual(first_host, self.host_of(first))
        self.assertEqual(defined, len(self.defined))

        # Shelved and offloaded, the second guest gives its slot back; the
        # first moves into it, and unshelving the second takes the slot
        # the first left.
        self._shelve_server(second)
        # Nova's functional harness mocks the image creation that would
        # have made the instance directory a move renames.
        os.makedirs(os.path.join(nova_conf.CONF.instances_path, first['id']),
                    exist_ok=True)
        first = self.migrate(first)
        self._confirm_resize(first)
        self.assertEqual(second_host, self.host_of(first))
        second = self._unshelve_server(second)
        self.assertEqual(first_host, self.host_of(second))
        for server in (first, second):
            self.assertSevDomain(self.last_domain(server)[1])

        # The second guest's host fails: with the other SEV host's slot
        # taken, evacuation finds no host and the guest stays where it is;
        # once the first guest is gone, it is evacuated into its slot.
        self.computes[first_host].stop()
        service = self.admin_api.get_services(
            host=first_host, binary='nova-compute')[0]
        self.admin_api.put_service_force_down(service['id'], True)
        defined = len(self.defined)
        self.admin_api.post_server_action(second['id'], {'evacuate': {}})
        self._wait_for_migration_status(second, ['error'])
        self.assertEqual(first_host, self.host_of(second))
        self.assertEqual(defined, len(self.defined))
        self._delete_server(first)
        self.admin_api.post_server_action(second['id'], {'evacuate': {}})
        self._wait_for_migration_status(second, ['done'])
        self._wait_for_server_parameter(second, {
            'OS-EXT-SRV-ATTR:host': second_host,
            'OS-EXT-STS:task_state': None})
        self.assertEqual(second_host, self.last_domain(second)[0])

        # Placement did all of it: no host ever refused a guest.
        self.assertNotIn('SEV host limit', self.stdlog.logger.output)
