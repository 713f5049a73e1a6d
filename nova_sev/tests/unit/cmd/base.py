"""Running ``nova-sev`` sub-commands in the test process."""

import io
import json
import os

import fixtures
import testtools

from nova_sev.cmd import config
from nova_sev.cmd import sev


class CommandTestCase(testtools.TestCase):
    """A sub-command run as a user runs it, its output captured, with a
    scratch directory for its input files.
    """

    command: str = ''

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        # --config-file loads into the global CONF: leave no values behind
        # for the next test in this process.
        self.addCleanup(config.CONF.clear)
        self.stdout = self.useFixture(
            fixtures.MonkeyPatch('sys.stdout', io.StringIO())).new_value
        self.stderr = self.useFixture(
            fixtures.MonkeyPatch('sys.stderr', io.StringIO())).new_value

    def write_file(self, name, data):
        """Write ``data`` (text, or JSON for anything else) under the
        scratch directory; return its path.
        """
        path = os.path.join(self.tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(data if isinstance(data, str) else json.dumps(data))
        return path

    def run_command(self, *args):
        """``nova-sev COMMAND args``'s exit code. Asserts the promise of
        every sub-command: no traceback, at most one line on stderr.
        """
        rc = sev.main([self.command] + list(args))
        err = self.stderr.getvalue()
        self.assertNotIn('Traceback', err)
        self.assertLessEqual(len(err.splitlines()), 1, err)
        return rc
