"""Entry point for oslo-config-generator (``oslo.config.opts``)."""

from nova_sev.conf import sev


def list_opts() -> list:
    return [(group, opts) for group, opts in sev.list_opts().items()]
