"""What every ``nova-sev`` sub-command shares: configuration, logging,
output format and the promise of one-line errors with a fixed exit code."""

import argparse
import json
import sys

from oslo_config import cfg
from oslo_log import log as logging

from nova_sev import conf as sev_conf
from nova_sev import exception

CONF = sev_conf.CONF
LOG = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_ERROR = 2

_logging_registered = False


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--config-file', action='append', default=[], metavar='FILE',
        help='oslo.config file with a [sev] section (nova.conf works); '
             'may be given more than once')


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--format', choices=('text', 'json'), default='text',
                        help='output format (default: text)')


def load_config(config_files: list[str], debug: bool = False) -> None:
    """Load ``config_files`` into CONF and set up oslo.log on stderr."""
    global _logging_registered
    if not _logging_registered:
        logging.register_options(CONF)
        _logging_registered = True
    args = []
    for path in config_files:
        args += ['--config-file', path]
    try:
        CONF(args, project='nova-sev', default_config_files=[],
             default_config_dirs=[])
    except (cfg.Error, OSError) as e:
        raise exception.InvalidInput(reason='cannot load configuration: %s'
                                     % e)
    if debug:
        CONF.set_override('debug', True)
    else:
        # The commands print their findings; the log repeats only problems.
        logging.set_defaults(default_log_levels=(
            logging.get_default_log_levels() + ['nova_sev=WARN']))
    logging.setup(CONF, 'nova-sev')


def print_json(data: dict) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write('\n')


def fail(code: int, message: str) -> int:
    """Print ``message`` as the one line the user reads; return ``code``."""
    print('nova-sev: %s' % ' '.join(str(message).split()), file=sys.stderr)
    return code
