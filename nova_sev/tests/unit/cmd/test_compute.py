"""``nova-sev-compute`` in a fresh interpreter, as an operator starts it:
Nova's compute main must find the driver under ``nova.virt`` and run in
nova-compute's default concurrency mode.
"""

import os
import subprocess
import sys

import testtools

from nova_sev.virt import nova_compat

# Nova's main replaced by one that loads the driver as Nova does and
# reports what it found.
PROBE = """
from unittest import mock

def fake_main():
    from oslo_utils import importutils
    from nova_sev.virt.libvirt import driver
    from nova_sev.virt import nova_compat
    cls = importutils.import_class('nova.virt.' + driver.COMPUTE_DRIVER)
    print(cls.__module__, cls.__name__,
          'threading' if nova_compat.concurrency_mode_threading()
          else 'eventlet')

with mock.patch('nova.cmd.compute.main', fake_main):
    from nova_sev.cmd import compute
    compute.main()
"""


class NovaSevComputeTestCase(testtools.TestCase):

    def run_probe(self, **env):
        environ = dict(os.environ)
        environ.pop('OS_NOVA_DISABLE_EVENTLET_PATCHING', None)
        environ.update(env)
        result = subprocess.run([sys.executable, '-c', PROBE], env=environ,
                                capture_output=True, text=True, timeout=120)
        self.assertEqual(0, result.returncode, result.stderr)
        return result.stdout.split()

    def test_registers_driver_then_runs_nova_compute(self):
        # nova-compute's own default: eventlet before 2026.2.
        self.assertEqual(['nova_sev.virt.libvirt.driver', 'SevLibvirtDriver',
                          nova_compat.DEFAULT_CONCURRENCY], self.run_probe())

    def test_eventlet_on_request(self):
        self.assertEqual('eventlet', self.run_probe(
            OS_NOVA_DISABLE_EVENTLET_PATCHING='false')[-1])
