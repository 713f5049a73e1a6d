"""Exceptions raised by nova-sev.

Every message is written for the operator, admin or user who reads it: it
says what failed and names the property, option or command that fixes it.
Each class has a ``msg_fmt`` filled from keyword arguments, as Nova's do.
"""


class NovaSevException(Exception):
    """Base of every nova-sev error."""

    msg_fmt = 'An unknown nova-sev error occurred.'

    def __init__(self, message: str | None = None, **kwargs) -> None:
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError, ValueError):
                # A wrong format argument must not hide the real error.
                message = self.msg_fmt
        self.message = message
        super().__init__(message)


class InvalidInput(NovaSevException):
    """Input that cannot be read or parsed: the caller must fix it."""

    msg_fmt = 'Invalid input: %(reason)s'


class InvalidLibvirtXML(InvalidInput):
    msg_fmt = 'Malformed libvirt XML (%(what)s): %(reason)s'


class HostCheckFailed(NovaSevException):
    """The host could not be examined at all (not: examined, no SEV)."""

    msg_fmt = 'Could not check the host for SEV: %(reason)s'


# Issue 3: SEV guest configuration. Every refusal of an SEV guest is a
# SevGuestRefused, so that callers (the Nova driver, ``nova-sev guest-xml``)
# can tell "this guest cannot be SEV here" from broken input.
class SevGuestRefused(NovaSevException):
    """An SEV guest that cannot be built as requested."""

    msg_fmt = 'SEV guest refused: %(reason)s'


class SevRequestConflict(SevGuestRefused):
    msg_fmt = ('%(first)s %(first_wants)s but %(second)s %(second_wants)s: '
               'change or remove one of them')


class InvalidSevRequest(SevGuestRefused):
    msg_fmt = 'Invalid SEV request: %(source)s %(key)s=%(value)r: %(reason)s'


class SevHostNotCapable(SevGuestRefused):
    msg_fmt = ('SEV was requested (%(requested_by)s) but this host cannot '
               'run SEV guests: %(reasons)s (run "nova-sev host-check")')


class SevESNotUsable(SevGuestRefused):
    msg_fmt = ('SEV-ES was requested (%(requested_by)s) but this host '
               'cannot run SEV-ES guests: %(reasons)s (run "nova-sev '
               'host-check", or ask for plain SEV)')


class SevMachineTypeNotSupported(SevGuestRefused):
    msg_fmt = ('SEV guests need the q35 machine type but %(source)s asks '
               'for %(machine_type)r: set %(source)s to q35 or remove it')


class SevDiskBusNotSupported(SevGuestRefused):
    msg_fmt = ('SEV guests cannot use the %(bus)s bus that %(source)s asks '
               'for: %(reason)s; %(fix)s')


class SevDeviceNotSupported(SevGuestRefused):
    msg_fmt = ('SEV guests cannot have %(device)s (asked by %(source)s): '
               'the device would need DMA into encrypted memory; remove '
               '%(source)s or do not ask for SEV')


class SevFirmwareNotFound(SevGuestRefused):
    msg_fmt = ('no UEFI firmware for %(arch)s/%(machine)s lists the '
               '%(features)s feature in the QEMU firmware descriptors of '
               '%(dirs)s: install an OVMF build with SEV support or fix '
               '[sev]firmware_descriptor_dirs')


class InvalidSevPolicy(SevGuestRefused):
    msg_fmt = 'Invalid [sev]policy %(policy)r: %(reason)s'
