from importlib import metadata

from oslo_config import cfg
import testtools

from nova_sev.conf import opts
from nova_sev.conf import sev


class ListOptsTestCase(testtools.TestCase):

    def test_every_sev_option_is_listed(self):
        listed = dict(opts.list_opts())
        self.assertEqual(['sev'], [g.name for g in listed])
        names = {o.name for o in listed[sev.sev_group]}
        self.assertEqual({o.name for o in sev.ALL_OPTS}, names)
        for opt in sev.ALL_OPTS:
            self.assertTrue(opt.help and opt.help.strip(), opt.name)

    def test_generator_entry_point(self):
        # oslo-config-generator --namespace nova_sev finds list_opts.
        points = [ep for ep in metadata.entry_points(
            group='oslo.config.opts') if ep.name == 'nova_sev']
        self.assertEqual(1, len(points))
        self.assertIs(opts.list_opts, points[0].load())

    def test_registered_on_global_conf(self):
        from nova_sev import conf
        self.assertIs(cfg.CONF, conf.CONF)
        self.assertIn('sev', conf.CONF)
        # The spec's defaults: 4096 MiB of RAM -> a 4718592 KiB limit.
        defaults = {o.name: o.default for o in sev.ALL_OPTS}
        self.assertEqual(16, defaults['firmware_overhead_mb'])
        self.assertEqual(496, defaults['qemu_overhead_mb'])
