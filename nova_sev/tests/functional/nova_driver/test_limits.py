"""Host limits and failing closed: an SEV guest that does not fit makes
Nova try another host; a host that cannot give SEV aborts the build with
the reason as the fault. Either way no domain is defined for it.
"""

import os_traits

from nova_sev.tests.functional.nova_driver import base


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
