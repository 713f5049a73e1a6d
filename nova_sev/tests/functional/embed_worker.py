"""Child process of EmbeddedQemuFixture: libvirt calls on one embed root.

Reads ``{"uri": URI, "ops": [...]}`` as JSON on stdin, prints a JSON list
with one result per op. Operations:

- ``domcaps`` (``arch``, ``machine``, ``virttype``): domain capabilities XML
- ``define`` (``xml``): define the domain, return its name (and undefine it
  again unless ``keep``)
- ``argv`` (``xml``): ``domainXMLToNative('qemu-argv')`` of the domain
- ``dumpxml`` (``xml``): define the domain, return libvirt's inactive XML
  of it, undefine it again
- ``sev_info``: ``getSEVInfo()``
"""

import json
import sys

import libvirt

from nova_sev.cmd import connection


def _do(conn, op: dict):
    kind = op['op']
    if kind == 'domcaps':
        return conn.getDomainCapabilities(
            None, op.get('arch', 'x86_64'), op.get('machine', 'q35'),
            op.get('virttype', 'kvm'), 0)
    if kind == 'define':
        dom = conn.defineXMLFlags(
            op['xml'], libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        name = dom.name()
        if not op.get('keep'):
            flags = 0
            if hasattr(libvirt, 'VIR_DOMAIN_UNDEFINE_NVRAM'):
                flags |= libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
            dom.undefineFlags(flags)
        return name
    if kind == 'dumpxml':
        dom = conn.defineXMLFlags(
            op['xml'], libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        try:
            return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        finally:
            dom.undefineFlags(getattr(libvirt, 'VIR_DOMAIN_UNDEFINE_NVRAM',
                                      0))
    if kind == 'argv':
        return conn.domainXMLToNative('qemu-argv', op['xml'], 0)
    if kind == 'sev_info':
        return conn.getSEVInfo()
    raise ValueError('unknown op %r' % kind)


def main() -> int:
    request = json.load(sys.stdin)
    conn = connection.open_connection(request['uri'])
    results = []
    for op in request['ops']:
        try:
            results.append({'ok': True, 'result': _do(conn, op)})
        except libvirt.libvirtError as e:
            results.append({'ok': False, 'error': e.get_error_message()})
    conn.close()
    json.dump(results, sys.stdout)
    return 0


if __name__ == '__main__':
    sys.exit(main())
