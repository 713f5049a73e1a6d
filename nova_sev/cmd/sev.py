"""``nova-sev``: the operator's, admin's and guest owner's SEV tools.

Exit codes are those of ``nova_sev.cmd.common``: 0 fine, 1 refused or not
usable, 2 could not check (``verify-report`` adds 3, not authentic). No
sub-command ends in a traceback.

The command table is lazy: ``nova-sev --help`` imports no command module,
and ``nova-sev COMMAND`` imports that command's module only, so each
command pays for the libraries it uses and for no other's. To add a
command:

1. Write ``nova_sev/cmd/<module>.py`` whose docstring is the command's
   ``--help`` description, with two functions::

       def add_arguments(parser: argparse.ArgumentParser) -> None:
           ...  # parser.add_argument(...), common.add_*_argument(parser)

       def run(args: argparse.Namespace) -> int:
           ...  # the work; returns an exit code of nova_sev.cmd.common

   Keep the module's own imports light (the standard library,
   ``nova_sev.cmd.common``, ``nova_sev.exception`` and what ``run`` cannot
   do without): its import is what ``nova-sev COMMAND --help`` costs. Give
   ``--config-file`` (``common.add_config_argument``) only where options
   are read; oslo.config and oslo.log are loaded only when it is given.
2. Add ``(name, module, one-line help)`` to ``COMMANDS`` below.
3. Extend the import-set test (nova_sev/tests/unit/cmd/test_sev.py) if the
   command must stay clear of a heavy library.
"""

import argparse
import importlib
import sys
import typing

from nova_sev.cmd import common
from nova_sev import exception

# (command, module of nova_sev.cmd, the one line ``nova-sev --help`` gives),
# in the order ``nova-sev --help`` lists them.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ('host-check', 'host_check',
     'report whether this host can run SEV guests'),
    ('guest-xml', 'guest_xml', 'print the SEV form of a libvirt domain'),
    ('plan-memory', 'plan_memory',
     'plan host memory and reserved_host_memory_mb for SEV guests'),
    ('check-flavor', 'check_flavor',
     'check that a flavor and image give a working SEV guest'),
    ('expected-measurement', 'expected_measurement',
     'compute the launch digest an SEV, SEV-ES or SNP guest must report '
     '(guest owner)'),
    ('session', 'session',
     'make the launch session (GODH, session blob, TEK, TIK) for an SEV '
     'platform (guest owner, trusted machine)'),
    ('verify-measurement', 'verify_measurement',
     'check an SEV launch measurement (guest owner, trusted machine)'),
    ('build-secret', 'build_secret',
     'build the launch secret for a verified SEV guest (guest owner, '
     'trusted machine)'),
    ('verify-report', 'verify_report',
     'verify an SEV-SNP attestation report (guest owner, trusted machine)'),
    ('attest', 'attest',
     "attest an SEV, SEV-ES or SNP server through Nova's API and release "
     "it with your secret (guest owner, trusted machine)"),
    ('launch-info', 'launch_info',
     "report an SEV guest's launch measurement and the host's SEV platform "
     "data"),
)


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line like every other error
    (exit status 2, as argparse's own).
    """

    def error(self, message: str) -> typing.NoReturn:
        self.exit(common.EXIT_ERROR, '%s: error: %s (see %s --help)\n' % (
            self.prog, common.one_line(message), self.prog))


def command_named(argv: list[str]) -> str | None:
    """The sub-command ``argv`` asks for: its first word that is not an
    option (``--debug`` is the only option before it); None for none.
    """
    return next((arg for arg in argv if not arg.startswith('-')), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``nova-sev`` parser, with the arguments of the command that
    ``argv`` names (all commands when ``argv`` is None); the others are
    listed by name and help only, their modules not imported.
    """
    parser = _Parser(
        prog='nova-sev',
        description='AMD SEV tools for OpenStack Nova compute hosts.')
    parser.add_argument('--debug', action='store_true',
                        help='log debugging messages on stderr')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    subparsers.required = True
    wanted = None if argv is None else command_named(argv)
    for name, module_name, summary in COMMANDS:
        if argv is not None and name != wanted:
            subparsers.add_parser(name, help=summary, add_help=False)
            continue
        module = importlib.import_module('nova_sev.cmd.' + module_name)
        sub = subparsers.add_parser(
            name, help=summary, description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(argv).parse_args(argv)
    try:
        common.setup(getattr(args, 'config_file', []), args.debug)
        return args.func(args)
    except exception.NovaSevException as e:
        return common.fail(common.EXIT_ERROR, e)
    except KeyboardInterrupt:
        return common.fail(common.EXIT_ERROR, 'interrupted')
    except BrokenPipeError:
        return common.EXIT_ERROR
    except Exception as e:  # noqa: B902 - the promise: never a traceback
        common.log_unexpected()
        return common.fail(common.EXIT_ERROR,
                           'unexpected error: %s: %s (run with --debug for '
                           'details)' % (type(e).__name__, e))


if __name__ == '__main__':
    sys.exit(main())
