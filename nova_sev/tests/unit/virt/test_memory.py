"""SEV guest memory arithmetic."""

import testtools

from nova_sev import exception
from nova_sev.virt import memory


class TestMemory(testtools.TestCase):

    def test_spec_example(self):
        # The spec's example: a 4 GiB guest gets 4718592 KiB.
        self.assertEqual(4718592, memory.hard_limit_kib(4096))
        self.assertEqual(4718592, memory.hard_limit_kib(4096, 0, 16, 496))

    def test_pinned(self):
        self.assertEqual(4096 + 16, memory.pinned_memory_mb(4096))
        self.assertEqual(2048 + 64 + 32,
                         memory.pinned_memory_mb(2048, 64, 32))

    def test_hard_limit_counts_every_part(self):
        self.assertEqual((1024 + 8 + 20 + 100) * 1024,
                         memory.hard_limit_kib(1024, 8, 20, 100))
        self.assertEqual(0, memory.hard_limit_kib(0, 0, 0, 0))

    def test_bad_values(self):
        for args in ((-1,), (1024, -1), (1024, 0, -1), (1024, 0, 16, -1),
                     ('1024',), (1.5,), (True,)):
            e = self.assertRaises(exception.InvalidInput,
                                  memory.hard_limit_kib, *args)
            self.assertIn('MiB', str(e))
