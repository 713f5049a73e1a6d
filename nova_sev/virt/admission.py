"""Whether one more SEV guest fits on a host (design.md §4).

Each running SEV guest holds one of the host's ASID slots (libvirt's
``maxGuests``) and pins its memory, which can be neither swapped nor
overcommitted. A new guest is refused when the slots are taken or when the
pinned memory of all SEV guests would exceed the host's RAM less
``reserved_host_memory_mb``. Pure: the driver gathers the numbers.
"""

from collections.abc import Sequence

from nova_sev import exception


def check_admission(instance_uuid: str, host: str, new_pinned_mb: int,
                    existing_pinned_mb: Sequence[int], host_ram_mb: int,
                    reserved_host_memory_mb: int,
                    max_guests: int | None) -> None:
    """Raise SevHostLimitReached, naming the limit, when a new SEV guest
    pinning ``new_pinned_mb`` does not fit beside the SEV guests already on
    the host (``existing_pinned_mb``, one entry each). ``max_guests`` is
    None when libvirt does not report the ASID slots.
    """
    count = len(existing_pinned_mb)
    if max_guests is not None and count + 1 > max_guests:
        raise exception.SevHostLimitReached(
            instance=instance_uuid, host=host,
            reason='all %d ASID slots (libvirt maxGuests) are in use by '
                   'SEV guests; another host may take it, or raise the SEV '
                   'ASID count in the BIOS' % max_guests)
    usable_mb = host_ram_mb - reserved_host_memory_mb
    pinned_mb = sum(existing_pinned_mb) + new_pinned_mb
    if pinned_mb > usable_mb:
        raise exception.SevHostLimitReached(
            instance=instance_uuid, host=host,
            reason='SEV guests would pin %d MiB > %d MiB (host RAM %d MiB - '
                   'reserved_host_memory_mb %d); another host may take it, '
                   'or use a smaller flavor (see "nova-sev plan-memory")' % (
                       pinned_mb, usable_mb, host_ram_mb,
                       reserved_host_memory_mb))
