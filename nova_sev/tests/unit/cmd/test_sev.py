"""The lazy command table of ``nova-sev`` and what each command imports.

Each command pays for its own libraries only (issue 19: the commands
start as fast as their peers). The import sets are read from a fresh
process's ``sys.modules``; nothing here is timed.
"""

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys

import fixtures
import testtools

from nova_sev.cmd import sev

OVMF = '/usr/share/ovmf/OVMF.fd'

# Run in a child: the command's own process, its modules listed as JSON.
_CHILD = '''
import contextlib, io, json, sys
from nova_sev.cmd import sev
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        code = sev.main(sys.argv[1:])
    except SystemExit as e:
        code = e.code
print(json.dumps({'code': code, 'output': out.getvalue(),
                  'modules': sorted(sys.modules)}))
'''

# What no command but those that need them may load: oslo.config and
# oslo.log (only with --config-file), the driver's code, libvirt, lxml and
# the X.509 stack.
HEAVY = ('oslo_config', 'oslo_log', 'oslo_utils', 'nova_sev.virt', 'libvirt',
         'lxml', 'cryptography.x509', 'os_traits')


def modules_of(*argv: str) -> tuple[int, str, set[str]]:
    """Exit code, output and the modules of ``nova-sev argv``."""
    proc = subprocess.run([sys.executable, '-c', _CHILD] + list(argv),
                          capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONWARNINGS='ignore'))
    result = json.loads(proc.stdout.splitlines()[-1])
    return result['code'], result['output'], set(result['modules'])


def loaded(modules: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in modules
                  if any(m == p or m.startswith(p + '.') for p in prefixes))


class CommandTableTestCase(testtools.TestCase):

    def test_every_command_has_a_module(self):
        names = [name for name, _, _ in sev.COMMANDS]
        self.assertEqual(len(names), len(set(names)))
        for name, module_name, summary in sev.COMMANDS:
            module = importlib.import_module('nova_sev.cmd.' + module_name)
            self.assertTrue(callable(module.add_arguments), name)
            self.assertTrue(callable(module.run), name)
            self.assertTrue(module.__doc__, name)
            self.assertTrue(summary, name)

    def test_help_lists_every_command(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertRaises(SystemExit, sev.main, ['--help'])
        for name, _, summary in sev.COMMANDS:
            self.assertIn(name, out.getvalue())

    def test_unknown_command_is_a_usage_error(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            e = self.assertRaises(SystemExit, sev.main, ['host-chek'])
        self.assertEqual(2, e.code)
        self.assertIn("invalid choice: 'host-chek'", err.getvalue())

    def test_command_named(self):
        self.assertEqual('host-check',
                         sev.command_named(['--debug', 'host-check', '-h']))
        self.assertIsNone(sev.command_named(['--help']))


class ImportSetTestCase(testtools.TestCase):
    """The modules a command loads; fails when a set grows back."""

    def test_top_level_help_imports_no_command(self):
        code, out, modules = modules_of('--help')
        self.assertEqual(0, code)
        commands = {'nova_sev.cmd.' + m for _, m, _ in sev.COMMANDS}
        self.assertEqual([], sorted(commands & modules))
        self.assertEqual([], loaded(modules, *HEAVY))

    def test_expected_measurement(self):
        code, out, modules = modules_of(
            'expected-measurement', '--mode', 'snp', '--vcpus', '2',
            '--vcpu-type', 'EPYC-Milan', '--ovmf', OVMF)
        self.assertEqual(0, code, out)
        self.assertIn('Expected snp launch digest', out)
        self.assertEqual([], loaded(modules, *HEAVY))
        self.assertEqual([], loaded(modules, 'nova_sev.cmd.host_check',
                                    'nova_sev.cmd.verify_report'))

    def test_verify_measurement(self):
        code, out, modules = modules_of('verify-measurement', '--help')
        self.assertEqual(0, code, out)
        self.assertEqual([], loaded(modules, *HEAVY))

    def test_help_of_each_command_loads_no_configuration(self):
        for name, _, _ in sev.COMMANDS:
            code, out, modules = modules_of(name, '--help')
            self.assertEqual(0, code, out)
            self.assertEqual(
                [], loaded(modules, 'oslo_config', 'oslo_log', 'oslo_utils',
                           'libvirt'), name)

    def test_host_check_without_configuration(self):
        # A --domcaps file: what is read without a libvirt connection.
        path = os.path.join(self.useFixture(
            fixtures.TempDir()).path, 'domcaps.xml')
        with open(path, 'w') as f:
            f.write("<domainCapabilities><path>/usr/bin/qemu</path>"
                    "<domain>kvm</domain><machine>pc-q35-7.2</machine>"
                    "<arch>x86_64</arch></domainCapabilities>")
        code, out, modules = modules_of('host-check', '--domcaps', path)
        self.assertEqual(1, code, out)
        self.assertIn('SEV: NOT usable', out)
        self.assertEqual([], loaded(modules, 'oslo_config', 'oslo_log',
                                    'oslo_utils', 'cryptography'))


class OptionDefaultsTestCase(testtools.TestCase):

    def test_host_commands_defaults_are_the_options(self):
        # host-check reads these without oslo.config when no
        # --config-file is given: they must be the options' defaults.
        from nova_sev.cmd import config
        from nova_sev.cmd import host_reading
        for name, value in host_reading._SEV_DEFAULTS.items():
            self.assertEqual(config.CONF.sev[name], value, name)
