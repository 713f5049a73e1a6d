from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
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


class AsidPoolTestCase(testtools.TestCase):

    def test_pools(self):
        from nova_sev.virt.hardware import SevMode
        self.assertEqual('maxGuests', admission.asid_pool(SevMode.SEV))
        self.assertEqual('maxESGuests', admission.asid_pool(SevMode.SEV_ES))
        self.assertEqual('maxESGuests', admission.asid_pool(SevMode.SEV_SNP))

    def test_es_and_snp_share_the_es_pool(self):
        # Two SEV-ES/SNP guests and ten SEV guests on a host with 2 ES
        # slots: a third ES/SNP guest is refused, an SEV guest is not.
        existing = [17] * 12
        e = self.assertRaises(
            exception.SevHostLimitReached, admission.check_admission,
            'inst-1', 'cmp1', 17, existing, 65536, 4096, 16, 2,
            same_pool_guests=2, pool=admission.ES_POOL)
        self.assertIn('all 2 ES/SNP ASID slots (libvirt maxESGuests)',
                      str(e))
        admission.check_admission('inst-1', 'cmp1', 17, existing, 65536,
                                  4096, 16, 15, same_pool_guests=10)


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

    def test_arrived_guest_counts_what_the_database_says(self):
        # Resized since it was admitted: the database has its new size.
        self.assertEqual({'a': 4112}, admission.guests_holding_slots(
            [('a', False, 4112)], {'a': 2064}, 'new'))

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


# Sizes a guest pins (RAM + firmware), MiB.
PINNED = st.sampled_from((528, 1040, 2064, 4112, 8208))
FIRMWARE_MB = 16


class AdmissionPropertiesTestCase(testtools.TestCase):
    """Generated hosts and arrivals: new boots, and moves that create the
    guest on the host (evacuate, unshelve, rebuild), all building at once
    as nova-compute runs them, admitted one at a time in a random order.
    """

    @settings(max_examples=300, deadline=None)
    @given(slots=st.one_of(st.none(), st.integers(0, 8)),
           host_ram_mb=st.integers(2048, 65536),
           reserved_mb=st.integers(0, 2048),
           running=st.lists(PINNED, max_size=6),
           arriving=st.lists(PINNED, max_size=10),
           order=st.randoms(use_true_random=False),
           roomy=st.booleans())
    def test_never_beyond_the_host(self, slots, host_ram_mb, reserved_mb,
                                   running, arriving, order, roomy):
        if roomy:
            # Memory to spare: only the ASID slots limit.
            host_ram_mb, reserved_mb = 1 << 20, 4096
        listed = [('run%d' % i, False, mb) for i, mb in enumerate(running)]
        listed += [('new%d' % i, True, mb) for i, mb in enumerate(arriving)]
        admitted = {}
        refused = []
        turn = [entry for entry in listed if entry[1]]
        order.shuffle(turn)
        for uuid, _building, pinned in turn:
            holding = admission.guests_holding_slots(listed, admitted, uuid)
            try:
                admission.check_admission(
                    uuid, 'host', pinned, list(holding.values()),
                    host_ram_mb, reserved_mb, FIRMWARE_MB, slots)
            except exception.SevHostLimitReached:
                refused.append((uuid, pinned, dict(holding)))
                continue
            admitted[uuid] = pinned
        # What holds the host at the end: every running guest and every
        # admitted one, each once.
        holding = running + list(admitted.values())
        count = len(holding)
        guest_mb = sum(holding) - count * FIRMWARE_MB
        if admitted:
            if slots is not None:
                self.assertLessEqual(count, slots)
            self.assertLessEqual(guest_mb, host_ram_mb - reserved_mb)
            self.assertLessEqual(count * FIRMWARE_MB, reserved_mb)
        # A refusal was needed: the guest would not have fitted beside those
        # admitted before it.
        for uuid, pinned, before in refused:
            count = len(before) + 1
            guest_mb = sum(before.values()) + pinned - count * FIRMWARE_MB
            self.assertTrue(
                (slots is not None and count > slots) or
                guest_mb > host_ram_mb - reserved_mb or
                count * FIRMWARE_MB > reserved_mb, (uuid, before))
        # Slots alone: exactly the free ones are taken.
        if roomy and slots is not None:
            self.assertEqual(max(0, min(slots - len(running),
                                        len(arriving))), len(admitted))
