"""nova-sev's driver inside Nova's own functional harness.

nova-compute in Nova 34 runs on native threads unless asked for eventlet
(``nova.cmd.compute`` patches with ``backend='threading'``), but Nova's
functional test package monkey patches with eventlet unless
``OS_NOVA_DISABLE_EVENTLET_PATCHING`` says otherwise. Default it here and
let Nova's package apply it before anything else imports Nova, so these
tests run nova-compute in its default mode; set the variable to ``false``
to run them on eventlet, as ``tools/run-tests.sh`` does in a second run.
"""

import os

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'true')

import nova.tests.functional  # noqa: E402,F401,H306 - applies the mode
# Its logging on stderr, as nova.test sets it up: warnings only, outside
# the tests' captures.
from nova_sev.tests.fixtures import nova_harness  # noqa: E402,F401,H306
