"""Opening a libvirt connection for the nova-sev tools.

Where no libvirt daemon runs (a fresh machine, a container) the tools use
libvirt's embedded QEMU driver (``qemu:///embed?root=DIR``), which needs no
daemon. Inside nova-compute, Nova's own connection is used instead.
"""

import logging
import os
import urllib.parse

from nova_sev import exception

LOG = logging.getLogger(__name__)

DAEMON_SOCKETS = ('/run/libvirt/virtqemud-sock', '/run/libvirt/libvirt-sock',
                  '/var/run/libvirt/libvirt-sock')
SYSTEM_URI = 'qemu:///system'


def default_embed_root() -> str:
    """Where the embedded driver keeps its state and capability cache."""
    if os.geteuid() == 0:
        return '/var/cache/nova-sev/libvirt-embed'
    base = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
    return os.path.join(base, 'nova-sev', 'libvirt-embed')


def embedded_uri() -> str:
    """The embedded QEMU driver's URI, rooted in ``default_embed_root()``."""
    return 'qemu:///embed?root=' + default_embed_root()


def default_uri(sockets: tuple[str, ...] = DAEMON_SOCKETS) -> str:
    """``qemu:///system`` where a libvirt daemon listens, else the embedded
    QEMU driver.
    """
    if any(os.path.exists(s) for s in sockets):
        return SYSTEM_URI
    return embedded_uri()


def is_local(uri: str) -> bool:
    """Whether ``uri`` reaches this machine (so its files describe it)."""
    return not urllib.parse.urlsplit(uri).hostname


def embed_root(uri: str) -> str | None:
    """The ``root`` of an embedded-driver URI, or None for other URIs."""
    parts = urllib.parse.urlsplit(uri)
    if parts.path != '/embed':
        return None
    roots = urllib.parse.parse_qs(parts.query).get('root')
    return roots[0] if roots else None


QEMU_CONF = 'user = "root"\ngroup = "root"\nstdio_handler = "file"\n'


def prepare_embed_root(root: str) -> None:
    """Create the embedded driver's root, with a qemu.conf fit for root.

    An existing qemu.conf is left as the operator wrote it.
    """
    etc = os.path.join(root, 'etc')
    os.makedirs(etc, exist_ok=True)
    conf = os.path.join(etc, 'qemu.conf')
    if os.geteuid() == 0 and not os.path.exists(conf):
        with open(conf, 'w', encoding='utf-8') as f:
            f.write(QEMU_CONF)


def open_connection(uri: str, readonly: bool = False):
    """Open ``uri``; HostCheckFailed (with the URI) when libvirt refuses.

    For the embedded driver the event loop is registered first, as libvirt
    requires, and the process is pinned to one CPU: libvirt compares the
    host CPUID with its cached probe and would probe QEMU again (4-8 s,
    and the cache rewritten) when the process moves between CPUs.
    """
    import libvirt

    root = embed_root(uri)
    if root is not None:
        prepare_embed_root(root)
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[0]})
        libvirt.virEventRegisterDefaultImpl()
    # libvirt prints errors on stderr by default; ours carry them instead.
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    try:
        if readonly and root is None:
            return libvirt.openReadOnly(uri)
        return libvirt.open(uri)
    except libvirt.libvirtError as e:
        raise exception.HostCheckFailed(
            reason='cannot connect to libvirt at %s: %s (is the libvirt '
            'daemon running? use --connection to choose another URI)' % (
                uri, e.get_error_message() or e))


def open_default_connection() -> tuple[object, str]:
    """A connection to this host's libvirt and its URI: the daemon's
    ``qemu:///system`` where one answers, else the embedded QEMU driver
    (a stale socket of a stopped daemon must not stop the host report).
    """
    uri = default_uri()
    if uri == SYSTEM_URI:
        try:
            return open_connection(uri), uri
        except exception.HostCheckFailed as e:
            LOG.warning('%s; using the embedded QEMU driver instead', e)
            uri = embedded_uri()
    return open_connection(uri), uri


def version_string(version: int) -> str:
    """libvirt's packed version number (9000000) as text ("9.0.0")."""
    return '%d.%d.%d' % (version // 1000000, version // 1000 % 1000,
                         version % 1000)
