"""Operations an SEV instance cannot undergo (spec: "Work Items" 5-6 and
"Limitations"; design.md §3).

Live migration and suspend would have to copy or save encrypted memory,
which QEMU cannot do yet; a passthrough (PCI, SR-IOV, vDPA) device would
DMA into encrypted memory. Cold migration, resize, shelve, rebuild,
evacuate, snapshot and volume attach stay allowed: they never move the
running guest's memory. Pure: the Nova driver asks, and turns the answer
into the Nova exception that leaves the instance as it was.
"""

from nova_sev import exception
from nova_sev.virt.hardware import SevMode

LIVE_MIGRATION = 'Live migration'
SUSPEND = 'Suspend'
PASSTHROUGH_ATTACH = 'Attaching a passthrough device'

# operation -> (why it cannot work, what the user can do instead)
_REFUSALS = {
    LIVE_MIGRATION: (
        'QEMU cannot migrate encrypted guest memory',
        'stop the server and cold-migrate it (openstack server migrate)'),
    SUSPEND: (
        'encrypted guest memory cannot be saved and restored',
        'stop or shelve the server instead'),
    PASSTHROUGH_ATTACH: (
        'the device would need DMA into encrypted guest memory',
        'attach a virtio (vnic_type normal) port instead'),
}


def check_operation(operation: str, mode: SevMode,
                    instance_uuid: str, detail: str | None = None) -> None:
    """Refuse ``operation`` for an instance in SEV ``mode`` (anything but
    NONE) with a SevOperationRefused that says why and what to do instead.
    ``detail`` names the device or target where it helps.
    """
    if mode is SevMode.NONE:
        return
    reason, fix = _REFUSALS[operation]
    if detail:
        reason = '%s (%s)' % (reason, detail)
    raise exception.SevOperationRefused(
        operation=operation, instance=instance_uuid, reason=reason, fix=fix)
