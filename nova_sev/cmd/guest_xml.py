"""``nova-sev guest-xml``: preview the SEV form of a libvirt domain.

Give it a domain (``virsh dumpxml`` of an ordinary guest, say), the flavor
extra specs and image properties of the request and, optionally, another
host's domain capabilities: it prints the domain nova-sev would define, by
the same rules as the Nova driver. Documented in doc/source/cli/guest-xml.rst.
Exit status: 0 printed (unchanged when SEV is not requested, as stderr
says), 1 the SEV guest is refused (the line names what to change), 2 the
input could not be read.
"""

import argparse
import sys

from nova_sev.cmd import common
from nova_sev.cmd import host_reading
from nova_sev import exception
from nova_sev.virt import hardware
from nova_sev.virt.libvirt import designer
from nova_sev.virt.libvirt import firmware as fw
from nova_sev.virt.libvirt import guest_plan as gp
from nova_sev.virt.libvirt import host
from nova_sev.virt.libvirt import sev_guest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--domain', metavar='FILE', required=True,
        help='libvirt domain XML to convert ("-" reads stdin)')
    common.add_request_arguments(parser)
    common.add_host_arguments(
        parser, "the firmware is chosen among this machine's descriptors "
                "([sev]firmware_descriptor_dirs): an SEV-SNP guest is "
                "refused where none lists amd-sev-snp")
    common.add_config_argument(parser)


def _capabilities(args) -> tuple[host.SevHostCapabilities,
                                 list[fw.FirmwareDescriptor] | None]:
    """The host capabilities the way ``host-check`` gets them, and the
    firmware descriptors to choose from (None: those detection found).
    Detection examines no firmware for a --domcaps file without
    --firmware-dir, or a remote URI: the firmware is then chosen among this
    machine's descriptors.
    """
    caps = host_reading.read_host(args).caps
    if caps.firmware is not None:
        return caps, None
    return caps, fw.load_descriptors(
        list(host_reading.sev_option(args, 'firmware_descriptor_dirs')))


def _summary(plan: gp.GuestPlan) -> str:
    if plan.snp is not None:
        return ('SEV-SNP guest: policy 0x%08x, firmware %s (stateless), '
                'memory not locked (guest_memfd), %d MiB unswappable, '
                'hostData %s' % (plan.policy, plan.firmware_descriptor_path,
                                 plan.pinned_memory_mb,
                                 plan.snp.host_data or 'none'))
    memory = ('hard limit %d KiB' % plan.hard_limit_kib
              if plan.hard_limit_kib is not None else 'huge pages')
    return ('%s guest: policy 0x%04x, firmware %s, %s, %d MiB pinned' % (
        'SEV-ES' if plan.mode is hardware.SevMode.SEV_ES else 'SEV',
        plan.policy, plan.firmware_descriptor_path, memory,
        plan.pinned_memory_mb))


def run(args) -> int:
    # oslo.config is loaded to run, not for --help.
    from nova_sev.cmd import config
    host_reading.kvm_amd_dir(args)  # bad input is exit 2, SEV requested or not
    extra_specs = common.parse_key_values(args.extra_spec, '--extra-spec')
    image_props = common.parse_key_values(args.image_property,
                                          '--image-property')
    domain_xml = common.read_text_file(args.domain, '--domain')
    source = 'stdin' if args.domain == '-' else args.domain
    # Malformed input is exit 2 whether or not SEV is requested.
    try:
        designer.domain_facts(domain_xml)
    except exception.InvalidLibvirtXML as e:
        raise e.with_source(source) from None
    machine_types = config.conf_machine_types(args.config_file)
    try:
        if hardware.get_sev_mode(extra_specs,
                                 image_props) is hardware.SevMode.NONE:
            sys.stdout.write(domain_xml)
            print('nova-sev: SEV is not requested by these extra specs and '
                  'image properties: the domain is printed unchanged',
                  file=sys.stderr)
            return common.EXIT_OK
        caps, firmware = _capabilities(args)
        sev_xml, plan = sev_guest.design_sev_domain(
            domain_xml, extra_specs, image_props, caps,
            gp.options_from_conf(config.CONF), firmware, machine_types)
    except exception.SevGuestRefused as e:
        return common.fail(common.EXIT_REFUSED, e)
    sys.stdout.write(sev_xml)
    print('nova-sev: %s' % _summary(plan), file=sys.stderr)
    return common.EXIT_OK
