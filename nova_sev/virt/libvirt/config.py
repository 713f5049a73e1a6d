"""Configuration objects for the libvirt XML elements SEV needs.

In the style of Nova's ``nova.virt.libvirt.config``: one class per element,
``format_dom()`` and ``parse_dom()`` as mirror images, attribute names after
libvirt's, and no decisions: a config object never asks the host or the
flavor anything. Only the elements nova-sev reads or writes live here.
"""

import typing

from lxml import etree

from nova_sev import exception

# Every XML nova-sev reads goes through parse_xml: a file another host
# produced, stdin, libvirt's answers. No DTD is loaded and no entity is
# expanded (libvirt XML has neither, and both are the way to XXE and
# "billion laughs"), nothing is fetched from the network, and libxml2's
# limits on depth and size stay on.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True,
                          load_dtd=False, dtd_validation=False,
                          huge_tree=False, remove_comments=True)


def _refuse_dtd(root: etree._Element, what: str,
                source: str | None) -> None:
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise exception.InvalidLibvirtXML(
            what=what, source=source,
            reason='it has a document type declaration (%s); libvirt XML '
                   'has none, and nova-sev reads no DTD or entities: remove '
                   'it' % exception.excerpt(docinfo.doctype or '<!DOCTYPE>'))
    entity = next(root.iter(etree.Entity), None)
    if entity is not None:
        raise exception.InvalidLibvirtXML(
            what=what, source=source,
            reason='it refers to the entity %s; libvirt XML uses none, and '
                   'nova-sev expands none: write the text itself'
                   % exception.excerpt(entity.text))


def parse_xml(xmlstr: str | bytes, what: str,
              source: str | None = None) -> etree._Element:
    """Parse ``xmlstr`` safely; InvalidLibvirtXML naming ``what`` (and
    ``source``, the file it came from) when it is not well-formed XML or
    has a DTD or entity references.
    """
    if isinstance(xmlstr, str):
        try:
            xmlstr = xmlstr.encode('utf-8')
        except UnicodeEncodeError as e:
            # str from a surrogateescape stream: the bytes were not UTF-8.
            raise exception.InvalidLibvirtXML(
                what=what, source=source, reason='not UTF-8 text (%s)' % e)
    if not xmlstr or not xmlstr.strip():
        raise exception.InvalidLibvirtXML(what=what, source=source,
                                          reason='empty document')
    try:
        root = etree.fromstring(xmlstr, parser=_PARSER)
    except etree.XMLSyntaxError as e:
        raise exception.InvalidLibvirtXML(
            what=what, source=source, reason=exception.excerpt(e, 200))
    _refuse_dtd(root, what, source)
    return root


def _int_text(node: etree._Element | None, what: str) -> int | None:
    """The integer content of ``node``; None when the node is absent."""
    if node is None:
        return None
    text = (node.text or '').strip()
    try:
        return int(text, 0)
    except ValueError:
        raise exception.InvalidLibvirtXML(
            what=what, reason='<%s> holds %r, not a number' % (
                node.tag, exception.excerpt(text)))


def _bounded_int_text(parent: etree._Element, tag: str, what: str,
                      minimum: int, maximum: int, meaning: str
                      ) -> int | None:
    """The integer of ``parent``'s ``<tag>`` children (None when there is
    none); InvalidDomainCapabilities when two of them disagree or the value
    is outside ``minimum``..``maximum``, which ``meaning`` explains.
    """
    values = {_int_text(node, what) for node in parent.findall(tag)}
    if len(values) > 1:
        raise exception.InvalidDomainCapabilities(
            what=what, reason='<%s> is given %d times with different values '
            '(%s): libvirt prints it once' % (
                tag, len(parent.findall(tag)),
                exception.excerpt(', '.join(map(str, sorted(values))))))
    if not values:
        return None
    value = values.pop()
    if not minimum <= value <= maximum:
        raise exception.InvalidDomainCapabilities(
            what=what, reason='<%s> is %s, but %s, from %d to %d' % (
                tag, exception.excerpt(value), meaning, minimum, maximum))
    return value


def _supported(node: etree._Element, what: str) -> bool:
    """``supported='yes'`` or ``'no'``; InvalidDomainCapabilities else."""
    value = node.get('supported')
    if value not in ('yes', 'no'):
        raise exception.InvalidDomainCapabilities(
            what=what, reason="supported is %r, libvirt prints 'yes' or "
            "'no'" % exception.excerpt(value))
    return value == 'yes'


# The SEV ASID counts are 32-bit CPUID fields.
_MAX_ASIDS = 0xffffffff


class LibvirtConfigObject:
    """Base of the config objects: one XML element, formatted and parsed."""

    def __init__(self, *, root_name: str) -> None:
        self.root_name = root_name

    def _new_node(self, node_name: str, **kwargs) -> etree._Element:
        return etree.Element(node_name, **kwargs)

    def _text_node(self, node_name: str, value, **kwargs) -> etree._Element:
        child = self._new_node(node_name, **kwargs)
        if value is not None:
            child.text = str(value)
        return child

    def format_dom(self) -> etree._Element:
        return self._new_node(self.root_name)

    def parse_str(self, xmlstr: str | bytes,
                  source: str | None = None) -> None:
        """Parse ``xmlstr``; errors name ``source``, where it came from."""
        root = parse_xml(xmlstr, self.root_name, source)
        try:
            self.parse_dom(root)
        except exception.InvalidLibvirtXML as e:
            if source is None or e.source is not None:
                raise
            raise e.with_source(source) from None

    def parse_dom(self, xmldoc: etree._Element) -> None:
        if xmldoc.tag != self.root_name:
            raise exception.InvalidLibvirtXML(
                what=self.root_name,
                reason="root element is <%s>, expected <%s>" % (
                    xmldoc.tag, self.root_name))

    def to_xml(self, pretty_print: bool = True) -> str:
        return etree.tostring(self.format_dom(), encoding='unicode',
                              pretty_print=pretty_print)

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return '%s(%s)' % (type(self).__name__, ', '.join(
            '%s=%r' % kv for kv in sorted(vars(self).items())
            if kv[0] != 'root_name'))


class LibvirtConfigDomainCapsFeatureSev(LibvirtConfigObject):
    """``<sev supported='yes|no'>`` of the domain capabilities' features.

    cbitpos and reducedPhysBits come with libvirt >= 4.5; maxGuests and
    maxESGuests (the host's SEV and SEV-ES ASID slots) with libvirt >= 8.0.
    Parsing refuses values no AMD CPU reports (InvalidDomainCapabilities):
    they would otherwise go into every guest's ``<launchSecurity>``.
    """

    def __init__(self) -> None:
        super().__init__(root_name='sev')
        self.supported = False
        self.cbitpos: int | None = None
        self.reduced_phys_bits: int | None = None
        self.max_guests: int | None = None
        self.max_es_guests: int | None = None

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        what = 'domain capabilities <sev>'
        self.supported = _supported(xmldoc, what)
        # CPUID Fn8000_001F (AMD APM vol. 3): EBX[5:0] is the C-bit
        # position, EBX[11:6] the physical address bits lost, ECX and EDX
        # the 32-bit counts of SEV and SEV-ES ASIDs.
        self.cbitpos = _bounded_int_text(
            xmldoc, 'cbitpos', what, 0, 63,
            'the C-bit is a bit position of a 64-bit page table entry')
        self.reduced_phys_bits = _bounded_int_text(
            xmldoc, 'reducedPhysBits', what, 0, 63,
            'it counts physical address bits of a 64-bit address')
        self.max_guests = _bounded_int_text(
            xmldoc, 'maxGuests', what, 0, _MAX_ASIDS,
            'it counts ASID slots (a 32-bit CPUID field)')
        self.max_es_guests = _bounded_int_text(
            xmldoc, 'maxESGuests', what, 0, _MAX_ASIDS,
            'it counts ASID slots (a 32-bit CPUID field)')

    def format_dom(self) -> etree._Element:
        sev = super().format_dom()
        sev.set('supported', 'yes' if self.supported else 'no')
        for tag, value in (('cbitpos', self.cbitpos),
                           ('reducedPhysBits', self.reduced_phys_bits),
                           ('maxGuests', self.max_guests),
                           ('maxESGuests', self.max_es_guests)):
            if value is not None:
                sev.append(self._text_node(tag, value))
        return sev


class LibvirtConfigDomainCapsFeatureLaunchSecurity(LibvirtConfigObject):
    """``<launchSecurity supported='yes'><enum name='sectype'>`` (newer
    libvirt): which launch-security types the host offers.
    """

    def __init__(self) -> None:
        super().__init__(root_name='launchSecurity')
        self.supported = False
        self.sectypes: list[str] = []

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        self.supported = _supported(xmldoc,
                                    'domain capabilities <launchSecurity>')
        self.sectypes = [
            (value.text or '').strip()
            for enum in xmldoc.findall('enum')
            if enum.get('name') == 'sectype'
            for value in enum.findall('value')]

    def format_dom(self) -> etree._Element:
        node = super().format_dom()
        node.set('supported', 'yes' if self.supported else 'no')
        if self.sectypes:
            enum = self._new_node('enum', name='sectype')
            for sectype in self.sectypes:
                enum.append(self._text_node('value', sectype))
            node.append(enum)
        return node


class LibvirtConfigDomainCaps(LibvirtConfigObject):
    """The parts of ``<domainCapabilities>`` that SEV detection reads."""

    def __init__(self) -> None:
        super().__init__(root_name='domainCapabilities')
        self.path: str | None = None
        self.domain: str | None = None
        self.machine: str | None = None
        self.arch: str | None = None
        self.firmware: list[str] = []
        # libvirt's name for the host CPU's vendor ("AMD", "Intel"), from
        # the host-model CPU it offers guests.
        self.cpu_vendor: str | None = None
        self.sev: LibvirtConfigDomainCapsFeatureSev | None = None
        self.launch_security: (
            LibvirtConfigDomainCapsFeatureLaunchSecurity | None) = None

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        self.path = xmldoc.findtext('path')
        self.domain = xmldoc.findtext('domain')
        self.machine = xmldoc.findtext('machine')
        self.arch = xmldoc.findtext('arch')
        self.firmware = [
            (v.text or '').strip()
            for v in xmldoc.findall("os/enum[@name='firmware']/value")]
        vendor = xmldoc.findtext("cpu/mode[@name='host-model']/vendor")
        self.cpu_vendor = vendor.strip() if vendor else None
        self.sev = self._parse_feature(
            xmldoc, LibvirtConfigDomainCapsFeatureSev)
        self.launch_security = self._parse_feature(
            xmldoc, LibvirtConfigDomainCapsFeatureLaunchSecurity)

    @staticmethod
    def _parse_feature(xmldoc: etree._Element, cls: type) -> typing.Any:
        """The feature ``cls`` parsed from ``<features>``; None when it is
        absent. libvirt prints each feature once: several that disagree
        are an InvalidDomainCapabilities.
        """
        parsed = []
        for node in xmldoc.findall('features/%s' % cls().root_name):
            feature = cls()
            feature.parse_dom(node)
            if feature not in parsed:
                parsed.append(feature)
        if len(parsed) > 1:
            raise exception.InvalidDomainCapabilities(
                what='domain capabilities <features>',
                reason='%d <%s> elements that disagree (%s): libvirt prints '
                'one' % (len(parsed), parsed[0].root_name, exception.excerpt(
                    ' and '.join(f.to_xml(pretty_print=False)
                                 for f in parsed), 200)))
        return parsed[0] if parsed else None

    def format_dom(self) -> etree._Element:
        caps = super().format_dom()
        for tag, value in (('path', self.path), ('domain', self.domain),
                           ('machine', self.machine), ('arch', self.arch)):
            if value is not None:
                caps.append(self._text_node(tag, value))
        if self.firmware:
            os_node = self._new_node('os', supported='yes')
            enum = self._new_node('enum', name='firmware')
            for fw in self.firmware:
                enum.append(self._text_node('value', fw))
            os_node.append(enum)
            caps.append(os_node)
        if self.cpu_vendor is not None:
            cpu = self._new_node('cpu')
            mode = self._new_node('mode', name='host-model', supported='yes')
            mode.append(self._text_node('vendor', self.cpu_vendor))
            cpu.append(mode)
            caps.append(cpu)
        if self.sev is not None or self.launch_security is not None:
            features = self._new_node('features')
            if self.sev is not None:
                features.append(self.sev.format_dom())
            if self.launch_security is not None:
                features.append(self.launch_security.format_dom())
            caps.append(features)
        return caps


class _LibvirtConfigGuestLaunchSecurity(LibvirtConfigObject):
    """What the SEV and SEV-SNP ``<launchSecurity>`` of a guest share:
    the ``type`` (``launch_type``), cbitpos and reducedPhysBits from the
    host's domain capabilities, and the policy in ``policy_format``.
    """

    launch_type = ''
    policy_format = ''

    def __init__(self) -> None:
        super().__init__(root_name='launchSecurity')
        self.cbitpos: int | None = None
        self.reduced_phys_bits: int | None = None
        self.policy: int | None = None

    def format_dom(self) -> etree._Element:
        node = super().format_dom()
        node.set('type', self.launch_type)
        for tag, value in (('cbitpos', self.cbitpos),
                           ('reducedPhysBits', self.reduced_phys_bits)):
            if value is not None:
                node.append(self._text_node(tag, value))
        if self.policy is not None:
            node.append(self._text_node('policy',
                                        self.policy_format % self.policy))
        return node

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        what = 'guest <launchSecurity>'
        if xmldoc.get('type') != self.launch_type:
            raise exception.InvalidLibvirtXML(
                what=what, reason='type is %r, expected %r' % (
                    xmldoc.get('type'), self.launch_type))
        self.cbitpos = _int_text(xmldoc.find('cbitpos'), what)
        self.reduced_phys_bits = _int_text(
            xmldoc.find('reducedPhysBits'), what)
        self.policy = _int_text(xmldoc.find('policy'), what)


class LibvirtConfigGuestFeatureSEV(_LibvirtConfigGuestLaunchSecurity):
    """``<launchSecurity type='sev'>`` of a guest (the spec's class).

    ``policy`` is written as libvirt's documentation and the spec show it,
    ``0x%04x``; cbitpos and reducedPhysBits come from the host's domain
    capabilities.
    """

    launch_type = 'sev'
    policy_format = '0x%04x'


class LibvirtConfigGuestFeatureSEVSNP(_LibvirtConfigGuestLaunchSecurity):
    """``<launchSecurity type='sev-snp'>`` of a guest (libvirt >= 10.5).

    ``policy`` is the 64-bit SNP guest policy, written ``0x%08x``;
    ``host_data`` the base64 of the 32 bytes the attestation report
    carries as HOST_DATA. ``author_key``, ``vcek`` and ``kernel_hashes``
    are libvirt's yes/no attributes, left out when None.
    """

    launch_type = 'sev-snp'
    policy_format = '0x%08x'

    def __init__(self) -> None:
        super().__init__()
        self.author_key: bool | None = None
        self.vcek: bool | None = None
        self.kernel_hashes: bool | None = None
        self.host_data: str | None = None

    _BOOL_ATTRS = (('authorKey', 'author_key'), ('vcek', 'vcek'),
                   ('kernelHashes', 'kernel_hashes'))

    def format_dom(self) -> etree._Element:
        node = super().format_dom()
        for attr, name in self._BOOL_ATTRS:
            value = getattr(self, name)
            if value is not None:
                node.set(attr, 'yes' if value else 'no')
        if self.host_data is not None:
            node.append(self._text_node('hostData', self.host_data))
        return node

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        for attr, name in self._BOOL_ATTRS:
            value = xmldoc.get(attr)
            setattr(self, name, None if value is None else value == 'yes')
        host_data = xmldoc.findtext('hostData')
        self.host_data = host_data.strip() if host_data is not None else None
