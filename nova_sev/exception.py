"""Exceptions raised by nova-sev.

Every message is written for the operator, admin or user who reads it: it
says what failed and names the property, option or command that fixes it.
Each class has a ``msg_fmt`` filled from keyword arguments, as Nova's do.
Input echoed back in a message goes through ``excerpt``, so that a
megabyte of hostile input gives a readable line, not a megabyte.
"""

# How much of a value a message quotes: enough to recognise it.
EXCERPT_CHARS = 80


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``value`` as text of at most about ``limit`` characters: its start,
    then how many characters were left out.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return '%s... (%d more characters)' % (text[:limit], len(text) - limit)


def excerpt_list(items: 'list[object] | tuple[object, ...]',
                 shown: int = 3) -> str:
    """The first ``shown`` of ``items``, comma-separated, and how many
    more there are.
    """
    text = ', '.join(excerpt(i) for i in items[:shown])
    if len(items) > shown:
        text += ' and %d more' % (len(items) - shown)
    return text


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
    """XML that is not what libvirt writes. ``source`` names where it came
    from (a file), when the caller knows.
    """

    msg_fmt = 'Malformed libvirt XML (%(what)s%(source)s): %(reason)s'

    def __init__(self, message: str | None = None, **kwargs) -> None:
        self.source = kwargs.get('source')
        kwargs.setdefault('what', 'XML')
        super().__init__(message, **dict(
            kwargs, source=' in %s' % self.source if self.source else ''))
        self.kwargs = kwargs

    def with_source(self, source: str) -> 'InvalidLibvirtXML':
        """The same error, naming ``source`` as where the XML came from."""
        kwargs = dict(self.kwargs, source=source)
        return type(self)(**kwargs)


class InvalidDomainCapabilities(InvalidLibvirtXML):
    """Domain capabilities that state an impossible fact about SEV."""

    msg_fmt = ('Impossible domain capabilities (%(what)s%(source)s): '
               '%(reason)s; take them again with "virsh domcapabilities '
               '--virttype kvm --arch x86_64 --machine q35"')


class InvalidDomainMemory(InvalidLibvirtXML):
    """A domain's memory size that libvirt or any host could not have."""

    msg_fmt = ('Invalid memory (%(what)s%(source)s): %(element)s is '
               '%(value)s %(unit)s, %(reason)s')


class InvalidConfigOption(InvalidInput):
    msg_fmt = ('Invalid configuration: [%(group)s]%(option)s = %(value)s '
               'in %(path)s is not valid (%(reason)s): fix the value or '
               'remove the option')


class HostCheckFailed(NovaSevException):
    """The host could not be examined at all (not: examined, no SEV)."""

    msg_fmt = 'Could not check the host for SEV: %(reason)s'


# The SEV guest configuration. Every refusal of an SEV guest is a
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


def _mode_not_usable(mode: str, alternative: str = '') -> str:
    """The message of a refused ``mode`` (SEV, SEV-ES, SEV-SNP), with
    ``alternative``: what else the requester can do.
    """
    return ('%s was requested (%%(requested_by)s) but this host cannot run '
            '%s guests: %%(reasons)s (run "nova-sev host-check"%s)' % (
                mode, mode, alternative))


class SevModeNotUsable(SevGuestRefused):
    """An SEV mode this host cannot run was requested; ``requested_by``
    says by what, ``reasons`` why the host cannot. Each mode has its own
    class and message.
    """

    msg_fmt = _mode_not_usable('SEV')


class SevHostNotCapable(SevModeNotUsable):
    """Plain SEV."""


class SevESNotUsable(SevModeNotUsable):
    msg_fmt = _mode_not_usable('SEV-ES', ', or ask for plain SEV')


class SevSNPNotUsable(SevModeNotUsable):
    msg_fmt = _mode_not_usable('SEV-SNP', ', or ask for plain SEV')


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


# Attestation (the guest owner's tools). Bad input is an
# InvalidInput (exit 2); a launch that does not verify is not bad input.
class InvalidTransportKey(InvalidInput):
    msg_fmt = ('The %(what)s %(source)s is %(length)d bytes, it must be '
               '%(expected)d: give the raw key file of the launch session '
               '(--tik/--tek 16 bytes each, --tk the TEK then the TIK)')


class InvalidMeasurement(InvalidInput):
    msg_fmt = ('Invalid launch measurement %(measurement)r: %(reason)s; '
               'give libvirt\'s sev-measurement (base64 of 48 bytes) as '
               '--measurement or the server property sev_measurement')


class InvalidLaunchValue(InvalidInput):
    msg_fmt = ('Invalid SEV %(name)s %(value)r: it must be a number from 0 '
               'to %(maximum)d (decimal, or hex with 0x)')


class InvalidLaunchDigest(InvalidInput):
    msg_fmt = ('Invalid --launch-digest %(digest)r: it must be the SHA-256 '
               'of the measured launch, 64 hex digits')


class InvalidVmsa(InvalidInput):
    msg_fmt = 'Invalid SEV-ES VMSA input: %(reason)s'


class InvalidGuidTable(InvalidInput):
    msg_fmt = 'Malformed GUID table %(guid)s: %(reason)s'


class InvalidSecret(InvalidInput):
    msg_fmt = 'Cannot build or read the launch secret: %(reason)s'


class MeasurementMismatch(NovaSevException):
    """The launch measurement does not prove the expected launch."""

    msg_fmt = ('The launch measurement does NOT match %(inputs)s: do not '
               'trust this guest%(advice)s')


class OwnerToolsMissing(NovaSevException):
    """A guest owner's command without the owner's libraries."""

    msg_fmt = ("This command needs virtee's sev-snp-measure, the guest "
               "owner's tools of nova-sev, which are not installed "
               "(%(error)s): install them with pip install 'nova-sev[owner]'")


class LaunchInfoUnavailable(NovaSevException):
    """libvirt has no SEV launch information for the domain."""

    msg_fmt = 'No SEV launch information for domain %(domain)s: %(reason)s'


class CloudApiError(NovaSevException):
    """Nova's API (through openstacksdk) could not be reached or refused
    a call of the guest owner's tools.
    """

    msg_fmt = ('%(call)s failed: %(reason)s; check the cloud your '
               'clouds.yaml (--os-cloud) or OS_* variables name, and that '
               'the server is yours')


# The Nova driver's refusals. Raised by the pure rules and wrapped by the
# driver into the Nova exception that gives the right outcome (reschedule,
# roll back, refuse a migration).
class SevOperationRefused(NovaSevException):
    """An operation SEV guests cannot undergo (spec: "Limitations")."""

    msg_fmt = ('%(operation)s refused for SEV instance %(instance)s: '
               '%(reason)s; %(fix)s')


class SevHostLimitReached(NovaSevException):
    """A new SEV guest would exceed a limit of this host."""

    # The limit comes first: Nova keeps 255 characters of a fault.
    msg_fmt = 'SEV host limit on %(host)s: %(reason)s (instance %(instance)s)'


class InvalidLaunchInputs(InvalidInput):
    """Inputs an expected launch measurement cannot be computed from."""

    msg_fmt = ('Cannot compute the expected %(mode)s launch measurement: '
               '%(reason)s')


class InvalidAttestationReport(InvalidInput):
    msg_fmt = ('%(source)s is not an SEV-SNP attestation report: '
               '%(reason)s; give the raw report the guest got from '
               '/dev/sev-guest (e.g. "snpguest report")')


class InvalidCertificate(InvalidInput):
    msg_fmt = 'Invalid certificate %(source)s: %(reason)s'


class InvalidSevCertificate(InvalidCertificate):
    """A malformed SEV platform or AMD CA certificate (or chain)."""

    msg_fmt = ('Invalid SEV certificate %(source)s: %(reason)s; give what '
               'the host exports (libvirt getSEVInfo() "pdh" and '
               '"cert-chain", or sevctl export)')


class SevChainNotAuthentic(NovaSevException):
    """The SEV platform certificates do not verify up to a trusted ARK."""

    msg_fmt = ('The SEV platform certificates are NOT authentic: %(reason)s; '
               'do not launch a guest with secrets on this platform')


class InvalidGuestPolicy(InvalidInput):
    msg_fmt = ('Invalid SEV guest policy %(policy)s: %(reason)s (AMD SEV '
               'API, section 3: bits 0-5 flags, 6-15 reserved, 16-31 the '
               'minimum firmware API version)')
