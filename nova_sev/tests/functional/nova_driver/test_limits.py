"""Host limits and failing closed: an SEV guest that does not fit makes
Nova try another host; a host that cannot give SEV aborts the build with
the reason as the fault. Either way no domain is defined for it.
"""

import threading
import time

import fixtures
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

    def wait_for_end_of_build(self, server_id, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.admin_api.get_server(server_id)
            if server['status'] in ('ACTIVE', 'ERROR'):
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
