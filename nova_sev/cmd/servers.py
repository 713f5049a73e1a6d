"""Where the guest owner's commands read a server and answer it: Nova's
API through openstacksdk (``--server``, with ``clouds.yaml``,
``--os-cloud`` and the ``OS_*`` variables, as every OpenStack client), or
the output of ``openstack server show -f json`` (``--server-json``).

The calls are those the stock ``openstack`` client makes: GET
``/servers/{id}``, POST ``/servers/{id}/metadata`` (``server set
--property``, which merges and so never deletes the driver's keys) and
POST ``/servers/{id}/action`` with ``reboot``. openstacksdk is imported
only when a server is asked for: the other commands do not need it.
"""

import argparse
import logging
import os
from typing import Any

from nova_sev.attestation import owner
from nova_sev.cmd import common
from nova_sev import exception

REBOOT_HARD = 'HARD'
REBOOT_SOFT = 'SOFT'

# Where ``openstack server show -f json`` puts the task state: under
# Nova's extended attribute name, or (newer clients) without its prefix.
_TASK_STATE_KEYS = ('OS-EXT-STS:task_state', 'task_state')
_LIBRARY_LOGGERS = ('openstack', 'keystoneauth')


def add_cloud_arguments(parser) -> None:
    """``--os-cloud`` and ``--os-region-name``, as the ``openstack``
    client takes them; every other setting comes from ``clouds.yaml`` and
    the ``OS_*`` variables, read by openstacksdk.
    """
    group = parser.add_argument_group(
        'cloud (clouds.yaml and the OS_* variables, as the openstack '
        'client reads them)')
    group.add_argument('--os-cloud', metavar='NAME',
                       default=os.environ.get('OS_CLOUD'),
                       help='the cloud of clouds.yaml to use (default: '
                            '$OS_CLOUD, else the OS_* variables)')
    group.add_argument('--os-region-name', metavar='REGION',
                       default=os.environ.get('OS_REGION_NAME'),
                       help='the region (default: $OS_REGION_NAME)')


def add_server_arguments(parser, what: str) -> None:
    """``--server`` and ``--server-json``: the server ``what`` comes
    from.
    """
    group = parser.add_argument_group('the server (%s)' % what)
    source = group.add_mutually_exclusive_group()
    source.add_argument('--server', metavar='NAME_OR_ID',
                        help='read the server through Nova\'s API')
    source.add_argument('--server-json', metavar='FILE',
                        help='read the output of "openstack server show -f '
                             'json SERVER" instead ("-": stdin)')
    add_cloud_arguments(parser)


def connect(args: argparse.Namespace) -> Any:
    """An openstacksdk connection to the cloud ``args`` name."""
    from keystoneauth1 import exceptions as ksa_exceptions
    import openstack
    from openstack import exceptions as sdk_exceptions

    if not getattr(args, 'debug', False):
        # The command says in one line what failed; the libraries' own
        # warnings would be a second line on stderr.
        for name in _LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        return openstack.connect(cloud=args.os_cloud,
                                 region_name=args.os_region_name,
                                 app_name='nova-sev')
    except (sdk_exceptions.SDKException, ksa_exceptions.ClientException,
            ValueError, KeyError) as e:
        raise exception.CloudApiError(
            call='connecting to %s' % (args.os_cloud or 'the cloud of the '
                                       'OS_* variables'),
            reason=exception.excerpt(e, 300))


def _vcpus(flavor: Any) -> int | None:
    if isinstance(flavor, dict):
        vcpus = flavor.get('vcpus')
    else:
        vcpus = getattr(flavor, 'vcpus', None)
    return vcpus if isinstance(vcpus, int) else None


def server_of_resource(resource: Any) -> owner.Server:
    """An openstacksdk ``Server`` as the owner's flow reads it."""
    return owner.Server(
        id=resource.id, name=resource.name or '',
        status=resource.status or '', task_state=resource.task_state,
        metadata={str(k): str(v) for k, v in
                  (resource.metadata or {}).items()},
        vcpus=_vcpus(resource.flavor))


def server_of_document(document: Any, source: str) -> owner.Server:
    """``openstack server show -f json`` output as the owner's flow reads
    it; InvalidInput naming ``source`` when it is not such output.
    """
    from nova_sev.cmd import attestation_inputs

    metadata = attestation_inputs.server_properties(document, source)
    if not isinstance(document.get('id'), str):
        raise exception.InvalidInput(
            reason='%s has no server "id": give the output of "openstack '
            'server show -f json SERVER"' % source)
    task_state = None
    for key in _TASK_STATE_KEYS:
        if document.get(key):
            task_state = document[key]
    return owner.Server(
        id=document['id'], name=str(document.get('name') or ''),
        status=str(document.get('status') or ''), task_state=task_state,
        metadata={str(k): str(v) for k, v in metadata.items()},
        vcpus=_vcpus(document.get('flavor')))


def read_server_json(path: str) -> owner.Server:
    """The server of an ``openstack server show -f json`` file."""
    text = common.read_text_file(path, '--server-json')
    return server_of_document(common.parse_json(text, '--server-json', path),
                              '--server-json %s' % path)


class NovaServers:
    """The owner's calls on Nova's API, through one connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def _call(self, call: str, func, *args, **kwargs):
        from keystoneauth1 import exceptions as ksa_exceptions
        from openstack import exceptions as sdk_exceptions

        try:
            return func(*args, **kwargs)
        except (sdk_exceptions.SDKException,
                ksa_exceptions.ClientException) as e:
            raise exception.CloudApiError(call=call,
                                          reason=exception.excerpt(e, 300))

    def find(self, name_or_id: str) -> owner.Server:
        """The server named ``name_or_id`` (a name or an ID)."""
        found = self._call('finding server %s' % name_or_id,
                           self.conn.compute.find_server, name_or_id,
                           ignore_missing=True)
        if found is None:
            raise exception.CloudApiError(
                call='finding server %s' % name_or_id,
                reason='no such server in this project')
        return self.get(found.id)

    def get(self, server_id: str) -> owner.Server:
        """GET /servers/{id}."""
        return server_of_resource(self._call(
            'reading server %s' % server_id, self.conn.compute.get_server,
            server_id))

    def set_metadata(self, server_id: str, items: dict[str, str]) -> None:
        """POST /servers/{id}/metadata: ``items`` merged into the rest."""
        self._call('writing the metadata of server %s' % server_id,
                   self.conn.compute.set_server_metadata, server_id,
                   **items)

    def reboot(self, server_id: str, kind: str) -> None:
        """POST /servers/{id}/action {"reboot": {"type": kind}}."""
        self._call('rebooting server %s (%s)' % (server_id, kind),
                   self.conn.compute.reboot_server, server_id, kind)


def load_server(args: argparse.Namespace) -> owner.Server | None:
    """The server ``--server`` or ``--server-json`` names, or None."""
    if args.server_json:
        return read_server_json(args.server_json)
    if args.server:
        return NovaServers(connect(args)).find(args.server)
    return None
