"""Running ``nova-sev`` sub-commands in the test process."""

import io
import os
import sys

import fixtures

from nova_sev.cmd import config
from nova_sev.cmd import sev
from nova_sev.tests.unit.attestation import vectors


class Result:
    def __init__(self, code, out, err):
        self.code = code
        self.out = out
        self.err = err


def run(test, argv):
    """``nova-sev argv``: its exit code, stdout and stderr. Asserts the
    promise of every sub-command: no traceback, at most one error line.
    """
    out, err = io.StringIO(), io.StringIO()
    # --config-file loads into the global CONF: leave nothing behind.
    test.addCleanup(config.CONF.clear)
    test.useFixture(fixtures.MonkeyPatch('sys.stdout', out))
    test.useFixture(fixtures.MonkeyPatch('sys.stderr', err))
    try:
        code = sev.main(argv)
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    result = Result(code, out.getvalue(), err.getvalue())
    test.assertNotIn('Traceback', result.err)
    test.assertLessEqual(len(result.err.splitlines()), 1, result.err)
    return result


class OwnerFiles(fixtures.Fixture):
    """The guest owner's files of the known-answer vectors."""

    def _setUp(self):
        self.dir = self.useFixture(fixtures.TempDir()).path
        for name, data in (('tk', vectors.TK), ('tik', vectors.TIK),
                           ('tek', vectors.TEK),
                           ('firmware', vectors.FIRMWARE),
                           ('kernel', vectors.KERNEL),
                           ('initrd', vectors.INITRD),
                           ('vmsa0', vectors.VMSA_CPU0),
                           ('vmsa1', vectors.VMSA_CPU1),
                           ('luks', vectors.LUKS_PASSPHRASE)):
            self.write(name, data)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, data):
        mode = 'w' if isinstance(data, str) else 'wb'
        with open(self.path(name), mode) as f:
            f.write(data)
        return self.path(name)


def report_args(measured=vectors.MEASUREMENT_FIRMWARE,
                policy=vectors.POLICY_SEV):
    return ['--measurement', measured,
            '--api-major', str(vectors.API_MAJOR),
            '--api-minor', str(vectors.API_MINOR),
            '--build-id', str(vectors.BUILD_ID),
            '--policy', hex(policy)]
