# nova-sev documentation build configuration (Sphinx).

project = 'nova-sev'
copyright = '2026, nova-sev developers'
extensions = [
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
]
# oslo_config.sphinxconfiggen: the sample config of reference/sample-config,
# generated at build time from the options (as "tox -e genconfig" does).
config_generator_config_file = (
    '../../etc/nova-sev/nova-sev-config-generator.conf')
sample_config_basename = '_static/nova-sev'
master_doc = 'index'
exclude_patterns = []
html_theme = 'alabaster'
pygments_style = 'sphinx'
