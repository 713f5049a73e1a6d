"""The nova-sev wheel and the stock ``nova-compute``.

Nova's ``load_compute_driver`` imports ``nova.virt.<compute_driver>`` and
nothing else. The wheel ships ``nova/virt/sev_libvirt.py`` into Nova's own
package for it, and must carry nothing else of Nova's (pip would write its
``nova/__init__.py`` over Nova's). These tests build the wheel from this
tree as a packager does (offline: the build tools come from the test
virtualenv), read its file list, install it with pip into a fresh virtualenv
that has Nova, and load the driver there in a fresh interpreter through
Nova's own ``load_compute_driver``, with no ``register()`` call.

The fresh virtualenv borrows the test virtualenv's packages (a ``.pth``
line, which does not run their ``.pth`` files, so the develop install of
nova-sev stays out) and holds its own ``nova`` package: a tree of links to
the test virtualenv's Nova, so that the wheel's file lands beside Nova's
``nova/virt`` as it does in a real installation.
"""

import atexit
from importlib import metadata
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import fixtures
import nova
import testtools

from nova_sev.virt import nova_compat

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
# What a build of the wheel reads from the tree.
SOURCES = ('setup.py', 'setup.cfg', 'pyproject.toml', 'README.rst',
           'requirements.txt', 'nova', 'nova_sev')
SHIM = 'nova/virt/sev_libvirt.py'
UPPER_CONSTRAINTS = os.path.join(TOP, 'nova_sev', 'tests', 'data',
                                 'upper-constraints')
NOVA_SITE = os.path.dirname(os.path.dirname(os.path.abspath(nova.__file__)))

# Loads the driver exactly as nova-compute's ComputeManager does, then says
# where each part came from.
PROBE = """
import sys
from nova.virt import driver
loaded = driver.load_compute_driver(None, 'sev_libvirt.SevLibvirtDriver')
import nova_sev
shim = sys.modules['nova.virt.sev_libvirt']
print(type(loaded).__module__, type(loaded).__name__)
print(shim.__name__)
print(shim.__file__)
print(nova_sev.__file__)
"""

_wheel = None


def build_wheel(out_dir: str) -> str:
    """Build the nova-sev wheel from a copy of this tree; its path."""
    src = os.path.join(out_dir, 'src')
    for name in SOURCES:
        path = os.path.join(TOP, name)
        if os.path.isdir(path):
            shutil.copytree(path, os.path.join(src, name),
                            ignore=shutil.ignore_patterns('__pycache__'))
        else:
            os.makedirs(src, exist_ok=True)
            shutil.copy(path, src)
    # The copy has no git history for pbr to read the version from.
    env = dict(os.environ, PBR_VERSION='0.0.1')
    result = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-index',
         '--no-build-isolation', '--disable-pip-version-check', '-q',
         '-w', out_dir, src],
        env=env, capture_output=True, text=True, timeout=300)
    if result.returncode:
        raise AssertionError('pip wheel failed:\n%s%s' % (result.stdout,
                                                          result.stderr))
    wheels = [n for n in os.listdir(out_dir) if n.endswith('.whl')]
    if len(wheels) != 1:
        raise AssertionError('expected one wheel, found %s' % wheels)
    return os.path.join(out_dir, wheels[0])


def get_wheel() -> str:
    """The wheel, built once per test process."""
    global _wheel
    if _wheel is None:
        out_dir = tempfile.mkdtemp(prefix='nova-sev-wheel-')
        atexit.register(shutil.rmtree, out_dir, True)
        _wheel = build_wheel(out_dir)
    return _wheel


def make_venv_with_nova(root: str) -> tuple[str, str]:
    """A fresh virtualenv in ``root`` whose site-packages has Nova; the
    paths of its Python and of its site-packages.
    """
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', root],
                   check=True, timeout=120)
    python = os.path.join(root, 'bin', 'python')
    site = subprocess.run(
        [python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
         '["purelib"])'], check=True, capture_output=True, text=True,
        timeout=60).stdout.strip()
    with open(os.path.join(site, 'test-venv.pth'), 'w') as f:
        f.write(NOVA_SITE + '\n')
    nova_dir = os.path.join(NOVA_SITE, 'nova')
    os.makedirs(os.path.join(site, 'nova', 'virt'))
    for name in os.listdir(nova_dir):
        if name != 'virt':
            os.symlink(os.path.join(nova_dir, name),
                       os.path.join(site, 'nova', name))
    for name in os.listdir(os.path.join(nova_dir, 'virt')):
        os.symlink(os.path.join(nova_dir, 'virt', name),
                   os.path.join(site, 'nova', 'virt', name))
    return python, os.path.realpath(site)


class WheelContentsTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        with zipfile.ZipFile(get_wheel()) as whl:
            self.names = whl.namelist()

    def test_only_the_shim_of_nova(self):
        self.assertEqual([SHIM],
                         [n for n in self.names if n.startswith('nova/')])

    def test_no_init_of_nova(self):
        self.assertNotIn('nova/__init__.py', self.names)
        self.assertNotIn('nova/virt/__init__.py', self.names)

    def test_carries_nova_sev(self):
        for name in ('nova_sev/__init__.py',
                     'nova_sev/virt/libvirt/driver.py',
                     'nova_sev/cmd/compute.py'):
            self.assertIn(name, self.names)

    def test_carries_amd_roots(self):
        # The copy the wheel is built from has no git: the roots must come
        # from setup.cfg's package_data, not from pbr's git file list.
        for tree, suffix in (('amd_roots', '.pem'), ('sev_roots', '.cert')):
            for product in ('milan', 'genoa'):
                for key in ('ark', 'ask'):
                    self.assertIn('nova_sev/attestation/%s/%s-%s%s' % (
                        tree, product, key, suffix), self.names)

    def test_nothing_else_at_the_top(self):
        tops = {n.split('/')[0] for n in self.names}
        self.assertEqual({'nova', 'nova_sev', 'nova_sev-0.0.1.dist-info'},
                         tops)

    def test_keeps_nova_sev_compute(self):
        with zipfile.ZipFile(get_wheel()) as whl:
            entry_points = whl.read(
                'nova_sev-0.0.1.dist-info/entry_points.txt').decode()
        self.assertIn('nova-sev-compute = nova_sev.cmd.compute:main',
                      entry_points)


class StockNovaComputeTestCase(testtools.TestCase):
    """Nova's own ``load_compute_driver``, in a fresh interpreter."""

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.python, self.site = make_venv_with_nova(
            os.path.join(self.root, 'venv'))

    def probe(self) -> subprocess.CompletedProcess:
        # -I: neither this tree (the working directory) nor PYTHONPATH.
        return subprocess.run(
            [self.python, '-I', '-c', PROBE], cwd=self.root,
            capture_output=True, text=True, timeout=300)

    def install_wheel(self) -> None:
        # --ignore-installed: the test virtualenv's develop install of
        # nova-sev, visible through the borrowed packages, is not this one.
        result = subprocess.run(
            [self.python, '-m', 'pip', 'install', '--no-deps', '--no-index',
             '--ignore-installed', '--disable-pip-version-check', '-q',
             get_wheel()], capture_output=True, text=True, timeout=300)
        self.assertEqual(0, result.returncode, result.stderr)

    def test_without_the_wheel_nova_cannot_load_it(self):
        result = self.probe()
        self.assertEqual(1, result.returncode, result.stdout)
        self.assertIn('Unable to load the virtualization driver',
                      result.stderr)

    def test_installed_wheel_loads_through_nova(self):
        self.install_wheel()
        site = self.site
        result = self.probe()
        self.assertEqual(0, result.returncode, result.stderr)
        loaded, shim_name, shim_file, nova_sev_file = (
            result.stdout.splitlines()[-4:])
        self.assertEqual('nova_sev.virt.libvirt.driver SevLibvirtDriver',
                         loaded)
        # The shipped module itself, not register()'s alias of the driver.
        self.assertEqual('nova.virt.sev_libvirt', shim_name)
        self.assertEqual(os.path.join(site, SHIM),
                         os.path.realpath(shim_file))
        # nova_sev from the wheel, not from the develop install.
        self.assertEqual(os.path.join(site, 'nova_sev', '__init__.py'),
                         os.path.realpath(nova_sev_file))
        # Nova's own files are untouched: still links to the real Nova.
        self.assertTrue(os.path.islink(
            os.path.join(site, 'nova', '__init__.py')))
        self.assertTrue(os.path.islink(
            os.path.join(site, 'nova', 'virt', '__init__.py')))


class InstallBesideNovaTestCase(testtools.TestCase):
    """``pip install nova-sev`` into a nova-compute environment of the
    Nova release installed here, as that release's upper constraints pin
    it (Nova, libvirt-python and what they need), changes no package but
    nova-sev: every range nova-sev declares admits every release's pins.
    Uses the package index, as the operator's ``pip`` does.
    """

    def pip(self, python: str, *args: str) -> str:
        # -I and a neutral directory: not this tree (its egg-info would
        # pass for an installed nova-sev).
        result = subprocess.run(
            [python, '-I', '-m', 'pip', '--disable-pip-version-check'] +
            list(args), capture_output=True, text=True, timeout=1200,
            cwd=os.path.dirname(python))
        self.assertEqual(0, result.returncode, result.stdout + result.stderr)
        return result.stdout

    def installed(self, python: str) -> list[str]:
        """``name==version`` of each package (``pip freeze`` would name
        the wheel's path instead of its version).
        """
        return self.pip(python, 'list', '--format=freeze').splitlines()

    def test_pip_changes_nothing_but_nova_sev(self):
        constraints = os.path.join(UPPER_CONSTRAINTS,
                                   nova_compat.NOVA_SERIES + '.txt')
        root = self.useFixture(fixtures.TempDir()).path
        subprocess.run([sys.executable, '-m', 'venv', root], check=True,
                       timeout=300)
        python = os.path.join(root, 'bin', 'python')
        # nova-compute's environment: Nova (not in the constraints, so
        # pinned to the version under test) and the libvirt binding.
        # --no-compile: byte-compiling Nova is most of the time it takes.
        self.pip(python, 'install', '-q', '--no-compile', '-c', constraints,
                 'nova==' + metadata.version('nova'), 'libvirt-python')
        before = set(self.installed(python))
        self.pip(python, 'install', '-q', '--no-compile', get_wheel())
        after = set(self.installed(python))
        # (removed or changed, added or changed)
        self.assertEqual((set(), {'nova-sev==0.0.1'}),
                         (before - after, after - before),
                         [line for line in before if 'nova' in line])
