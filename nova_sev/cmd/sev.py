"""``nova-sev``: the operator's, admin's and guest owner's SEV tools.

Each sub-command lives in its own module of ``nova_sev.cmd`` with
``register(subparsers)`` (which sets the parser's ``func``) and keeps the
exit codes of ``nova_sev.cmd.common``: 0 fine, 1 refused or not usable,
2 could not check (``verify-report`` adds 3, not authentic). No
sub-command ends in a traceback.
"""

import argparse
import importlib
import sys
import typing

from nova_sev.cmd import common
from nova_sev import exception

# Sub-command modules, in the order ``nova-sev --help`` lists them.
COMMANDS = (
    'host_check',
    'guest_xml',
    'plan_memory',
    'check_flavor',
    'expected_measurement',
    'session',
    'verify_measurement',
    'build_secret',
    'verify_report',
    'launch_info',
)


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line like every other error
    (exit status 2, as argparse's own).
    """

    def error(self, message: str) -> typing.NoReturn:
        self.exit(common.EXIT_ERROR, '%s: error: %s (see %s --help)\n' % (
            self.prog, common.one_line(message), self.prog))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog='nova-sev',
        description='AMD SEV tools for OpenStack Nova compute hosts.')
    parser.add_argument('--debug', action='store_true',
                        help='log debugging messages on stderr')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    subparsers.required = True
    for name in COMMANDS:
        importlib.import_module('nova_sev.cmd.' + name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        common.load_config(getattr(args, 'config_file', []), args.debug)
        return args.func(args)
    except exception.NovaSevException as e:
        return common.fail(common.EXIT_ERROR, e)
    except KeyboardInterrupt:
        return common.fail(common.EXIT_ERROR, 'interrupted')
    except BrokenPipeError:
        return common.EXIT_ERROR
    except Exception as e:  # noqa: B902 - the promise: never a traceback
        common.LOG.debug('unexpected error', exc_info=True)
        return common.fail(common.EXIT_ERROR,
                           'unexpected error: %s: %s (run with --debug for '
                           'details)' % (type(e).__name__, e))


if __name__ == '__main__':
    sys.exit(main())
