"""Whether one more SEV guest fits on a host (spec: "Proposed change",
memory table; design.md §4).

Each running SEV guest holds one of the host's ASID slots (libvirt's
``maxGuests``) and pins its memory, which can be neither swapped nor
overcommitted. Of what a guest pins, its RAM and video memory are counted
by placement and its firmware/ROM/ACPI regions belong in
``reserved_host_memory_mb``, once per guest. So a new guest is refused when
the ASID slots are taken, when the RAM and video memory of all SEV guests
would exceed the host's RAM less ``reserved_host_memory_mb`` (placement's
view, but with no overcommit, whatever ``ram_allocation_ratio`` says), or
when their firmware regions would not fit in the reservation. These are the
bounds ``nova-sev plan-memory`` plans for. Pure: the driver gathers the
numbers.

SEV-ES and SEV-SNP guests draw on a second ASID pool (libvirt's
``maxESGuests``), which they share; plain SEV guests use ``maxGuests``.
SEV-SNP guests lock no memory (guest_memfd) but cannot swap it either, so
their memory is counted like that of SEV guests.
"""

from collections.abc import Sequence
import typing

from nova_sev import exception
from nova_sev.virt.hardware import SevMode
from nova_sev.virt import memory


def asid_pool(mode: SevMode) -> str:
    """The ASID pool a ``mode`` guest takes a slot of."""
    return ES_POOL if mode in (SevMode.SEV_ES, SevMode.SEV_SNP) else SEV_POOL


ES_POOL = 'maxESGuests'
SEV_POOL = 'maxGuests'


def check_admission(instance_uuid: str, host: str, new_pinned_mb: int,
                    existing_pinned_mb: Sequence[int], host_ram_mb: int,
                    reserved_host_memory_mb: int, firmware_overhead_mb: int,
                    max_guests: int | None, *,
                    same_pool_guests: int | None = None,
                    pool: str = SEV_POOL) -> None:
    """Raise SevHostLimitReached, naming the limit, when a new SEV guest
    pinning ``new_pinned_mb`` does not fit beside the SEV guests already on
    the host (``existing_pinned_mb``, one entry each, of every mode).
    Pinned sizes include ``firmware_overhead_mb`` each. ``max_guests`` is
    the slots of the new guest's ASID ``pool`` (``maxGuests`` for SEV,
    ``maxESGuests`` for SEV-ES and SEV-SNP), None when libvirt does not
    report them; ``same_pool_guests`` the existing guests in that pool
    (default: all of them).
    """
    count = len(existing_pinned_mb) + 1
    in_pool = (count if same_pool_guests is None
               else same_pool_guests + 1)
    if max_guests is not None and in_pool > max_guests:
        if pool == ES_POOL:
            reason = ('all %d ES/SNP ASID slots (libvirt maxESGuests) are '
                      'in use by SEV-ES and SEV-SNP guests; another host '
                      'may take it, or raise the SEV-ES ASID count in the '
                      'BIOS' % max_guests)
        else:
            reason = ('all %d ASID slots (libvirt maxGuests) are in use by '
                      'SEV guests; another host may take it, or raise the '
                      'SEV ASID count in the BIOS' % max_guests)
        raise exception.SevHostLimitReached(
            instance=instance_uuid, host=host, reason=reason)
    pinned = list(existing_pinned_mb) + [new_pinned_mb]
    os_reserved_mb = memory.host_os_reserved_mb(
        reserved_host_memory_mb, count, firmware_overhead_mb)
    if memory.sev_memory_left_mb(host_ram_mb, os_reserved_mb, pinned) < 0:
        # Said the way placement counts: RAM and video against the host
        # RAM less reserved_host_memory_mb.
        guest_mb = sum(pinned) - count * firmware_overhead_mb
        usable_mb = host_ram_mb - reserved_host_memory_mb
        raise exception.SevHostLimitReached(
            instance=instance_uuid, host=host,
            reason='SEV guests would pin %d MiB of RAM and video > %d MiB '
                   '(host RAM %d MiB - reserved_host_memory_mb %d); another '
                   'host may take it, or use a smaller flavor (see '
                   '"nova-sev plan-memory")' % (
                       guest_mb, usable_mb, host_ram_mb,
                       reserved_host_memory_mb))
    if os_reserved_mb < 0:
        raise exception.SevHostLimitReached(
            instance=instance_uuid, host=host,
            reason='the firmware regions of %d SEV guests (%d x %d MiB) '
                   'exceed reserved_host_memory_mb %d; raise it as '
                   '"nova-sev plan-memory" says' % (
                       count, count, firmware_overhead_mb,
                       reserved_host_memory_mb))


# What a caller records of a guest holding a slot (pinned MiB, or the
# driver's (pinned MiB, ASID pool)): returned as it was given.
_Slot = typing.TypeVar('_Slot')


def guests_holding_slots(
        instances: Sequence[tuple[str, bool, _Slot | None]],
        admitted: dict[str, _Slot], new_uuid: str) -> dict[str, _Slot]:
    """The SEV guests that hold an ASID slot and pinned memory on a host
    while ``new_uuid`` asks to be admitted: uuid -> its slot (what the
    caller records of it: the pinned MiB, with the driver its ASID pool).

    ``instances`` are the host's instances as the database lists them:
    (uuid, still arriving, its slot or None when not SEV); a guest is
    arriving while it is built or unshelved here. ``admitted`` are the
    guests this service admitted whose builds may not have ended.
    nova-compute builds up to ``max_concurrent_builds`` guests at once, and
    every one of them is on the host in the database before it is admitted:
    an arriving guest counts only once admitted, so that of N concurrent
    builds onto k free slots exactly k are admitted, whatever their order.
    Once arrived, a guest counts by what the database says it pins.
    """
    holding = {}
    for uuid, arriving, pinned_mb in instances:
        if uuid == new_uuid:
            continue
        if arriving:
            if uuid in admitted:
                holding[uuid] = admitted[uuid]
        elif pinned_mb is not None:
            holding[uuid] = pinned_mb
    return holding
