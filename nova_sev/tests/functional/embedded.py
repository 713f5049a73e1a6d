"""Real libvirt for the tests: the embedded QEMU driver, with or without SEV.

libvirt 9.0's embedded driver (``qemu:///embed?root=DIR``) needs no daemon,
but allows one root per process and probes QEMU (4-8 s) on first use. So
QEMU is probed once per machine into a template root, each test copies that
capability cache into a root of its own, and every libvirt call runs in a
child process (``embed_worker``) pinned to one CPU.

This host has no SEV. As libvirt's own tests do with their
``caps_*+amdsev.xml`` data, ``sev=True`` adds the ``sev-guest`` flag and an
``<sev>`` element to the x86_64 capability cache, so that libvirt reports
SEV in the domain capabilities, defines SEV guests and builds their QEMU
command line. Nothing here skips: a missing libvirt is a test error.
"""

import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import fixtures

from nova_sev.cmd import connection

QEMU = '/usr/bin/qemu-system-x86_64'
X86_EMULATOR = '<emulator>%s</emulator>' % QEMU

# The <sev> element of libvirt's QEMU capability cache (qemu_capabilities.c,
# virQEMUCapsFormatSEVInfo), as in libvirt's tests/qemucapabilitiesdata.
SEV_CACHE_ELEMENT = """  <sev>
    <cbitpos>%(cbitpos)d</cbitpos>
    <reducedPhysBits>%(reduced)d</reducedPhysBits>
    <pdh>%(pdh)s</pdh>
    <certChain>%(cert_chain)s</certChain>
    <cpu0Id>%(cpu0_id)s</cpu0Id>
  </sev>
"""
FAKE_PDH = 'UERIIGZvciBub3ZhLXNldiB0ZXN0cw=='
FAKE_CERT_CHAIN = 'Q0VSVCBDSEFJTiBmb3Igbm92YS1zZXYgdGVzdHM='
FAKE_CPU0_ID = 'Q1BVMCBJRCBmb3Igbm92YS1zZXYgdGVzdHM='


def _template_dir() -> str:
    stat = os.stat(QEMU)
    key = hashlib.sha256(('%s:%s:%s' % (
        QEMU, stat.st_mtime_ns, stat.st_size)).encode()).hexdigest()[:16]
    base = os.environ.get('NOVA_SEV_TEST_CACHE') or os.path.join(
        tempfile.gettempdir(), 'nova-sev-test-qemu-caps')
    return os.path.join(base, key)


def run_worker(uri: str, ops: list[dict], timeout: int = 120) -> list[dict]:
    """Run libvirt ``ops`` in a child process on ``uri``; their results.

    Each result is ``{"ok": true, "result": ...}`` or ``{"ok": false,
    "error": "<libvirt's message>"}``.
    """
    proc = subprocess.run(
        [sys.executable, '-m', 'nova_sev.tests.functional.embed_worker'],
        input=json.dumps({'uri': uri, 'ops': ops}), capture_output=True,
        text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError('embedded libvirt worker failed (%d): %s' % (
            proc.returncode, proc.stderr[-2000:]))
    return json.loads(proc.stdout)


def run_cli(*argv: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """``nova-sev argv`` in its own process, as a user runs it (one embed
    root per process: the child may open any root).
    """
    return subprocess.run(
        [sys.executable, '-m', 'nova_sev.cmd.sev'] + list(argv),
        capture_output=True, text=True, timeout=timeout)


def probed_template() -> str:
    """A root whose QEMU capability cache is probed; probed at most once
    per machine (and QEMU build), whatever the number of test workers.
    """
    root = _template_dir()
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = os.path.join(root, '.probed')
        if not os.path.exists(done):
            uri = 'qemu:///embed?root=' + root
            result = run_worker(uri, [{'op': 'domcaps'}], timeout=300)[0]
            if not result['ok']:
                raise RuntimeError('libvirt could not probe QEMU: %s'
                                   % result['error'])
            open(done, 'w').close()
    return root


def inject_sev(root: str, cbitpos: int = 47, reduced: int = 1) -> None:
    """Make the x86_64 capability cache under ``root`` claim SEV."""
    files = glob.glob(os.path.join(root, 'cache/qemu/capabilities/*.xml'))
    patched = 0
    for path in files:
        with open(path, encoding='utf-8') as f:
            xml = f.read()
        if X86_EMULATOR not in xml:
            continue
        if "<flag name='sev-guest'/>" not in xml:
            first_flag = xml.index('<flag name=')
            xml = (xml[:first_flag] + "<flag name='sev-guest'/>\n  " +
                   xml[first_flag:])
        xml = xml.replace('</qemuCaps>', SEV_CACHE_ELEMENT % {
            'cbitpos': cbitpos, 'reduced': reduced, 'pdh': FAKE_PDH,
            'cert_chain': FAKE_CERT_CHAIN, 'cpu0_id': FAKE_CPU0_ID,
        } + '</qemuCaps>')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(xml)
        patched += 1
    if not patched:
        raise RuntimeError('no x86_64 QEMU capability cache under %s' % root)


class EmbeddedQemuFixture(fixtures.Fixture):
    """A private embedded-QEMU root, SEV-capable when ``sev`` is true.

    ``uri`` opens it; ``call(ops)`` runs libvirt operations on it in a
    child process (see embed_worker for the operations).
    """

    def __init__(self, sev: bool = False) -> None:
        super().__init__()
        self.sev = sev

    def _setUp(self) -> None:
        template = probed_template()
        self.root = self.useFixture(fixtures.TempDir()).path
        shutil.copytree(os.path.join(template, 'cache'),
                        os.path.join(self.root, 'cache'))
        connection.prepare_embed_root(self.root)
        if self.sev:
            inject_sev(self.root)
        self.uri = 'qemu:///embed?root=' + self.root

    def call(self, ops: list[dict]) -> list[dict]:
        return run_worker(self.uri, ops)

    def call_one(self, op: str, **kwargs) -> dict:
        return self.call([dict(kwargs, op=op)])[0]
