"""nova-sev's driver inside Nova's own functional harness.

nova-compute runs on native threads by default since Nova 2026.2
(``nova.cmd.compute`` patches with ``backend='threading'``) and on eventlet
before (``nova_compat.DEFAULT_CONCURRENCY``), but Nova's functional test
package monkey patches with eventlet unless
``OS_NOVA_DISABLE_EVENTLET_PATCHING`` says otherwise. Default it here to
nova-compute's default mode and let Nova's package apply it before
anything else imports Nova; ``tools/run-tests.sh`` runs these tests again
in the release's other mode, if it has one, with the variable set.
"""

import os

from nova_sev.virt import nova_compat

os.environ.setdefault(
    'OS_NOVA_DISABLE_EVENTLET_PATCHING',
    'true' if nova_compat.DEFAULT_CONCURRENCY == 'threading' else 'false')

import nova.tests.functional  # noqa: E402,F401,H306 - applies the mode
# Its logging on stderr, as nova.test sets it up: warnings only, outside
# the tests' captures.
from nova_sev.tests.fixtures import nova_harness  # noqa: E402,F401,H306

# Nova's host module imports libvirt when it is imported since 2026.1;
# before, it imports it lazily, by then poisoned by Nova's test harness
# (ImportModulePoisonFixture), which nova-sev's detection then trips on.
# Import it here as 2026.1 does: the harness still stubs every call.
import libvirt  # noqa: E402,F401,H306
