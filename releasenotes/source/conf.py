# nova-sev release notes build configuration (Sphinx + reno).

project = 'nova-sev Release Notes'
copyright = '2026, nova-sev developers'
extensions = ['reno.sphinxext']
master_doc = 'index'
html_theme = 'alabaster'
