"""The guest owner's ``nova-sev attest`` against Nova's API in the
harness, through openstacksdk as an owner's machine runs it: a
``clouds.yaml`` names the cloud, and every call is a request to Nova's
API (served in-process by wsgi-intercept, which intercepts ``requests``,
and so keystoneauth and openstacksdk).

Nova's functional API has no Keystone: its stubbed context middleware
takes the user, project and roles from ``X-Auth-*`` headers, which only
Nova's test client sends. Here it also takes them from the token, as
``user:project`` (noauth2's token form), so that openstacksdk's
``admin_token`` plugin, the one that sends a fixed token to a fixed
endpoint, authenticates as the project's member.
"""

import io
import os
from unittest import mock

import fixtures
from nova.api import auth as nova_auth
from nova import context as nova_context
import yaml

from nova_sev.attestation import server_metadata as sm
from nova_sev.cmd import common
from nova_sev.cmd import sev
from nova_sev.tests.functional.nova_driver import base
from nova_sev.tests.unit.attestation import cli

CLOUD = 'nova-sev-harness'


class OwnerCloud(fixtures.Fixture):
    """A ``clouds.yaml`` for the harness's API, and its authentication."""

    def __init__(self, api):
        super().__init__()
        self.api = api

    def _setUp(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(tmp, 'clouds.yaml')
        with open(path, 'w') as f:
            yaml.safe_dump({'clouds': {CLOUD: {
                'auth_type': 'admin_token',
                'auth': {'endpoint': self.api.base_url,
                         'token': 'owner:%s' % self.api.project_id},
            }}}, f)
        self.useFixture(fixtures.EnvironmentVariable(
            'OS_CLIENT_CONFIG_FILE', path))
        for name in [n for n in os.environ if n.startswith('OS_')
                     and n not in ('OS_CLIENT_CONFIG_FILE',
                                   'OS_NOVA_DISABLE_EVENTLET_PATCHING')]:
            self.useFixture(fixtures.EnvironmentVariable(name))
        stubbed = nova_auth.NovaKeystoneContext._create_context

        def create_context(env, **kwargs):
            if 'HTTP_X_AUTH_USER' not in env:
                user, _sep, project = env.get('HTTP_X_AUTH_TOKEN',
                                              '').partition(':')
                return nova_context.RequestContext(
                    user, project, roles=['reader', 'member'], **kwargs)
            return stubbed(env, **kwargs)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.api.auth.NovaKeystoneContext._create_context',
            create_context))


class AttestOwnerBase(base.SevServersTestBase):

    def setUp(self):
        super().setUp()
        self.useFixture(OwnerCloud(self.api))
        self.dir = self.useFixture(fixtures.TempDir()).path

    def nova_sev(self, *argv):
        """``nova-sev argv`` (its main, in this process) on the harness's
        cloud: exit code, stdout and stderr.

        The owner's machine loads its own configuration; here the global
        CONF is the harness's Nova configuration, already parsed, which
        the command must neither reload nor clear.
        """
        out, err = io.StringIO(), io.StringIO()
        with mock.patch('sys.stdout', out), mock.patch('sys.stderr', err), \
                mock.patch.object(common, 'load_config'):
            code = sev.main(list(argv) + ['--os-cloud', CLOUD])
        result = cli.Result(code, out.getvalue(), err.getvalue())
        self.assertNotIn('Traceback', result.err)
        self.assertLessEqual(len(result.err.splitlines()), 1, result.err)
        return result


class TestThroughNovaApi(AttestOwnerBase):
    """What needs no attested guest: the way to Nova's API works."""

    def test_server_that_never_opted_in(self):
        self.start_sev_compute('sev')
        server = self.boot('sev-trait')
        result = self.nova_sev('attest', server['name'], '--firmware',
                               base.OVMF_CODE, '--timeout', '0')
        self.assertEqual(1, result.code, result.err)
        self.assertIn('never opted in', result.err)
        self.assertIn(sm.ATTEST, result.err)
        self.assertNotIn(sm.GODH + '.0', self.api.get_server(
            server['id'])['metadata'])

    def test_expected_measurement_of_a_server_that_publishes_nothing(self):
        self.start_sev_compute('sev')
        server = self.boot('sev-trait')
        result = self.nova_sev('expected-measurement', '--ovmf',
                               base.OVMF_CODE, '--server', server['id'])
        self.assertEqual(2, result.code)
        self.assertIn('publishes no %s' % sm.POLICY, result.err)
