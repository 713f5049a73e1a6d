import testtools

from nova_sev import exception
from nova_sev.virt import memory_plan


class PlanMemoryTestCase(testtools.TestCase):
    """The arithmetic of the spec's memory table, for a whole host."""

    def test_spec_example_guest(self):
        # The spec's 4 GiB guest: 4718592 KiB hard limit, 16 MiB overhead.
        plan = memory_plan.plan_memory(host_ram_mb=262144,
                                       flavor_ram_mb=4096,
                                       host_os_reserved_mb=4096)
        self.assertEqual(4112, plan.pinned_mb)
        self.assertEqual(4718592, plan.hard_limit_kib)
        # (262144 - 4096) // 4112 = 62
        self.assertEqual(62, plan.max_guests_by_memory)
        self.assertEqual(62, plan.max_guests)
        self.assertEqual(62, plan.guests)
        self.assertEqual(4096 + 62 * 16, plan.reserved_host_memory_mb)
        self.assertTrue(plan.fits)
        self.assertIsNone(memory_plan.refusal_reason(plan))

    def test_video_and_overheads_from_options(self):
        plan = memory_plan.plan_memory(
            host_ram_mb=65536, flavor_ram_mb=2048, video_mb=64,
            host_os_reserved_mb=2048, firmware_overhead_mb=32,
            qemu_overhead_mb=256)
        self.assertEqual(2048 + 64 + 32, plan.pinned_mb)
        self.assertEqual((2144 + 256) * 1024, plan.hard_limit_kib)
        self.assertEqual((65536 - 2048) // 2144, plan.max_guests)
        self.assertEqual(2048 + plan.max_guests * 32,
                         plan.reserved_host_memory_mb)

    def test_guests_given_fit(self):
        plan = memory_plan.plan_memory(host_ram_mb=65536,
                                       flavor_ram_mb=2048, video_mb=64,
                                       host_os_reserved_mb=2048, guests=20)
        self.assertTrue(plan.fits)
        self.assertEqual(29, plan.max_guests)
        self.assertEqual(2048 + 20 * 16, plan.reserved_host_memory_mb)

    def test_guests_given_do_not_fit_memory(self):
        plan = memory_plan.plan_memory(host_ram_mb=65536,
                                       flavor_ram_mb=2048, video_mb=64,
                                       host_os_reserved_mb=2048, guests=30)
        self.assertFalse(plan.fits)
        reason = memory_plan.refusal_reason(plan)
        self.assertIn('30 SEV guests pin 63840 MiB', reason)
        self.assertIn('63488 MiB', reason)
        self.assertIn('enough for 29', reason)

    def test_asids_bound(self):
        plan = memory_plan.plan_memory(host_ram_mb=1048576,
                                       flavor_ram_mb=1024,
                                       host_os_reserved_mb=8192,
                                       max_asids=509)
        self.assertEqual(1000, plan.max_guests_by_memory)
        self.assertEqual(509, plan.max_guests)
        self.assertEqual(8192 + 509 * 16, plan.reserved_host_memory_mb)
        self.assertTrue(plan.fits)

    def test_asids_refuse(self):
        plan = memory_plan.plan_memory(host_ram_mb=1048576,
                                       flavor_ram_mb=1024,
                                       host_os_reserved_mb=8192,
                                       max_asids=15, guests=16)
        self.assertFalse(plan.fits)
        reason = memory_plan.refusal_reason(plan)
        self.assertIn('16 SEV guests need 16 ASID slots but the host has 15',
                      reason)
        self.assertIn('BIOS', reason)

    def test_no_asids(self):
        plan = memory_plan.plan_memory(host_ram_mb=65536, flavor_ram_mb=1024,
                                       max_asids=0)
        self.assertEqual(0, plan.max_guests)
        self.assertFalse(plan.fits)
        self.assertIn('host has 0', memory_plan.refusal_reason(plan))

    def test_not_even_one(self):
        plan = memory_plan.plan_memory(host_ram_mb=8192, flavor_ram_mb=8192,
                                       host_os_reserved_mb=512)
        self.assertEqual(0, plan.max_guests)
        self.assertEqual(512, plan.reserved_host_memory_mb)
        self.assertFalse(plan.fits)
        reason = memory_plan.refusal_reason(plan)
        self.assertIn('one SEV guest pins 8208 MiB', reason)
        self.assertIn('only 7680 MiB', reason)

    def test_exactly_full(self):
        plan = memory_plan.plan_memory(host_ram_mb=4112 * 3 + 100,
                                       flavor_ram_mb=4096,
                                       host_os_reserved_mb=100, guests=3)
        self.assertTrue(plan.fits)
        self.assertEqual(3, plan.max_guests)

    def test_bad_input(self):
        for kwargs, word in (
                (dict(host_ram_mb=0, flavor_ram_mb=1), 'host RAM'),
                (dict(host_ram_mb=10, flavor_ram_mb=0), 'flavor RAM'),
                (dict(host_ram_mb=10, flavor_ram_mb=1, video_mb=-1),
                 'video memory'),
                (dict(host_ram_mb=10, flavor_ram_mb=1, guests=0),
                 'number of guests'),
                (dict(host_ram_mb=10, flavor_ram_mb=1, max_asids=-1),
                 'ASID'),
                (dict(host_ram_mb=10, flavor_ram_mb=1,
                      host_os_reserved_mb=10), 'leaves nothing'),
                (dict(host_ram_mb=10.5, flavor_ram_mb=1), 'host RAM')):
            e = self.assertRaises(exception.InvalidInput,
                                  memory_plan.plan_memory, **kwargs)
            self.assertIn(word, str(e))

    def test_reserved_host_memory_mb(self):
        self.assertEqual(512 + 10 * 16,
                         memory_plan.reserved_host_memory_mb(512, 10, 16))

    def test_max_guests(self):
        self.assertEqual(7, memory_plan.max_guests(7))
        self.assertEqual(5, memory_plan.max_guests(7, 5))
        self.assertEqual(7, memory_plan.max_guests(7, 509))
