"""From a request and a base domain to the SEV domain, for ``nova-sev
guest-xml`` (spec: "Proposed change", third bullet; design.md §3).

The same two steps as the Nova driver: ``guest_plan.plan_guest`` decides
(and refuses), ``designer`` writes. Only the edges differ: here the guest
is a base domain (``virsh dumpxml``) whose facts ``designer.domain_facts``
reads; the driver gives the flavor's RAM and ``[libvirt]virt_type`` and
writes into the domain Nova formats. ``sev_device`` does the same for one
device attached to a running SEV guest.
"""

import collections.abc
from typing import Any

from lxml import etree

from nova_sev.virt.libvirt import designer
from nova_sev.virt.libvirt import firmware as fw
from nova_sev.virt.libvirt import guest_plan as gp
from nova_sev.virt.libvirt import host


def design_sev_domain(
        domain_xml: str,
        extra_specs: collections.abc.Mapping[str, str],
        image_props: collections.abc.Mapping[str, Any],
        caps: host.SevHostCapabilities,
        options: gp.SevGuestOptions,
        firmware: (collections.abc.Sequence[fw.FirmwareDescriptor] |
                   None) = None,
        conf_machine_types: list[str] | None = None,
        attested: bool = False,
) -> tuple[str, gp.GuestPlan | None]:
    """The whole way from a request to a domain: the facts of
    ``domain_xml``, the plan (``guest_plan.plan_guest``), the SEV domain.

    Returns ``domain_xml`` unchanged and None when SEV is not requested;
    else the SEV domain and its plan (``attested``: the owner attests the
    launch, ``guest_plan.attested_plan``). Raises what the steps raise:
    SevGuestRefused subclasses, InvalidLibvirtXML.
    """
    root = designer.parse_domain(domain_xml)
    uuid, direct_kernel = designer.snp_domain_facts(root)
    plan = gp.plan_guest(
        extra_specs, image_props, caps, options,
        conf_machine_types=conf_machine_types,
        domain=designer.domain_root_facts(root), firmware=firmware,
        instance_uuid=uuid, direct_kernel_boot=direct_kernel,
        attested=attested)
    if plan is None:
        return domain_xml, None
    # The facts were only read from the tree: write the plan into it.
    designer.write_guest_plan(root, plan)
    etree.indent(root, space='  ')
    return etree.tostring(root, encoding='unicode') + '\n', plan


def sev_device(device_xml: str) -> str:
    """One device to attach to a running SEV guest, as it must be:
    refused when it is a host device or an IDE disk (SevGuestRefused
    subclasses), else with ``<driver iommu='on'/>`` when virtio.
    """
    tag, bus, dev, host_devices = designer.device_facts(device_xml)
    gp.refuse_host_devices(host_devices, 'the device being attached')
    if tag == 'disk':
        gp.check_attached_disk(bus, dev)
    return designer.enable_iommu(device_xml)
