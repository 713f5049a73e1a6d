"""The per-instance HOST_DATA of an SEV-SNP guest.

SNP_LAUNCH_FINISH takes 32 bytes of HOST_DATA from the host (libvirt's
``<launchSecurity type='sev-snp'><hostData>``, base64) and the firmware
copies them into every attestation report of the guest (report field
HOST_DATA, offset C0h). nova-sev binds them to the Nova instance, so that
a guest owner who checks a report learns which instance it came from: the
SHA-256 of a versioned prefix and the instance UUID in its canonical
lower-case text form. The driver and ``verify-report --instance-uuid``
both call this function.
"""

import base64
import hashlib
import hmac
import uuid

HOST_DATA_LEN = 32
_PREFIX = b'nova-sev-host-data-v1:'


def instance_host_data(instance_uuid: str) -> bytes:
    """The 32 HOST_DATA bytes of the instance ``instance_uuid`` (any
    spelling uuid.UUID reads; ValueError otherwise).
    """
    canonical = str(uuid.UUID(str(instance_uuid)))
    return hashlib.sha256(_PREFIX + canonical.encode('ascii')).digest()


def host_data_b64(instance_uuid: str) -> str:
    """``instance_host_data`` as libvirt's ``<hostData>`` text."""
    return base64.b64encode(instance_host_data(instance_uuid)).decode()


def binds(data: bytes, instance_uuid: str) -> bool:
    """Whether ``data`` is the HOST_DATA of the instance ``instance_uuid``
    (False for a UUID that is none).
    """
    try:
        expected = instance_host_data(instance_uuid)
    except ValueError:
        return False
    return hmac.compare_digest(expected, data)
