"""Options of the ``[sev]`` group: how nova-sev detects and builds SEV guests.

The defaults follow the spec (amd-sev-libvirt-support, "Proposed change"):
the firmware/ROM/ACPI regions of its memory table, rounded up to 16 MiB, and
the QEMU process headroom that makes a 4 GiB guest's hard limit the spec's
example of 4718592 KiB.
"""

from oslo_config import cfg

# An overhead of more than a TiB per guest is a typing error, not an
# overhead: refused when the configuration is loaded.
_MAX_OVERHEAD_MB = 1024 * 1024

sev_group = cfg.OptGroup(
    'sev',
    title='AMD SEV options',
    help="""
Options for nova-sev: how it detects AMD SEV on a compute host and how it
builds the libvirt domain of an SEV-encrypted guest.
""")

detection_opts = [
    cfg.StrOpt(
        'kvm_amd_parameters_dir',
        default='/sys/module/kvm_amd/parameters',
        help="""
Directory holding the ``kvm_amd`` kernel module parameters ``sev`` and
``sev_es``. A value of ``1`` or ``Y`` means the kernel has enabled the
feature. Change it only to examine a copy of another host's parameters.
"""),
    cfg.ListOpt(
        'firmware_descriptor_dirs',
        default=['/etc/qemu/firmware', '/usr/share/qemu/firmware'],
        help="""
Directories searched, in order, for QEMU firmware descriptors (JSON files as
described by QEMU's docs/interop/firmware.json). A descriptor whose
``features`` list ``amd-sev`` (``amd-sev-es`` for SEV-ES) marks an OVMF build
that can boot SEV guests. A file name found in an earlier directory hides the
same name in later ones, as in QEMU and libvirt.
"""),
]

guest_opts = [
    cfg.IntOpt(
        'firmware_overhead_mb',
        default=16,
        min=0,
        max=_MAX_OVERHEAD_MB,
        help="""
Memory, in MiB, that each SEV guest pins beyond its RAM and video memory for
firmware and tables: UEFI ROM (4096 KiB), UEFI variable store (4096 KiB),
pc.rom (128 KiB), isa-bios (128 KiB) and ACPI tables (2384 KiB), 10832 KiB in
all, rounded up with padding. Count it in ``reserved_host_memory_mb`` once
per SEV guest the host may run: ``nova-sev plan-memory`` does the sum.
"""),
    cfg.IntOpt(
        'qemu_overhead_mb',
        default=496,
        min=0,
        max=_MAX_OVERHEAD_MB,
        help="""
Headroom, in MiB, added to an SEV guest's memory hard limit for the QEMU
process itself. Too low and the kernel kills the guest; too high and the
pinned memory of many guests may exhaust the host.
"""),
    cfg.BoolOpt(
        'allow_virtio_blk_boot_disk',
        default=False,
        help="""
Allow an SEV guest to boot from a virtio-blk disk when its image asks for one
with ``hw_disk_bus=virtio``. Old guest kernels cannot use virtio-blk with the
bounce buffers SEV needs, so by default such a request is refused and guests
whose image leaves the bus open boot from virtio-scsi. Enable this only when
every SEV image's kernel supports it.
"""),
    cfg.StrOpt(
        'policy',
        help="""
SEV guest policy, as a number (``0x0033``). By default nova-sev uses 0x0033
for SEV guests and 0x0037 for SEV-ES guests. A policy that drops NODBG (0x1)
or NOKS (0x2) is refused unless ``allow_insecure_policy`` is set.
"""),
    cfg.StrOpt(
        'snp_policy',
        help="""
SEV-SNP guest policy, as a number (``0x00030000``, the default: SMT allowed,
the reserved bit 17 set, no debugging, no migration agent). Bit 17 must be
set. A policy that sets DEBUG (0x80000), MIGRATE_MA (0x40000) or CXL_ALLOW
(0x200000) is refused unless ``allow_insecure_policy`` is set.
"""),
    cfg.BoolOpt(
        'allow_insecure_policy',
        default=False,
        help="""
Accept a ``policy`` without NODBG (0x1) or NOKS (0x2), or an ``snp_policy``
with DEBUG, MIGRATE_MA or CXL_ALLOW: such guests can be debugged or share
keys or memory with others, which weakens SEV's protection.
"""),
]

attestation_opts = [
    cfg.IntOpt(
        'attestation_timeout',
        default=600,
        min=0,
        help="""
Seconds an attested SEV or SEV-ES guest may wait, launched and paused, for
its owner to release it (``openstack server reboot``, with or without a
launch secret). A paused guest holds an ASID slot and its pinned memory: once
this time has passed the guest is shut off and its ``nova-sev:state`` says
so; the owner launches it again with a new session. ``0`` waits for ever.
The guest waits for its first session without a limit, since nothing of it
runs or holds an ASID before that.
"""),
]

ALL_OPTS = detection_opts + guest_opts + attestation_opts


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(sev_group)
    conf.register_opts(ALL_OPTS, group=sev_group)


def list_opts() -> dict:
    return {sev_group: ALL_OPTS}
