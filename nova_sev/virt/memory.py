"""The memory an SEV guest pins, and its hard limit (spec: "Proposed change",
memory table; design.md §3-4).

SEV guests' memory is pinned (encrypted pages cannot be swapped or moved),
which libvirt does with ``<memoryBacking><locked/>`` plus a
``<memtune><hard_limit>``. The limit covers the guest's RAM, its video
memory, the firmware/ROM/ACPI regions (``[sev]firmware_overhead_mb``) and
the QEMU process's own headroom (``[sev]qemu_overhead_mb``). Pure
arithmetic: callers pass the option values, nothing here reads CONF.
"""

from collections.abc import Iterable

from nova_sev import exception

KIB_PER_MIB = 1024
DEFAULT_FIRMWARE_OVERHEAD_MB = 16
DEFAULT_QEMU_OVERHEAD_MB = 496


def _check(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise exception.InvalidInput(
                reason='%s must be a whole number of MiB >= 0, got %r' % (
                    name, value))


def pinned_memory_mb(ram_mb: int, video_mb: int = 0,
                     firmware_overhead_mb: int = DEFAULT_FIRMWARE_OVERHEAD_MB
                     ) -> int:
    """The host memory, in MiB, that one SEV guest pins: its RAM, its video
    memory and the firmware/ROM/ACPI regions.
    """
    _check(ram_mb=ram_mb, video_mb=video_mb,
           firmware_overhead_mb=firmware_overhead_mb)
    return ram_mb + video_mb + firmware_overhead_mb


def hard_limit_kib(ram_mb: int, video_mb: int = 0,
                   firmware_overhead_mb: int = DEFAULT_FIRMWARE_OVERHEAD_MB,
                   qemu_overhead_mb: int = DEFAULT_QEMU_OVERHEAD_MB) -> int:
    """The ``<memtune><hard_limit unit='KiB'>`` of an SEV guest: its pinned
    memory plus the QEMU process's headroom. With the defaults a 4096 MiB
    guest gets 4718592 KiB, the spec's example.
    """
    _check(qemu_overhead_mb=qemu_overhead_mb)
    pinned = pinned_memory_mb(ram_mb, video_mb, firmware_overhead_mb)
    return (pinned + qemu_overhead_mb) * KIB_PER_MIB


def sev_memory_left_mb(host_ram_mb: int, host_os_reserved_mb: int,
                       pinned_mb: Iterable[int]) -> int:
    """The host bound of SEV guests: what is left of the host's RAM once
    its own OS's share and all the memory the SEV guests pin (RAM, video,
    firmware each) are taken; below 0 they do not fit. Pinned memory can
    be neither swapped nor overcommitted, so nothing else counts.
    Admission (``admission``) and ``nova-sev plan-memory``
    (``memory_plan``) both ask this.
    """
    return host_ram_mb - host_os_reserved_mb - sum(pinned_mb)


def host_os_reserved_mb(reserved_host_memory_mb: int, guests: int,
                        firmware_overhead_mb: int) -> int:
    """The host OS's share of ``reserved_host_memory_mb`` when ``guests``
    SEV guests run: the reservation holds each one's firmware/ROM/ACPI
    regions as well, which placement does not count. Below 0 the
    reservation is too small for them.
    """
    return reserved_host_memory_mb - guests * firmware_overhead_mb
