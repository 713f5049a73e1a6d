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
