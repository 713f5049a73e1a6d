"""``nova-sev plan-memory``: how many SEV guests of a flavor a host can
hold, the memory each pins and its hard limit, and the
``reserved_host_memory_mb`` to configure for them.

SEV guests pin their memory: RAM and video memory, which placement counts,
plus the firmware/ROM/ACPI regions ([sev]firmware_overhead_mb), which it
does not and which belong in reserved_host_memory_mb, once per guest.
SEV-SNP guests (--mode sev-snp) lock nothing and get no hard limit, but
their memory cannot be swapped either: it is counted the same way.

The JSON form (``--format json``) is a stable interface, documented in
doc/source/cli/plan-memory.rst; keys are only ever added.
Exit status: 0 the guests fit, 1 they do not (--guests too many, or not
even one), 2 bad input.
"""

import argparse

from nova_sev.cmd import common
from nova_sev import exception
from nova_sev.virt import memory_plan


# Nova's own default for reserved_host_memory_mb: what the host OS needs
# when no SEV guest runs.
DEFAULT_HOST_OS_RESERVED_MB = 512


def whole_number(text: str) -> int:
    """An argument that must be a whole decimal number (argparse type):
    ``1e30`` or ``4G`` are refused by name, not read as something else.
    """
    value = text.strip()
    if not value.isascii() or not value.lstrip('-').isdigit():
        raise argparse.ArgumentTypeError(
            '%r is not a whole number' % exception.excerpt(text))
    try:
        return int(value)
    except ValueError:  # beyond Python's 4300 digits
        raise argparse.ArgumentTypeError(
            '%s has too many digits' % exception.excerpt(text))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--host-ram-mb', type=whole_number, required=True,
                        metavar='H', help='RAM of the compute host, in MiB')
    parser.add_argument('--flavor-ram-mb', type=whole_number, required=True,
                        metavar='M', help='RAM of the SEV flavor, in MiB')
    parser.add_argument('--video-mb', type=whole_number, default=0,
                        metavar='V',
                        help='video memory of each guest, in MiB (the '
                             "image's hw_video_ram; default 0)")
    parser.add_argument('--host-os-reserved-mb', type=whole_number,
                        default=DEFAULT_HOST_OS_RESERVED_MB, metavar='R',
                        help='memory the host OS and its services need, in '
                             'MiB: the reserved_host_memory_mb you would '
                             'set without SEV (default %d, as Nova)'
                             % DEFAULT_HOST_OS_RESERVED_MB)
    parser.add_argument('--guests', type=whole_number, metavar='N',
                        help='number of SEV guests to size the reservation '
                             'for (default: the most the host can hold)')
    parser.add_argument('--max-asids', type=whole_number, metavar='A',
                        help='ASID slots of the host for the mode (the '
                             '"ASID slots" of nova-sev host-check: maxGuests '
                             'in libvirt domain capabilities for SEV, '
                             'maxESGuests for SEV-ES and SEV-SNP, which '
                             'share them)')
    parser.add_argument('--mode', choices=memory_plan.MODES, default='sev',
                        help='the guests\' memory encryption (default sev; '
                             'sev-snp guests get no hard limit)')
    common.add_format_argument(parser)
    common.add_config_argument(parser)


def plan_dict(plan: memory_plan.MemoryPlan, reason: str | None) -> dict:
    """The plan as the documented JSON structure."""
    return {
        'mode': plan.mode,
        'per_guest': {
            'ram_mb': plan.flavor_ram_mb,
            'video_mb': plan.video_mb,
            'firmware_overhead_mb': plan.firmware_overhead_mb,
            'qemu_overhead_mb': plan.qemu_overhead_mb,
            'pinned_mb': plan.pinned_mb,
            'hard_limit_kib': plan.hard_limit_kib,
        },
        'host_ram_mb': plan.host_ram_mb,
        'host_os_reserved_mb': plan.host_os_reserved_mb,
        'max_guests_by_memory': plan.max_guests_by_memory,
        'max_asids': plan.max_asids,
        'max_guests': plan.max_guests,
        'guests': plan.guests,
        'reserved_host_memory_mb': plan.reserved_host_memory_mb,
        'fits': plan.fits,
        'reason': reason,
    }


def format_text(plan: memory_plan.MemoryPlan, reason: str | None) -> str:
    """The plan for a person at a terminal."""
    if plan.hard_limit_kib is None:
        limit = ('  hard limit: none (SEV-SNP memory is not locked: QEMU '
                 'keeps it in guest_memfd, which cannot be swapped)')
    else:
        limit = '  hard limit: %d KiB (pinned + %d MiB QEMU overhead)' % (
            plan.hard_limit_kib, plan.qemu_overhead_mb)
    lines = [
        'Per SEV guest of %d MiB RAM and %d MiB video memory:' % (
            plan.flavor_ram_mb, plan.video_mb),
        '  pinned memory: %d MiB (RAM + video + %d MiB firmware/ROM/ACPI)'
        % (plan.pinned_mb, plan.firmware_overhead_mb),
        limit,
        'Host of %d MiB, %d MiB for the host OS:' % (
            plan.host_ram_mb, plan.host_os_reserved_mb),
        '  SEV guests that fit in memory: %d' % plan.max_guests_by_memory,
    ]
    if plan.max_asids is not None:
        lines.append('  ASID slots: %d' % plan.max_asids)
    lines.append('  most SEV guests: %d' % plan.max_guests)
    if reason:
        lines.append('Does not fit: %s' % reason)
    else:
        lines.append('For %d SEV guests set in nova.conf:' % plan.guests)
        lines.append('  [DEFAULT]')
        lines.append('  reserved_host_memory_mb = %d' %
                     plan.reserved_host_memory_mb)
    return '\n'.join(lines)


def run(args) -> int:
    # oslo.config is loaded to run, not for --help.
    from nova_sev.cmd import config
    plan = memory_plan.plan_memory(
        host_ram_mb=args.host_ram_mb, flavor_ram_mb=args.flavor_ram_mb,
        video_mb=args.video_mb, host_os_reserved_mb=args.host_os_reserved_mb,
        guests=args.guests, max_asids=args.max_asids,
        firmware_overhead_mb=config.CONF.sev.firmware_overhead_mb,
        qemu_overhead_mb=config.CONF.sev.qemu_overhead_mb, mode=args.mode)
    reason = memory_plan.refusal_reason(plan)
    if args.format == 'json':
        common.print_json(plan_dict(plan, reason))
    else:
        print(format_text(plan, reason))
    if reason:
        common.fail(common.EXIT_REFUSED, reason)
        return common.EXIT_REFUSED
    return common.EXIT_OK
