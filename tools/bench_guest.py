#!/usr/bin/env python3
"""Benchmark: what making a guest an SEV guest adds to Nova's own guest
generation.

In Nova's own unit-test harness (``nova.test.NoDBTestCase`` with Nova's
fake libvirt, ``LibvirtFixture``), the SEV driver generates the domain XML
of one guest (``_get_guest_xml``: Nova's ``_get_guest_config`` and
``to_xml``, then what nova-sev adds), many times over:

- non-SEV: a flavor and image without SEV (the flavor's one extra spec
  forbids it), with the machine type, firmware and buses an SEV guest gets
  (q35, UEFI, virtio-scsi, SATA), so that Nova's own work is the same in
  both rows;
- SEV: the same with ``trait:HW_CPU_X86_AMD_SEV=required``, including the
  guest plan the driver makes for the operation.

It prints the time per guest of each and the SEV overhead in percent of the
non-SEV time. Not a test: numbers are printed, not asserted (the target is
at most 1 %).

    tools/bench_guest.py [--guests N] [--repeat R]

CPU time on a machine that other work loads varies by several percent
from run to run, more than the target. Instruction counts do not: with
``--only non-SEV`` or ``--only SEV`` the bench generates ``--guests``
guests of that row once, inside one ``operator.call``, so that

    valgrind --tool=callgrind --toggle-collect=_operator_call \
        tools/bench_guest.py --only SEV --guests 10

counts the instructions of exactly those guests (the ``totals`` line of
its output); the difference of the two rows over ``--guests`` is the SEV
overhead per guest.

The count of one run still varies by about 0.3 % (Nova's objects and the
allocator do not do exactly the same work each time), which is a third of
the target: ``--callgrind RUNS`` runs each row RUNS times under callgrind,
in turn, and reports the median instructions per guest of each row and
the overhead between the medians.
"""

import argparse
import gc
import operator
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import unittest

# Nova's harness, as its own unit tests import it.
from nova import context as nova_context  # noqa: E402
from nova import objects  # noqa: E402
from nova.tests.unit import fake_network  # noqa: E402
from nova.virt.libvirt import blockinfo  # noqa: E402

from nova_sev.tests.fixtures import nova_harness  # noqa: E402

# What an SEV guest's image gets filled in: the non-SEV guest asks for the
# same, so that both rows cost Nova the same.
SEV_CHOICES = {'hw_machine_type': 'q35', 'hw_firmware_type': 'uefi',
               'hw_disk_bus': 'scsi', 'hw_scsi_model': 'virtio-scsi',
               'hw_cdrom_bus': 'sata'}
SEV_SPECS = {'trait:HW_CPU_X86_AMD_SEV': 'required'}
# The non-SEV flavor has an extra spec as well, one that asks for no SEV:
# Nova writes every extra spec into the domain's metadata, and that work is
# the flavor's, not what SEV adds.
PLAIN_SPECS = {'trait:HW_CPU_X86_AMD_SEV': 'forbidden'}

RESULTS: dict[str, float] = {}
ARGS = argparse.Namespace(guests=100, repeat=10, only=None, callgrind=None)


class GuestGeneration(nova_harness.SevDriverTestCase):
    """One "test" that times guest generation in Nova's harness."""

    def _instance(self, extra_specs):
        return self.instance(
            extra_specs, 'bench',
            system_metadata={'image_' + k: v
                             for k, v in SEV_CHOICES.items()})

    def _time(self, funcs):
        """Best time per call of each of ``funcs``, in microseconds of
        this process's CPU time (other processes on a shared machine do
        not count), run in turn ``ARGS.repeat`` times.
        """
        best = [float('inf')] * len(funcs)
        for _ in range(ARGS.repeat):
            for i, func in enumerate(funcs):
                timer = timeit.Timer(func, timer=time.process_time)
                best[i] = min(best[i], timer.timeit(number=ARGS.guests))
        return [b / ARGS.guests * 1e6 for b in best]

    def test_generation(self):
        ctxt = nova_context.get_admin_context()
        network_info = fake_network.fake_get_instance_nw_info(self)
        drv = self.sev_driver()

        def generator(extra_specs):
            instance = self._instance(extra_specs)
            image_meta = objects.ImageMeta.from_dict(
                {'disk_format': 'raw', 'properties': dict(SEV_CHOICES)})

            def generate():
                # Nova's spawn computes the disk mapping first, and the
                # guest config changes it: a fresh one each time.
                disk_info = blockinfo.get_disk_info('kvm', instance,
                                                    image_meta)
                return drv_generate(drv, ctxt, instance, image_meta,
                                    network_info, disk_info)
            return generate

        plain = generator(PLAIN_SPECS)
        sev = generator(SEV_SPECS)
        self.assertNotIn('launchSecurity', plain())
        self.assertIn('launchSecurity', sev())
        if ARGS.only is not None:
            func = plain if ARGS.only == 'non-SEV' else sev
            for _ in range(5):
                func()  # warm: what is cached per host is cached

            def guests():
                for _ in range(ARGS.guests):
                    func()
            # A collection of Nova's many objects costs millions of
            # instructions, and would land in one row or the other by chance.
            gc.collect()
            gc.disable()
            try:
                operator.call(guests)
            finally:
                gc.enable()
            return
        RESULTS['non-SEV'], RESULTS['SEV'] = self._time((plain, sev))


def drv_generate(drv, ctxt, instance, image_meta, network_info, disk_info):
    """What the driver does to one guest's domain in one operation that
    builds it (a hard reboot, say): the plan, then Nova's generation.
    """
    if not hasattr(drv, '_sev_begin'):
        # The driver before one plan per operation (nova-sev <= beea7c0).
        drv._sev_prepare(ctxt, instance, image_meta, network_info,
                         new_guest=False)
        return drv._get_guest_xml(ctxt, instance, network_info, disk_info,
                                  image_meta)
    try:
        drv._sev_begin(instance, image_meta, network_info)
        return drv._get_guest_xml(ctxt, instance, network_info, disk_info,
                                  image_meta)
    finally:
        drv._sev_end(instance)


def callgrind_instructions(row: str, guests: int) -> int:
    """Instructions of ``guests`` guests of ``row``, counted by callgrind
    in a process of their own.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ['valgrind', '--tool=callgrind', '--toggle-collect=_operator_call',
             '--callgrind-out-file=' + os.path.join(tmp, 'out'),
             sys.executable, os.path.abspath(__file__), '--only', row,
             '--guests', str(guests)],
            capture_output=True, text=True, check=True).stderr
    return int(re.search(r'Collected : (\d+)', out).group(1))


def callgrind_report(runs: int, guests: int) -> int:
    """Print each row's median instructions per guest over ``runs`` runs,
    and what SEV adds between the medians.
    """
    counts: dict[str, list[float]] = {'non-SEV': [], 'SEV': []}
    for _ in range(runs):
        for row in counts:
            counts[row].append(callgrind_instructions(row, guests) / guests)
    median = {row: statistics.median(c) for row, c in counts.items()}
    print('Nova _get_guest_xml, %d guests, %d runs per row (callgrind, '
          'median):' % (guests, runs))
    for row, values in counts.items():
        print('  %-9s %12.0f instructions/guest  (runs: %s)' % (
            row, median[row], ', '.join('%.0f' % v for v in values)))
    added = median['SEV'] - median['non-SEV']
    print('  SEV adds %.0f instructions/guest, %.2f %% of non-SEV' % (
        added, added / median['non-SEV'] * 100))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--guests', type=int, default=ARGS.guests)
    parser.add_argument('--repeat', type=int, default=ARGS.repeat)
    parser.add_argument('--only', choices=('non-SEV', 'SEV'),
                        help='generate --guests guests of one row once, '
                        'for an instruction counter (see above)')
    parser.add_argument('--callgrind', type=int, metavar='RUNS',
                        help='count instructions under valgrind, RUNS '
                        'runs of each row (see above)')
    parser.parse_args(namespace=ARGS)
    if ARGS.callgrind:
        return callgrind_report(ARGS.callgrind, ARGS.guests)
    result = unittest.TextTestRunner(stream=open(os.devnull, 'w')).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(GuestGeneration))
    if not result.wasSuccessful():
        for _case, trace in result.errors + result.failures:
            print(trace, file=sys.stderr)
        return 1
    if ARGS.only is not None:
        print('%d guests, %s' % (ARGS.guests, ARGS.only))
        return 0
    base = RESULTS['non-SEV']
    print('Nova _get_guest_xml, %d guests x %d runs (best, CPU time):' % (
        ARGS.guests, ARGS.repeat))
    for name, what in (
            ('non-SEV', 'a guest without SEV'),
            ('SEV', 'the SEV guest: plan, Nova, plan written')):
        print('  %-9s %9.1f us/guest  %s' % (name, RESULTS[name], what))
    print('  SEV adds %.1f us/guest, %.2f %% of non-SEV' % (
        RESULTS['SEV'] - base, (RESULTS['SEV'] - base) / base * 100))
    return 0


if __name__ == '__main__':
    sys.exit(main())
