"""nova-sev's SEV libvirt driver under the name Nova loads drivers by.

Nova's ``load_compute_driver`` imports ``[DEFAULT]compute_driver`` as
``nova.virt.<value>`` and nothing else. The nova-sev wheel installs this one
module into Nova's own ``nova/virt`` (as nova-lxd shipped ``nova/virt/lxd``),
so that ``compute_driver = sev_libvirt.SevLibvirtDriver`` works with the stock
``nova-compute``. It holds nothing but the import: the driver lives in
``nova_sev.virt.libvirt.driver``. The wheel carries neither
``nova/__init__.py`` nor ``nova/virt/__init__.py``, which are Nova's.
"""

from nova_sev.virt.libvirt.driver import SevLibvirtDriver

__all__ = ['SevLibvirtDriver']
