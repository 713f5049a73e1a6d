"""Real libvirt for the tests: the embedded QEMU driver, with or without SEV.

The embedded driver of libvirt 9.0 and later (``qemu:///embed?root=DIR``)
needs no daemon, but allows one root per process and probes QEMU (4-8 s)
on first use. So
QEMU is probed once per machine into a template root, each test copies that
capability cache into a root of its own, and every libvirt call runs in a
child process (``embed_worker``) pinned to one CPU.

This host has no SEV. As libvirt's own tests do with their
``caps_*+amdsev.xml`` data, ``sev=True`` adds the ``sev-guest`` flag and an
``<sev>`` element to the x86_64 capability cache, so that libvirt reports
SEV in the domain capabilities, defines SEV guests and builds their QEMU
command line. Nothing here skips: a missing libvirt is a test error.

``snp=True`` adds ``<flag name='sev-snp-guest'/>`` as well, as libvirt's
``caps_10.0.0_x86_64+amdsev.xml`` has it (the SNP flag without the
``sev-guest`` flag and the ``<sev>`` element crashes libvirt 11.3 in
domainXMLToNative). A libvirt that does not know the flag (before 10.5)
discards the whole cache and probes QEMU again, which would lose the SEV
injection too: ``libvirt_knows_snp_flag`` asks the installed libvirt once
per machine, and the flag is only injected where it is known.
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


SNP_FLAG = "<flag name='sev-snp-guest'/>"
# libvirt's first release with SEV-SNP: <launchSecurity type='sev-snp'> and
# the sev-snp-guest capability (with QEMU >= 9.1). Tests compare it with
# the libvirt version read at run time.
LIBVIRT_SNP_VERSION = 10005000


def inject_sev(root: str, cbitpos: int = 47, reduced: int = 1,
               snp: bool = False) -> None:
    """Make the x86_64 capability cache under ``root`` claim SEV, and
    SEV-SNP when ``snp``.
    """
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
        if snp and SNP_FLAG not in xml:
            first_flag = xml.index('<flag name=')
            xml = xml[:first_flag] + SNP_FLAG + '\n  ' + xml[first_flag:]
        xml = xml.replace('</qemuCaps>', SEV_CACHE_ELEMENT % {
            'cbitpos': cbitpos, 'reduced': reduced, 'pdh': FAKE_PDH,
            'cert_chain': FAKE_CERT_CHAIN, 'cpu0_id': FAKE_CPU0_ID,
        } + '</qemuCaps>')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(xml)
        patched += 1
    if not patched:
        raise RuntimeError('no x86_64 QEMU capability cache under %s' % root)


def host_versions() -> dict[str, tuple[int, int, int]]:
    """The versions of libvirt and QEMU this host really has, as read from
    libvirt itself: tests expect what each release does, not one release's
    numbers. Read once per machine under the template's lock: one embed
    root is open in one process at a time (its pid file), and test
    workers ask at once.
    """
    import libvirt

    template = probed_template()
    # The template is per QEMU build; the answer is also per libvirt.
    cached = os.path.join(template, '.versions-%d.json' % libvirt.getVersion())
    with open(os.path.join(template, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(cached):
            result = run_worker('qemu:///embed?root=' + template,
                                [{'op': 'versions'}])[0]
            if not result['ok']:
                raise RuntimeError('libvirt gave no versions: %s'
                                   % result['error'])
            with open(cached, 'w') as f:
                json.dump(result['result'], f)
        with open(cached) as f:
            packed = json.load(f)
    return {name: (v // 1000000, v // 1000 % 1000, v % 1000)
            for name, v in packed.items()}


def no_sev_define_error(libvirt_version: tuple[int, int, int]) -> str:
    """What this libvirt says when asked to define an SEV guest on a QEMU
    without ``sev-guest``: libvirt 9.0 writes "SEV launch security ...";
    from 10.5, which added the ``sev-snp`` type, it names the type
    ("'sev' launch security ...", as libvirt 11.3 does).
    """
    if libvirt_version >= (10, 5, 0):
        return "'sev' launch security is not supported with this QEMU binary"
    return 'SEV launch security is not supported with this QEMU binary'


def _new_root(template: str) -> str:
    root = tempfile.mkdtemp(prefix='nova-sev-embed-')
    shutil.copytree(os.path.join(template, 'cache'),
                    os.path.join(root, 'cache'))
    connection.prepare_embed_root(root)
    return root


def libvirt_knows_snp_flag() -> bool:
    """Whether the installed libvirt keeps a capability cache that holds
    the ``sev-snp-guest`` flag: asked of libvirt itself, once per machine
    (QEMU build and libvirt version). A libvirt that does not know the
    flag throws the cache away and probes QEMU again, which here has no
    SEV.
    """
    import libvirt

    template = probed_template()
    # The answer is libvirt's: keep it per libvirt version.
    version = libvirt.getVersion()
    answers = {True: os.path.join(template, '.snp-flag-known-%d' % version),
               False: os.path.join(template,
                                   '.snp-flag-unknown-%d' % version)}
    with open(os.path.join(template, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for answer, marker in answers.items():
            if os.path.exists(marker):
                return answer
        root = _new_root(template)
        try:
            inject_sev(root, snp=True)
            result = run_worker('qemu:///embed?root=' + root,
                                [{'op': 'domcaps'}], timeout=300)[0]
        finally:
            shutil.rmtree(root, ignore_errors=True)
        if not result['ok']:
            raise RuntimeError('libvirt gave no domain capabilities: %s'
                               % result['error'])
        answer = "<sev supported='yes'" in result['result']
        open(answers[answer], 'w').close()
        return answer


class EmbeddedQemuFixture(fixtures.Fixture):
    """A private embedded-QEMU root, SEV-capable when ``sev`` is true and
    SEV-SNP capable when ``snp`` is true too and libvirt knows SNP
    (``snp_injected`` says whether it did).

    ``uri`` opens it; ``call(ops)`` runs libvirt operations on it in a
    child process (see embed_worker for the operations).
    """

    def __init__(self, sev: bool = False, snp: bool = False) -> None:
        super().__init__()
        self.sev = sev
        self.snp = snp
        self.snp_injected = False

    def _setUp(self) -> None:
        template = probed_template()
        self.root = self.useFixture(fixtures.TempDir()).path
        shutil.copytree(os.path.join(template, 'cache'),
                        os.path.join(self.root, 'cache'))
        connection.prepare_embed_root(self.root)
        if self.sev:
            self.snp_injected = self.snp and libvirt_knows_snp_flag()
            inject_sev(self.root, snp=self.snp_injected)
        self.uri = 'qemu:///embed?root=' + self.root

    def call(self, ops: list[dict]) -> list[dict]:
        return run_worker(self.uri, ops)

    def call_one(self, op: str, **kwargs) -> dict:
        return self.call([dict(kwargs, op=op)])[0]


# Where libvirt and QEMU look for firmware descriptors first. The embed
# root's own etc/qemu/firmware is not read (measured with libvirt 11.3).
HOST_FIRMWARE_DIR = '/etc/qemu/firmware'
STATELESS_OVMF = '/usr/share/ovmf/OVMF.fd'


def snp_firmware_descriptor(executable: str = STATELESS_OVMF) -> dict:
    """A QEMU firmware descriptor (docs/interop/firmware.json) for the
    stateless OVMF build with the ``amd-sev-snp`` feature: Debian ships
    the image but no descriptor that lists SNP.
    """
    return {
        'description': 'Stateless OVMF for SEV-SNP guests (nova-sev tests)',
        'interface-types': ['uefi'],
        'mapping': {'device': 'memory', 'filename': executable},
        'targets': [{'architecture': 'x86_64', 'machines': ['pc-q35-*']}],
        'features': ['amd-sev-snp'],
        'tags': [],
    }


class SnpFirmwareDescriptorFixture(fixtures.Fixture):
    """Places ``snp_firmware_descriptor()`` in the host's
    /etc/qemu/firmware for one test and removes it (and the directories
    it had to create) afterwards. Needs root, as the CI's fresh machine
    runs the tests. The name sorts after Debian's descriptors, so that
    other guests' firmware auto-selection still picks those first.
    """

    def __init__(self, directory: str = HOST_FIRMWARE_DIR) -> None:
        super().__init__()
        self.directory = directory

    def _setUp(self) -> None:
        created = []
        parent = self.directory
        while not os.path.isdir(parent):
            created.append(parent)
            parent = os.path.dirname(parent)
        os.makedirs(self.directory, exist_ok=True)
        self.path = os.path.join(
            self.directory, '99-nova-sev-test-snp-%d.json' % os.getpid())
        with open(self.path, 'w', encoding='utf-8') as f:
            json.dump(snp_firmware_descriptor(), f)
        self.addCleanup(self._remove, created)

    def _remove(self, created: list[str]) -> None:
        os.unlink(self.path)
        for directory in created:
            try:
                os.rmdir(directory)
            except OSError:
                break  # another test's descriptor is still there
