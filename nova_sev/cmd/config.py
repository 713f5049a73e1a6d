"""The configuration of the ``nova-sev`` commands that read options:
``--config-file`` loaded into oslo.config's CONF, checked, and oslo.log
set up as it says. Imported only when a configuration file is given or a
command reads options (``nova_sev.cmd.common.setup``).
"""

import contextlib
import io
import os
import re
import stat
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from nova_sev import conf as sev_conf
from nova_sev import exception

CONF = sev_conf.CONF

_logging_registered = False
_CLI_VALUE_ERROR = re.compile(
    r'argument --(?P<dest>[\w-]+): Invalid (?P<type>.+?) value')


def conf_machine_types(config_files: list[str]) -> list[str] | None:
    """``[libvirt]hw_machine_type`` of the configuration files.

    Read into a private ConfigOpts: registering Nova's option on the global
    CONF would clash with Nova's own registration of it.
    """
    local = cfg.ConfigOpts()
    local.register_opt(cfg.ListOpt('hw_machine_type'), group='libvirt')
    args = []
    for path in config_files:
        args += ['--config-file', path]
    try:
        local(args, project='nova-sev', default_config_files=[],
              default_config_dirs=[])
        return local.libvirt.hw_machine_type
    except (cfg.Error, OSError) as e:
        raise exception.InvalidInput(
            reason='cannot read [libvirt]hw_machine_type: %s' % e)


def _check_config_text(config_files: list[str]) -> None:
    """Refuse a --config-file that is not UTF-8 text (a binary, say), by
    name, before oslo.config trips over it.
    """
    for path in config_files:
        try:
            # Only regular files: a pipe (--config-file <(...)) would be
            # consumed here and read empty by oslo.config.
            if not stat.S_ISREG(os.stat(path).st_mode):
                continue
            with open(path, 'rb') as f:
                data = f.read()
        except OSError:
            continue  # oslo.config says which file is missing
        try:
            data.decode('utf-8')
        except UnicodeDecodeError as e:
            raise exception.InvalidInput(
                reason='--config-file %s is not a text configuration file '
                       '(byte 0x%02x at offset %d is not UTF-8)' % (
                           path, data[e.start], e.start))


def _option_source(config_files: list[str], group: str, name: str
                   ) -> tuple[str, str]:
    """The file that sets ``[group]name`` and its raw value, as oslo.config
    reads them (the last file wins).
    """
    for path in reversed(config_files):
        sections: dict = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (cfg.Error, OSError, ValueError):
            continue
        values = sections.get(group, {}).get(name)
        if values:
            return path, repr(exception.excerpt(values[-1]))
    return ', '.join(config_files) or 'the configuration', '?'


def _check_option(conf, config_files: list[str], group: str,
                  name: str) -> Any:
    try:
        return conf[name]
    except (cfg.Error, ValueError) as e:
        path, value = _option_source(config_files, group, name)
        reason = str(e).partition(' is not valid: ')[2] or str(e)
        raise exception.InvalidConfigOption(
            group=group, option=name, value=value, path=path,
            reason=exception.excerpt(reason, 200))


def check_options(conf: cfg.ConfigOpts, config_files: list[str]) -> None:
    """Read every registered option once, so that a value of the wrong
    type or range is refused now, naming the option, the value and the
    file, rather than failing wherever the option is first used.
    """
    for name in sorted(conf):
        value = _check_option(conf, config_files, 'DEFAULT', name)
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            for opt in sorted(value):
                _check_option(value, config_files, name, opt)


def load_config(config_files: list[str], debug: bool = False) -> None:
    """Load ``config_files`` into CONF, check its values and set up
    oslo.log on stderr.
    """
    global _logging_registered
    if not _logging_registered:
        logging.register_options(CONF)
        _logging_registered = True
    _check_config_text(config_files)
    args = []
    for path in config_files:
        args += ['--config-file', path]
    # oslo.config checks the values of command-line options (oslo.log's
    # debug, log_file...) read from a file itself, and exits after
    # printing "argument --debug: Invalid Boolean value: maybe".
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            CONF(args, project='nova-sev', default_config_files=[],
                 default_config_dirs=[])
    except (cfg.Error, OSError, ValueError) as e:
        raise exception.InvalidInput(reason='cannot load configuration: %s'
                                     % exception.excerpt(e, 300))
    except SystemExit:
        match = _CLI_VALUE_ERROR.match(printed.getvalue())
        if not match:
            raise exception.InvalidInput(
                reason='cannot load configuration: %s' % exception.excerpt(
                    printed.getvalue().strip() or 'oslo.config exited', 300))
        path, value = _option_source(config_files, 'DEFAULT',
                                     match.group('dest'))
        raise exception.InvalidConfigOption(
            group='DEFAULT', option=match.group('dest'), value=value,
            path=path, reason='not a %s' % match.group('type'))
    if debug:
        CONF.set_override('debug', True)
    else:
        # The commands print their findings; the log repeats only problems.
        logging.set_defaults(default_log_levels=(
            logging.get_default_log_levels() + ['nova_sev=WARN']))
    # After set_defaults: oslo.config caches what is read, and set_defaults
    # does not clear that cache.
    check_options(CONF, config_files)
    try:
        logging.setup(CONF, 'nova-sev')
    except (OSError, ValueError) as e:
        raise exception.InvalidInput(
            reason='cannot set up logging as [DEFAULT] log_file, log_dir or '
                   'log_config_append say: %s' % exception.excerpt(e, 300))
