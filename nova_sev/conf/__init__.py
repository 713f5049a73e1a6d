"""nova-sev configuration, registered on oslo.config's global CONF.

Inside nova-compute the options live in nova.conf next to Nova's own; the
``nova-sev`` command reads them from ``--config-file``.
"""

from oslo_config import cfg

from nova_sev.conf import sev

CONF = cfg.CONF

sev.register_opts(CONF)
