import json

from nova_sev.tests.unit.cmd import base


class PlanMemoryCommandTestCase(base.CommandTestCase):
    """``nova-sev plan-memory`` as an operator runs it."""

    command = 'plan-memory'

    def setUp(self):
        super().setUp()

    def _run(self, *args):
        return self.run_command(*args)

    def test_spec_example_json(self):
        rc = self._run('--host-ram-mb', '262144', '--flavor-ram-mb', '4096',
                       '--host-os-reserved-mb', '4096', '--format', 'json')
        self.assertEqual(0, rc)
        out = json.loads(self.stdout.getvalue())
        self.assertEqual(4112, out['per_guest']['pinned_mb'])
        self.assertEqual(4718592, out['per_guest']['hard_limit_kib'])
        self.assertEqual(62, out['max_guests'])
        self.assertEqual(5088, out['reserved_host_memory_mb'])
        self.assertTrue(out['fits'])
        self.assertIsNone(out['reason'])
        self.assertEqual('', self.stderr.getvalue())

    def test_text_gives_the_setting(self):
        rc = self._run('--host-ram-mb', '65536', '--flavor-ram-mb', '2048',
                       '--video-mb', '64', '--host-os-reserved-mb', '2048',
                       '--guests', '20')
        self.assertEqual(0, rc)
        out = self.stdout.getvalue()
        self.assertIn('pinned memory: 2128 MiB', out)
        self.assertIn('hard limit: 2686976 KiB', out)
        self.assertIn('most SEV guests: 29', out)
        self.assertIn('For 20 SEV guests', out)
        self.assertIn('reserved_host_memory_mb = 2368', out)

    def test_default_host_os_reservation_is_novas(self):
        rc = self._run('--host-ram-mb', '16384', '--flavor-ram-mb', '1024',
                       '--format', 'json')
        self.assertEqual(0, rc)
        out = json.loads(self.stdout.getvalue())
        self.assertEqual(512, out['host_os_reserved_mb'])
        self.assertEqual((16384 - 512) // 1040, out['max_guests'])

    def test_too_many_guests_refused(self):
        rc = self._run('--host-ram-mb', '65536', '--flavor-ram-mb', '2048',
                       '--guests', '40', '--format', 'json')
        self.assertEqual(1, rc)
        out = json.loads(self.stdout.getvalue())
        self.assertFalse(out['fits'])
        self.assertEqual(40, out['guests'])
        err = self.stderr.getvalue()
        self.assertEqual(1, len(err.splitlines()))
        self.assertIn('40 SEV guests pin', err)

    def test_asid_slots_bound(self):
        rc = self._run('--host-ram-mb', '1048576', '--flavor-ram-mb', '1024',
                       '--max-asids', '509', '--guests', '510')
        self.assertEqual(1, rc)
        self.assertIn('ASID slots: 509', self.stdout.getvalue())
        self.assertIn('need 510 ASID slots', self.stderr.getvalue())

    def test_config_file_overheads(self):
        conf = self.tmp + '/nova.conf'
        with open(conf, 'w') as f:
            f.write('[sev]\nfirmware_overhead_mb = 32\n'
                    'qemu_overhead_mb = 256\n')
        rc = self._run('--host-ram-mb', '65536', '--flavor-ram-mb', '4096',
                       '--config-file', conf, '--format', 'json')
        self.assertEqual(0, rc)
        per_guest = json.loads(self.stdout.getvalue())['per_guest']
        self.assertEqual(4128, per_guest['pinned_mb'])
        self.assertEqual((4128 + 256) * 1024, per_guest['hard_limit_kib'])

    def test_bad_input_one_line(self):
        rc = self._run('--host-ram-mb', '1024', '--flavor-ram-mb', '512',
                       '--host-os-reserved-mb', '2048')
        self.assertEqual(2, rc)
        err = self.stderr.getvalue()
        self.assertEqual(1, len(err.splitlines()))
        self.assertIn('host OS reservation', err)
        self.assertNotIn('Traceback', err)

    def test_not_a_number(self):
        e = self.assertRaises(SystemExit, self._run, '--host-ram-mb', 'lots',
                              '--flavor-ram-mb', '512')
        self.assertEqual(2, e.code)
        self.assertIn('--host-ram-mb', self.stderr.getvalue())

    def test_snp_guests_have_no_hard_limit_but_count(self):
        rc = self._run('--host-ram-mb', '262144', '--flavor-ram-mb', '4096',
                       '--host-os-reserved-mb', '4096', '--mode', 'sev-snp',
                       '--format', 'json')
        self.assertEqual(0, rc)
        out = json.loads(self.stdout.getvalue())
        self.assertEqual('sev-snp', out['mode'])
        self.assertEqual(4112, out['per_guest']['pinned_mb'])
        self.assertIsNone(out['per_guest']['hard_limit_kib'])
        # Counted as SEV guests are: same guests, same reservation.
        self.assertEqual(62, out['max_guests'])
        self.assertEqual(5088, out['reserved_host_memory_mb'])

    def test_snp_text_and_es_pool(self):
        rc = self._run('--host-ram-mb', '65536', '--flavor-ram-mb', '2048',
                       '--mode', 'sev-snp', '--max-asids', '2', '--guests',
                       '3')
        self.assertEqual(1, rc)
        self.assertIn('hard limit: none (SEV-SNP memory is not locked',
                      self.stdout.getvalue())
        self.assertIn('3 SEV-ES/SEV-SNP guests need 3 ES/SNP ASID slots',
                      self.stderr.getvalue())
