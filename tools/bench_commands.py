"""Whole-process time of each ``nova-sev`` command against its peer.

Each pair runs on the same inputs, in turn, ``--runs`` times (interleaved,
so that the machine's load falls on both alike); the medians and their
ratio are printed. The peers are the tools a user would otherwise run for
the same answer:

- ``expected-measurement``: virtee's ``sev-snp-measure``, same options;
- ``verify-measurement``: libvirt's ``virt-qemu-sev-validate``, offline,
  the same firmware, TIK and launch numbers;
- ``host-check``: ``virsh domcapabilities`` on the same embedded-driver
  root, plus ``python3 -c 'import libvirt'`` (the floor of any Python
  tool that asks libvirt).

The targets (issue 19): each ratio at most 1.5, each command's ``--help``
under 0.15 s. This is a benchmark, not a test: it asserts nothing.

    python tools/bench_commands.py [--runs 7]
"""

import argparse
import base64
import hashlib
import hmac
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.dirname(sys.executable)
NOVA_SEV = os.path.join(BIN, 'nova-sev')
SEV_SNP_MEASURE = os.path.join(BIN, 'sev-snp-measure')
VALIDATE = '/usr/bin/virt-qemu-sev-validate'
SYSTEM_PYTHON = '/usr/bin/python3'
VIRSH = '/usr/bin/virsh'
STATELESS_OVMF = '/usr/share/ovmf/OVMF.fd'
OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd'
RATIO_TARGET = 1.5
HELP_TARGET = 0.15
HELP_COMMANDS = ('host-check', 'guest-xml', 'plan-memory', 'check-flavor',
                 'expected-measurement', 'verify-measurement', 'build-secret',
                 'verify-report', 'launch-info')


# As an installed package runs: with its byte code cached (tox and CI set
# PYTHONDONTWRITEBYTECODE, which would compile nova-sev's sources on every
# run while the peers' are compiled at install).
ENV = {k: v for k, v in os.environ.items() if k != 'PYTHONDONTWRITEBYTECODE'}


def elapsed(argv: list[str]) -> float:
    """Seconds ``argv`` takes from start to exit (its output discarded)."""
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False, env=ENV)
    return time.perf_counter() - start


def launch_files(directory: str) -> list[str]:
    """An SEV launch of OVMF_CODE and its measurement, written to
    ``directory``; the options both validators take.
    """
    tik = bytes(range(16))
    tk = os.path.join(directory, 'tk')
    with open(tk, 'wb') as f:
        f.write(bytes(16) + tik)
    with open(OVMF_CODE, 'rb') as f:
        digest = hashlib.sha256(f.read()).digest()
    policy, mnonce = 0x3, bytes(16)
    message = (bytes([4, 1, 52, 4]) + policy.to_bytes(4, 'little') + digest
               + mnonce)
    mac = hmac.new(tik, message, hashlib.sha256).digest()
    return ['--measurement', base64.b64encode(mac + mnonce).decode(),
            '--api-major', '1', '--api-minor', '52', '--build-id', '4',
            '--policy', str(policy), '--firmware', OVMF_CODE, '--tk', tk]


def pairs(directory: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """(name, nova-sev's command, the peer's commands) of each pair."""
    measure = ['--mode', 'snp', '--vcpus', '8', '--vcpu-type', 'EPYC-Genoa',
               '--ovmf', STATELESS_OVMF]
    launch = launch_files(directory)
    root = os.path.join(directory, 'embed')
    uri = 'qemu:///embed?root=' + root
    host_check = [NOVA_SEV, 'host-check', '--connection', uri]
    # The first use probes QEMU into the root's capability cache (seconds):
    # both tools then read that cache, as on a host in service.
    subprocess.run(host_check, stdout=subprocess.DEVNULL, check=False)
    return [
        ('expected-measurement', [NOVA_SEV, 'expected-measurement'] + measure,
         [[SEV_SNP_MEASURE] + measure]),
        ('verify-measurement', [NOVA_SEV, 'verify-measurement'] + launch,
         [[SYSTEM_PYTHON, VALIDATE] + launch]),
        ('host-check', host_check,
         [[VIRSH, '-c', uri, 'domcapabilities', '--virttype', 'kvm',
           '--arch', 'x86_64', '--machine', 'q35'],
          [SYSTEM_PYTHON, '-c', 'import libvirt']]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=7,
                        help='runs of each command (default 7)')
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix='nova-sev-bench-')
    try:
        todo = pairs(directory)
        times: dict[str, tuple[list[float], list[float]]] = {
            name: ([], []) for name, _, _ in todo}
        helps = [[NOVA_SEV] + ([c] if c else []) + ['--help']
                 for c in HELP_COMMANDS + ('',)]
        help_times: list[list[float]] = [[] for _ in helps]
        # Once, not counted: the byte code caches are written.
        for argv in [ours for _, ours, _ in todo] + helps:
            elapsed(argv)
        for _ in range(args.runs):
            for name, ours, peer in todo:
                times[name][0].append(elapsed(ours))
                times[name][1].append(sum(elapsed(p) for p in peer))
            for argv, runs in zip(helps, help_times):
                runs.append(elapsed(argv))
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    print('median of %d runs, interleaved' % args.runs)
    print('%-22s %9s %9s %7s  (target <= %.1fx)' % (
        'command', 'nova-sev', 'peer', 'ratio', RATIO_TARGET))
    for name, (ours, peer) in times.items():
        a, b = statistics.median(ours), statistics.median(peer)
        print('%-22s %8.3fs %8.3fs %6.2fx%s' % (
            name, a, b, a / b, '' if a / b <= RATIO_TARGET else '  OVER'))
    print('%-36s %8s  (target < %.2fs)' % ('help', 'time', HELP_TARGET))
    for argv, runs in zip(helps, help_times):
        t = statistics.median(runs)
        print('%-36s %7.3fs%s' % (
            ' '.join(['nova-sev'] + argv[1:]), t,
            '' if t < HELP_TARGET else '  OVER'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
