# nova-sev documentation build configuration (Sphinx).

project = 'nova-sev'
copyright = '2026, nova-sev developers'
extensions = [
    'oslo_config.sphinxext',
]
master_doc = 'index'
exclude_patterns = []
html_theme = 'alabaster'
pygments_style = 'sphinx'
