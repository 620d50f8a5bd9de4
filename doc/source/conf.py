# SPDX-License-Identifier: Apache-2.0
project = 'nova-postcopy'
copyright = 'nova-postcopy developers'
extensions = ['openstackdocstheme', 'stevedore.sphinxext',
              'oslo_config.sphinxext']
master_doc = 'index'
exclude_patterns = []
html_theme = 'openstackdocs'
# openstackdocstheme
openstackdocs_repo_name = 'openstack/nova-postcopy'
openstackdocs_bug_project = 'nova-postcopy'
openstackdocs_bug_tag = 'doc'
openstackdocs_auto_name = False
