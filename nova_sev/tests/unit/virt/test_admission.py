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
