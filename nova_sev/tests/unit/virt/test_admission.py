import testtools

from nova_sev import exception
from nova_sev.virt import admission
from nova_sev.virt import memory_plan


class CheckAdmissionTestCase(testtools.TestCase):

    def check(self, new=2064, existing=(), ram=65536, reserved=512,
              max_guests=15, firmware=16):
        admission.check_admission('inst-1', 'cmp1', new, list(existing),
                                  ram, reserved, firmware, max_guests)

    def test_fits(self):
        self.check()
        self.check(existing=[2064] * 6)
        # Exactly at the limit still fits.
        self.check(new=3584 + 16, ram=4096, reserved=512)
        # Unknown ASID slots leave memory as the only bound.
        self.check(existing=[17] * 31, new=17, max_guests=None)

    def test_asid_slots(self):
        self.check(existing=[2064] * 14)
        e = self.assertRaises(exception.SevHostLimitReached, self.check,
                              existing=[2064] * 15)
        self.assertIn('SEV host limit on cmp1: all 15 ASID slots (libvirt '
                      'maxGuests) are in use', e.message)
        self.assertIn('instance inst-1', e.message)
        self.assertRaises(exception.SevHostLimitReached, self.check,
                          max_guests=0)

    def test_pinned_memory(self):
        e = self.assertRaises(exception.SevHostLimitReached, self.check,
                              existing=[2064], ram=4096, reserved=512)
        self.assertIn('SEV guests would pin 4096 MiB of RAM and video > '
                      '3584 MiB (host RAM 4096 MiB - reserved_host_memory_mb '
                      '512)', e.message)
        self.assertIn('nova-sev plan-memory', e.message)

    def test_firmware_regions_need_the_reservation(self):
        self.check(existing=[17] * 31, new=17, reserved=512, max_guests=None)
        e = self.assertRaises(exception.SevHostLimitReached, self.check,
                              existing=[17] * 32, new=17, reserved=512,
                              max_guests=None)
        self.assertIn('firmware regions of 33 SEV guests (33 x 16 MiB) '
                      'exceed reserved_host_memory_mb 512', e.message)

    def test_agrees_with_plan_memory(self):
        # The host plan-memory sizes: 3 guests of 4096 MiB, R=100.
        plan = memory_plan.plan_memory(12436, 4096, host_os_reserved_mb=100)
        self.assertEqual(3, plan.max_guests)
        reserved = plan.reserved_host_memory_mb
        self.check(new=plan.pinned_mb, existing=[plan.pinned_mb] * 2,
                   ram=12436, reserved=reserved)
        self.assertRaises(exception.SevHostLimitReached, self.check,
                          new=plan.pinned_mb,
                          existing=[plan.pinned_mb] * 3, ram=12436,
                          reserved=reserved)

    def test_limit_comes_first(self):
        # Nova keeps 255 characters of a fault, after its own prefix.
        e = self.assertRaises(exception.SevHostLimitReached, self.check,
                              existing=[2064] * 15)
        self.assertLess(e.message.index('ASID'), 60)


class GuestsHoldingSlotsTestCase(testtools.TestCase):
    """Who holds a slot while nova-compute builds guests concurrently."""

    def test_built_sev_guests_hold_slots(self):
        self.assertEqual({'a': 2064, 'c': 4112},
                         admission.guests_holding_slots(
                             [('a', False, 2064), ('b', False, None),
                              ('c', False, 4112)], {}, 'new'))

    def test_building_guest_holds_a_slot_only_once_admitted(self):
        listed = [('a', True, 2064), ('b', True, 2064), ('new', True, 2064)]
        self.assertEqual({}, admission.guests_holding_slots(listed, {},
                                                            'new'))
        self.assertEqual({'b': 2064}, admission.guests_holding_slots(
            listed, {'b': 2064}, 'new'))

    def test_admitted_guest_counts_once_built(self):
        # Built, but Nova has not yet saved it ACTIVE, or saved it: once.
        for building in (True, False):
            self.assertEqual({'a': 2064}, admission.guests_holding_slots(
                [('a', building, 2064)], {'a': 2064}, 'new'))

    def test_the_new_guest_is_not_its_own_neighbour(self):
        self.assertEqual({}, admission.guests_holding_slots(
            [('new', False, 2064)], {'new': 2064}, 'new'))

    def test_n_concurrent_builds_k_slots(self):
        # Admitted one at a time under the driver's lock: each sees those
        # admitted before it.
        for slots in range(0, 6):
            admitted = {}
            listed = [('g%d' % i, True, 2064) for i in range(5)]
            for uuid, _b, pinned in listed:
                holding = admission.guests_holding_slots(listed, admitted,
                                                         uuid)
                try:
                    admission.check_admission(
                        uuid, 'host', pinned, list(holding.values()),
                        65536, 4096, 16, slots)
                except exception.SevHostLimitReached:
                    continue
                admitted[uuid] = pinned
            self.assertEqual(min(slots, 5), len(admitted))
