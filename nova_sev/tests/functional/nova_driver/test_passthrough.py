"""Passthrough devices (SR-IOV ports) and SEV guests: refused at boot and
when attached later, leaving a running instance as it was.
"""

from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.api import client
from nova.tests.functional.libvirt import base as nova_base
from oslo_serialization import jsonutils

from nova_sev.tests.functional.nova_driver import base

PORTS = nova_base.LibvirtNeutronFixture


class TestSevPassthrough(base.SevServersTestBase):
    ADDITIONAL_FILTERS = ['PciPassthroughFilter']

    def setUp(self):
        self.flags(device_spec=[jsonutils.dumps({
            'vendor_id': fakelibvirt.PCI_VEND_ID,
            'product_id': fakelibvirt.VF_PROD_ID,
            'physical_network': 'physnet4'})], group='pci')
        super().setUp()
        self.neutron = self.useFixture(nova_base.LibvirtNeutronFixture(self))

    def test_passthrough_ports_are_refused(self):
        self.start_sev_compute(
            'sev', pci_info=fakelibvirt.HostPCIDevicesInfo(num_pfs=1,
                                                           num_vfs=2))
        for port in (PORTS.network_4_port_1, PORTS.network_4_port_2):
            self.neutron.create_port({'port': port})
        # At boot: the build is aborted (no other host could do better),
        # saying which port, and no domain is defined.
        server = self.boot('sev-trait', expected_state='ERROR',
                           networks=[{'port': PORTS.network_4_port_1['id']}])
        self.assertIn('SEV guests cannot have port %s (vnic_type direct)' %
                      PORTS.network_4_port_1['id'],
                      server['fault']['message'])
        self.assertEqual([], self.domain_xmls(server))

        # Attached later: refused before anything is plugged.
        server = self.boot('sev-trait')
        defined = len(self.defined)
        ex = self.assertRaises(
            client.OpenStackApiException, self.api.attach_interface,
            server['id'], {'interfaceAttachment': {
                'port_id': PORTS.network_4_port_2['id']}})
        self.assertEqual(500, ex.response.status_code)
        self.assertIn('Attaching a passthrough device refused for SEV '
                      'instance %s' % server['id'],
                      self.stdlog.logger.output)
        server = self._wait_for_server_parameter(
            server, {'status': 'ACTIVE', 'OS-EXT-STS:task_state': None})
        self.assertEqual([], [x for x in self.attached
                              if x[0] == server['id']])
        self.assertEqual(defined, len(self.defined))
        self.assertEqual(fakelibvirt.VIR_DOMAIN_RUNNING,
                         self.domain('sev', server).info()[0])
        # Nova's API answers with its generic message; the user reads the
        # reason, SEV and the port, in the action's events.
        [detail] = [d for d in self.event_details(server, 'attach_interface')
                    if 'SEV' in d]
        self.assertIn('Attaching a passthrough device refused for SEV '
                      'instance %s' % server['id'], detail)
        self.assertIn('port %s (vnic_type direct)' %
                      PORTS.network_4_port_2['id'], detail)
        self.assertIn('vnic_type normal', detail)
