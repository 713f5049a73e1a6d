"""Admission and ``nova-sev plan-memory`` state one host bound
(``memory.sev_memory_left_mb``): on every generated host and guest mix
they agree on what fits.
"""

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import testtools

from nova_sev import exception
from nova_sev.virt import admission
from nova_sev.virt import memory
from nova_sev.virt import memory_plan


def admits_all(pinned, host_ram_mb, reserved_host_memory_mb, firmware_mb):
    """Whether admission takes every guest of ``pinned``, one after the
    other (no ASID bound).
    """
    for count in range(1, len(pinned) + 1):
        try:
            admission.check_admission(
                'uuid', 'host', pinned[count - 1], pinned[:count - 1],
                host_ram_mb, reserved_host_memory_mb, firmware_mb, None)
        except exception.SevHostLimitReached:
            return False
    return True


class MemoryBoundPropertiesTestCase(testtools.TestCase):

    @settings(max_examples=300, deadline=None)
    @given(host_ram_mb=st.integers(1024, 1 << 20),
           host_os_mb=st.integers(0, 16384),
           ram_mb=st.integers(1, 65536), video_mb=st.integers(0, 256),
           firmware_mb=st.integers(0, 64), guests=st.integers(1, 200))
    def test_plan_memory_and_admission_agree(self, host_ram_mb, host_os_mb,
                                             ram_mb, video_mb, firmware_mb,
                                             guests):
        if host_os_mb >= host_ram_mb:
            host_os_mb = host_ram_mb - 1
        plan = memory_plan.plan_memory(
            host_ram_mb, ram_mb, video_mb, host_os_mb, guests=guests,
            firmware_overhead_mb=firmware_mb)
        # The reservation plan-memory gives for that many guests: the
        # guests fit by admission exactly when the plan says they fit.
        pinned = [plan.pinned_mb] * guests
        self.assertEqual(plan.fits, admits_all(
            pinned, host_ram_mb, plan.reserved_host_memory_mb, firmware_mb))
        # ... and one more is refused when the plan holds the most.
        if plan.fits and plan.guests == plan.max_guests:
            self.assertFalse(admits_all(
                pinned + [plan.pinned_mb], host_ram_mb,
                memory_plan.reserved_host_memory_mb(
                    host_os_mb, guests + 1, firmware_mb), firmware_mb))

    @settings(max_examples=300, deadline=None)
    @given(host_ram_mb=st.integers(1024, 1 << 18),
           reserved_mb=st.integers(0, 16384),
           firmware_mb=st.integers(0, 64),
           guests=st.lists(st.tuples(st.integers(1, 32768),
                                     st.integers(0, 128)),
                           min_size=1, max_size=40))
    def test_mixed_guests_by_the_one_bound(self, host_ram_mb, reserved_mb,
                                           firmware_mb, guests):
        pinned = [memory.pinned_memory_mb(ram, video, firmware_mb)
                  for ram, video in guests]
        os_mb = memory.host_os_reserved_mb(reserved_mb, len(pinned),
                                           firmware_mb)
        fits = os_mb >= 0 and memory.sev_memory_left_mb(
            host_ram_mb, os_mb, pinned) >= 0
        # Admission of the last guest decides by the bound of all of them.
        try:
            admission.check_admission(
                'uuid', 'host', pinned[-1], pinned[:-1], host_ram_mb,
                reserved_mb, firmware_mb, None)
            admitted = True
        except exception.SevHostLimitReached:
            admitted = False
        self.assertEqual(fits, admitted)
        # A mix of one size is what plan-memory plans for.
        if len(set(pinned)) == 1 and os_mb >= 0 and os_mb < host_ram_mb:
            ram, video = guests[0]
            plan = memory_plan.plan_memory(
                host_ram_mb, ram, video, os_mb, guests=len(pinned),
                firmware_overhead_mb=firmware_mb)
            self.assertEqual(fits, plan.fits)
