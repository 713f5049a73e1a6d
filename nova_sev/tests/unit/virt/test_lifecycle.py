import testtools

from nova_sev import exception
from nova_sev.virt.hardware import SevMode
from nova_sev.virt import lifecycle


class CheckOperationTestCase(testtools.TestCase):

    def test_not_sev_is_allowed(self):
        for operation in (lifecycle.LIVE_MIGRATION, lifecycle.SUSPEND,
                          lifecycle.PASSTHROUGH_ATTACH):
            lifecycle.check_operation(operation, SevMode.NONE, 'u1')

    def test_sev_is_refused_with_reason_and_fix(self):
        cases = {
            lifecycle.LIVE_MIGRATION: ('QEMU cannot migrate encrypted',
                                       'cold-migrate'),
            lifecycle.SUSPEND: ('cannot be saved and restored',
                                'stop or shelve'),
            lifecycle.PASSTHROUGH_ATTACH: ('DMA into encrypted',
                                           'vnic_type normal'),
        }
        for operation, (why, fix) in cases.items():
            for mode in (SevMode.SEV, SevMode.SEV_ES):
                e = self.assertRaises(
                    exception.SevOperationRefused, lifecycle.check_operation,
                    operation, mode, 'u1')
                self.assertTrue(e.message.startswith(
                    '%s refused for SEV instance u1: ' % operation))
                self.assertIn(why, e.message)
                self.assertIn(fix, e.message)

    def test_detail_names_the_device(self):
        e = self.assertRaises(
            exception.SevOperationRefused, lifecycle.check_operation,
            lifecycle.PASSTHROUGH_ATTACH, SevMode.SEV, 'u1',
            'port p1 (vnic_type direct)')
        self.assertIn('(port p1 (vnic_type direct))', e.message)
