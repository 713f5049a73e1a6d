"""How many SEV guests a host can hold, and the ``reserved_host_memory_mb``
that keeps their pinned memory from exhausting it (spec: "Proposed change",
memory table: "the way to avoid this over-commitment must be documented so
that operators can correctly plan memory usage").

Placement counts each guest's RAM and video memory; the firmware/ROM/ACPI
regions that every SEV guest pins as well are not counted by placement and
belong in ``reserved_host_memory_mb``, once per guest. Pinned memory cannot
be swapped or overcommitted, so the host must hold all of it at once.

Pure arithmetic on top of ``nova_sev.virt.memory``: callers pass the option
values, nothing here reads CONF.
"""

import dataclasses

from nova_sev import exception
from nova_sev.virt import memory


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """The memory plan of one host for SEV guests of one size.

    ``guests`` is the number of guests the reservation is sized for: the
    number asked for, or ``max_guests``. ``fits`` is False when that number
    of guests does not fit in the host (or not even one does).
    """

    host_ram_mb: int
    host_os_reserved_mb: int
    flavor_ram_mb: int
    video_mb: int
    firmware_overhead_mb: int
    qemu_overhead_mb: int
    pinned_mb: int
    hard_limit_kib: int
    max_guests_by_memory: int
    max_asids: int | None
    max_guests: int
    guests: int
    reserved_host_memory_mb: int
    fits: bool


def _whole(name: str, value: int | None, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) \
            or value < minimum:
        raise exception.InvalidInput(
            reason='%s must be a whole number >= %d, got %r' % (
                name, minimum, value))


def max_guests_by_memory(host_ram_mb: int, host_os_reserved_mb: int,
                         pinned_mb: int) -> int:
    """How many guests pinning ``pinned_mb`` each fit in the host's RAM
    less what its own OS needs (``memory.sev_memory_left_mb``):
    ``(H - R) // pinned``, never below 0.
    """
    if pinned_mb <= 0:
        raise exception.InvalidInput(
            reason='a guest must pin some memory, got %r MiB' % pinned_mb)
    free_mb = memory.sev_memory_left_mb(host_ram_mb, host_os_reserved_mb, ())
    return max(0, free_mb // pinned_mb)


def max_guests(by_memory: int, max_asids: int | None = None) -> int:
    """The most SEV guests a host can run: bounded by memory and, when
    known, by its ASID slots (one per running SEV guest).
    """
    if max_asids is None:
        return by_memory
    return min(by_memory, max_asids)


def reserved_host_memory_mb(host_os_reserved_mb: int, guests: int,
                            firmware_overhead_mb: int) -> int:
    """The ``reserved_host_memory_mb`` for a host running ``guests`` SEV
    guests: the host OS's own reservation plus each guest's firmware/ROM/ACPI
    overhead, which placement does not count (the inverse of
    ``memory.host_os_reserved_mb``).
    """
    return host_os_reserved_mb + guests * firmware_overhead_mb


def plan_memory(host_ram_mb: int, flavor_ram_mb: int, video_mb: int = 0,
                host_os_reserved_mb: int = 0, guests: int | None = None,
                max_asids: int | None = None,
                firmware_overhead_mb: int =
                memory.DEFAULT_FIRMWARE_OVERHEAD_MB,
                qemu_overhead_mb: int = memory.DEFAULT_QEMU_OVERHEAD_MB
                ) -> MemoryPlan:
    """Plan a host's memory for SEV guests of ``flavor_ram_mb`` each.

    The reservation is sized for ``guests`` when given, else for the most
    guests the host can hold. InvalidInput names the value that cannot be
    right (a host smaller than its own reservation, negative sizes).
    """
    _whole('host RAM (MiB)', host_ram_mb, 1)
    _whole('flavor RAM (MiB)', flavor_ram_mb, 1)
    _whole('video memory (MiB)', video_mb, 0)
    _whole('host OS reservation (MiB)', host_os_reserved_mb, 0)
    _whole('number of guests', guests, 1)
    _whole('number of ASID slots', max_asids, 0)
    if host_os_reserved_mb >= host_ram_mb:
        raise exception.InvalidInput(
            reason='the host OS reservation (%d MiB) leaves nothing of the '
                   'host RAM (%d MiB) for guests' % (host_os_reserved_mb,
                                                     host_ram_mb))
    pinned = memory.pinned_memory_mb(flavor_ram_mb, video_mb,
                                     firmware_overhead_mb)
    limit = memory.hard_limit_kib(flavor_ram_mb, video_mb,
                                  firmware_overhead_mb, qemu_overhead_mb)
    by_memory = max_guests_by_memory(host_ram_mb, host_os_reserved_mb,
                                     pinned)
    most = max_guests(by_memory, max_asids)
    planned = most if guests is None else guests
    fits = 0 < planned <= most
    return MemoryPlan(
        host_ram_mb=host_ram_mb, host_os_reserved_mb=host_os_reserved_mb,
        flavor_ram_mb=flavor_ram_mb, video_mb=video_mb,
        firmware_overhead_mb=firmware_overhead_mb,
        qemu_overhead_mb=qemu_overhead_mb, pinned_mb=pinned,
        hard_limit_kib=limit, max_guests_by_memory=by_memory,
        max_asids=max_asids, max_guests=most, guests=planned,
        reserved_host_memory_mb=reserved_host_memory_mb(
            host_os_reserved_mb, planned, firmware_overhead_mb),
        fits=fits)


def refusal_reason(plan: MemoryPlan) -> str | None:
    """Why the planned guests do not fit the host, naming the bound that
    stops them (memory or ASID slots); None when they fit.
    """
    if plan.fits:
        return None
    free_mb = plan.host_ram_mb - plan.host_os_reserved_mb
    wanted = max(plan.guests, 1)
    if plan.max_asids is not None and plan.max_asids < wanted \
            and plan.max_asids <= plan.max_guests_by_memory:
        return ('%d SEV guests need %d ASID slots but the host has %d: '
                'plan fewer guests or raise the SEV ASID count in the BIOS'
                % (wanted, wanted, plan.max_asids))
    if plan.max_guests_by_memory == 0:
        return ('one SEV guest pins %d MiB but the host has only %d MiB '
                'after the host OS reservation: use a smaller flavor or a '
                'larger host' % (plan.pinned_mb, free_mb))
    return ('%d SEV guests pin %d MiB but the host has only %d MiB after '
            'the host OS reservation, enough for %d: plan fewer guests or '
            'use a smaller flavor' % (plan.guests,
                                      plan.guests * plan.pinned_mb,
                                      free_mb, plan.max_guests_by_memory))
