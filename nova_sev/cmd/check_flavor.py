"""``nova-sev check-flavor``: will this flavor and image give a working SEV
guest? Reports every problem with its fix, before any user boots them.

Extra specs and image properties come from ``--extra-spec K=V`` and
``--image-property K=V`` (repeatable), or from what ``openstack flavor show
-f json`` and ``openstack image show -f json`` print (``--flavor-json``,
``--image-json``); options given on the command line win. The guest is
judged as nova-sev would build it on an SEV capable host, with the [sev]
options of --config-file; ``nova-sev host-check`` judges the host.

The JSON form (``--format json``) is a stable interface, documented in
doc/source/cli/check-flavor.rst; keys are only ever added.
Exit status: 0 the pair gives a working SEV guest (advice allowed), 1 it
would be refused or is not SEV at all, 2 bad input.
"""

import argparse
from typing import Any

from nova_sev.cmd import common
from nova_sev.cmd import flavor_check
from nova_sev import exception
from nova_sev.virt.libvirt import guest_plan
from nova_sev.virt import memory


# Image properties that older clients print at the top level.
_IMAGE_PROPERTY_PREFIXES = ('hw_', 'trait:', 'img_', 'os_', 'traits_')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_request_arguments(parser)
    parser.add_argument('--flavor-json', metavar='FILE',
                        help='output of "openstack flavor show -f json"')
    parser.add_argument('--image-json', metavar='FILE',
                        help='output of "openstack image show -f json"')
    common.add_format_argument(parser)
    common.add_config_argument(parser)


def flavor_from_show(data: Any) -> tuple[dict[str, Any], int, str | None]:
    """The extra specs, RAM (MiB, 0 when absent) and name of a flavor as
    ``openstack flavor show -f json`` prints it, old clients or new.
    """
    if not isinstance(data, dict):
        raise exception.InvalidInput(
            reason='--flavor-json is not a JSON object as "openstack flavor '
                   'show -f json" prints')
    specs = common.osc_properties(
        data.get('properties', data.get('extra_specs')), 'flavor')
    ram = data.get('ram', 0) or 0
    if isinstance(ram, bool) or not isinstance(ram, int) or ram < 0:
        raise exception.InvalidInput(
            reason='--flavor-json "ram" is %s, not a number of MiB' %
            exception.excerpt(repr(ram)))
    if ram > memory.MAX_MEMORY_MB:
        raise exception.InvalidInput(
            reason='--flavor-json "ram" is %d MiB, more than %s' % (
                ram, memory.MAX_MEMORY_TEXT))
    return specs, ram, data.get('name')


def image_from_show(data: Any) -> tuple[dict[str, Any], str | None]:
    """The properties and name of an image as ``openstack image show -f
    json`` prints it: a "properties" object (or string), plus the
    properties old clients print at the top level.
    """
    if not isinstance(data, dict):
        raise exception.InvalidInput(
            reason='--image-json is not a JSON object as "openstack image '
                   'show -f json" prints')
    props = {k: v for k, v in data.items()
             if k.startswith(_IMAGE_PROPERTY_PREFIXES)}
    props.update(common.osc_properties(data.get('properties'), 'image'))
    return props, data.get('name')


def _load_json(path: str, option: str) -> Any:
    return common.parse_json(common.read_text_file(path, option), option,
                             path)


def report_dict(check: flavor_check.FlavorCheck, specs: dict,
                props: dict, flavor: str | None, image: str | None,
                ram_mb: int = 0) -> dict:
    """The verdict as the documented JSON structure: the guest only when
    the pair works, its memory only when the flavor's RAM is known
    (``ram_mb`` > 0).
    """
    plan = check.plan if check.works else None
    known = plan is not None and ram_mb > 0
    return {
        'flavor': flavor,
        'image': image,
        'extra_specs': specs,
        'image_properties': props,
        'sev_mode': check.mode.value if check.mode is not None else None,
        'works': check.works,
        'findings': [{'level': f.level, 'source': f.source, 'key': f.key,
                      'message': f.message} for f in check.findings],
        'guest': None if plan is None else {
            'machine_type': plan.machine_type,
            'policy': '0x%04x' % plan.policy,
            'disk_bus': plan.disk_bus,
            'cdrom_bus': plan.cdrom_bus,
            'ram_mb': ram_mb if known else None,
            'pinned_memory_mb': plan.pinned_memory_mb if known else None,
            'hard_limit_kib': plan.hard_limit_kib if known else None,
        },
    }


def format_text(report: dict) -> str:
    """The verdict for a person at a terminal."""
    names = [n for n in ('flavor %s' % report['flavor']
                         if report['flavor'] else None,
                         'image %s' % report['image']
                         if report['image'] else None) if n]
    lines = ['SEV check of %s' % (' and '.join(names) or
                                  'the given extra specs and properties')]
    if report['sev_mode'] is not None:
        lines.append('asks for: %s' % {'none': 'no SEV', 'sev': 'SEV',
                                       'sev-es': 'SEV-ES',
                                       'sev-snp': 'SEV-SNP'}.get(
                                           report['sev_mode']))
    for finding in report['findings']:
        lines.append('%s: %s' % (finding['level'].upper(),
                                 finding['message']))
    guest = report['guest']
    if guest is not None:
        lines.append('guest: machine %s, policy %s, disk bus %s, CD-ROM bus '
                     '%s' % (guest['machine_type'], guest['policy'],
                             guest['disk_bus'] or 'as the image says',
                             guest['cdrom_bus'] or 'as the image says'))
        if guest['pinned_memory_mb'] is not None:
            lines.append('memory: %d MiB RAM pins %d MiB, hard limit %s' % (
                guest['ram_mb'], guest['pinned_memory_mb'],
                '%d KiB' % guest['hard_limit_kib']
                if guest['hard_limit_kib'] else 'none (huge pages)'))
    errors = sum(1 for f in report['findings'] if f['level'] == 'error')
    if report['works']:
        lines.append('result: gives a working SEV guest')
    else:
        lines.append('result: REFUSED, %d problem(s) to fix' % errors)
    return '\n'.join(lines)


def run(args) -> int:
    # oslo.config is loaded to run, not for --help.
    from nova_sev.cmd import config
    specs: dict[str, Any] = {}
    props: dict[str, Any] = {}
    ram_mb, flavor, image = 0, None, None
    if args.flavor_json:
        specs, ram_mb, flavor = flavor_from_show(
            _load_json(args.flavor_json, '--flavor-json'))
    if args.image_json:
        props, image = image_from_show(
            _load_json(args.image_json, '--image-json'))
    specs.update(common.parse_key_values(args.extra_spec, '--extra-spec'))
    props.update(common.parse_key_values(args.image_property,
                                         '--image-property'))
    if not specs and not props:
        return common.fail(common.EXIT_ERROR, 'nothing to check: give '
                           '--extra-spec, --image-property, --flavor-json '
                           'or --image-json')
    check = flavor_check.check_flavor(
        specs, props, ram_mb, guest_plan.options_from_conf(config.CONF),
        config.conf_machine_types(args.config_file))
    report = report_dict(check, specs, props, flavor, image, ram_mb)
    if args.format == 'json':
        common.print_json(report)
    else:
        print(format_text(report))
    if check.works:
        return common.EXIT_OK
    first = check.errors[0].message if check.errors else 'not an SEV guest'
    return common.fail(common.EXIT_REFUSED, 'would be refused: %s' % first)
