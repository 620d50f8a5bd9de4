# SPDX-License-Identifier: Apache-2.0
project = 'nova-postcopy'
copyright = 'nova-postcopy developers'
extensions = ['stevedore.sphinxext', 'oslo_config.sphinxext']
master_doc = 'index'
exclude_patterns = []
html_theme = 'alabaster'
