#!/usr/bin/env python3
"""Benchmark: what SEV detection costs on a real libvirt connection.

Prints the libvirt calls and wall time of the first detection over the
embedded QEMU driver (the root's QEMU capabilities probed beforehand, as on
any host where libvirt already ran), then of 10,000 later trait queries,
which must make no libvirt call at all. Not a test: numbers are printed,
not asserted, except the zero-call promise.

    tools/bench_detection.py [--root DIR] [--queries N]
"""

import argparse
import os
import sys
import tempfile
import time

from nova_sev.cmd import connection
from nova_sev.virt.libvirt import host
from nova_sev.virt.libvirt import traits


class CountingConnection:
    """Wraps a virConnect and counts every method called on it."""

    def __init__(self, conn) -> None:
        self._conn = conn
        self.calls: list[str] = []

    def __getattr__(self, name):
        attr = getattr(self._conn, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)
        return counted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--root', help='embedded driver root (default: a '
                        'new temporary one, probed first)')
    parser.add_argument('--queries', type=int, default=10000)
    args = parser.parse_args()
    root = args.root or tempfile.mkdtemp(prefix='nova-sev-bench-')
    uri = 'qemu:///embed?root=' + root

    start = time.perf_counter()
    conn = CountingConnection(connection.open_connection(uri))
    opened = time.perf_counter() - start

    sev_host = host.SevHost(lambda: conn, os.environ.get(
        'NOVA_SEV_KVM_AMD_PARAMS', host.KVM_AMD_PARAMETERS_DIR))
    # The first QEMU probe of a new root is libvirt's one-off cost, not
    # detection's: take it outside the measurement.
    if not args.root:
        conn._conn.getDomainCapabilities(None, 'x86_64', 'q35', 'kvm', 0)

    start = time.perf_counter()
    caps = sev_host.get_capabilities()
    first = time.perf_counter() - start
    first_calls = list(conn.calls)

    conn.calls.clear()
    start = time.perf_counter()
    for _ in range(args.queries):
        traits.sev_traits(sev_host.get_capabilities())
    later = time.perf_counter() - start

    print('connection open:          %8.1f ms' % (opened * 1000))
    print('first detection:          %8.1f ms, %d libvirt call(s): %s' % (
        first * 1000, len(first_calls), ', '.join(first_calls)))
    print('%d trait queries:      %8.1f ms (%.2f us each), %d libvirt '
          'call(s)' % (args.queries, later * 1000,
                       later / args.queries * 1e6, len(conn.calls)))
    print('SEV usable: %s' % caps.sev_usable)
    return 1 if conn.calls else 0


if __name__ == '__main__':
    sys.exit(main())
