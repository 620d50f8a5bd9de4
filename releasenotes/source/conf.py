# SPDX-License-Identifier: Apache-2.0
project = 'nova-postcopy Release Notes'
copyright = 'nova-postcopy developers'
extensions = ['openstackdocstheme', 'reno.sphinxext']
master_doc = 'index'
exclude_patterns = []
html_theme = 'openstackdocs'
openstackdocs_repo_name = 'openstack/nova-postcopy'
openstackdocs_bug_project = 'nova-postcopy'
openstackdocs_bug_tag = 'releasenotes'
openstackdocs_auto_name = False
