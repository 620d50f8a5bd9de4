# SPDX-License-Identifier: Apache-2.0
"""The lab cloud's configuration files, one function per service.

Kept apart from the process handling in ``cloudctl.py`` so that what an
operator would put in nova.conf for our driver reads in one place
(``compute_conf``). Every service listens on loopback only; the computes
reach their lab host's libvirtd over its unix socket, and the migration
itself crosses the lab's veth between the two hosts' namespaces.
"""

import lab_hosts

PORTS = {'mariadb': 13306, 'rabbitmq': 5672, 'keystone': 5000,
         'placement': 8778, 'glance': 9292, 'neutron': 9696,
         'nova-api': 8774}
# Lab-only secrets: every service listens on 127.0.0.1 of this machine.
PASSWORD = 'lab-secret'
ADMIN_PASSWORD = 'lab-admin'
MEMBER = ('demo', 'lab-demo')
KEYSTONE = 'http://127.0.0.1:%d/v3' % PORTS['keystone']
REGION = 'RegionOne'
RABBIT = 'rabbit://guest:guest@127.0.0.1:%d/' % PORTS['rabbitmq']


def database(name):
    return 'mysql+pymysql://cloud:%s@127.0.0.1:%d/%s?charset=utf8' % (
        PASSWORD, PORTS['mariadb'], name)


def service_auth(section, user):
    """A [section] that authenticates as the service user ``user``."""
    return """
[%s]
auth_type = password
auth_url = %s
www_authenticate_uri = %s
project_domain_name = Default
user_domain_name = Default
project_name = service
username = %s
password = %s
region_name = %s
""" % (section, KEYSTONE, KEYSTONE, user, PASSWORD, REGION)


def keystone_conf(state):
    return """
[DEFAULT]
debug = False
[database]
connection = %(db)s
[token]
provider = fernet
[fernet_tokens]
key_repository = %(etc)s/fernet-keys
[fernet_receipts]
key_repository = %(etc)s/fernet-keys
[credential]
key_repository = %(etc)s/credential-keys
""" % dict(db=database('keystone'), etc='%s/etc/keystone' % state)


def placement_conf(state):
    return """
[DEFAULT]
debug = False
[api]
auth_strategy = keystone
[placement_database]
connection = %s
""" % database('placement') + service_auth('keystone_authtoken',
                                           'placement')


def glance_conf(state):
    return """
[DEFAULT]
debug = False
enabled_backends = file:file
[database]
connection = %(db)s
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = %(state)s/images
[os_glance_staging_store]
filesystem_store_datadir = %(state)s/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = %(state)s/glance/tasks
[paste_deploy]
flavor = keystone
[oslo_concurrency]
lock_path = %(state)s/lock/glance
""" % dict(db=database('glance'), state=state) + service_auth(
        'keystone_authtoken', 'glance')


def neutron_conf(state):
    # ML2 with no agents and no mechanism driver: servers boot with
    # --nic none, but Nova asks neutron's API on every live migration.
    # Without the port_forwarding plugin, neutron 29 fails every port
    # query ('Port' has no attribute 'port_forwardings').
    return """
[DEFAULT]
debug = False
core_plugin = ml2
service_plugins = router,port_forwarding
auth_strategy = keystone
transport_url = %(rabbit)s
api_paste_config = %(state)s/etc/neutron/api-paste.ini
notify_nova_on_port_status_changes = False
notify_nova_on_port_data_changes = False
[database]
connection = %(db)s
[oslo_concurrency]
lock_path = %(state)s/lock/neutron
""" % dict(db=database('neutron'), state=state, rabbit=RABBIT) + \
        service_auth('keystone_authtoken', 'neutron') + \
        service_auth('nova', 'nova')


ML2_CONF = """
[ml2]
type_drivers = flat
tenant_network_types =
mechanism_drivers =
extension_drivers =
[ml2_type_flat]
flat_networks = *
"""


def nova_conf(state, databases=True):
    """nova-api's, -conductor's and -scheduler's nova.conf, or the computes'.

    The computes get no database (``databases=False``): they reach it
    through the conductor, as on a real cloud, where Nova refuses DB access
    from nova-compute.
    """
    db = """
[api_database]
connection = %s
[database]
connection = %s
""" % (database('nova_api'), database('nova'))
    return """
[DEFAULT]
debug = False
transport_url = %(rabbit)s
my_ip = 127.0.0.1
state_path = %(state)s/nova
%(db)s
[wsgi]
api_paste_config = %(state)s/etc/nova/api-paste.ini
[oslo_concurrency]
lock_path = %(state)s/lock/nova
[scheduler]
discover_hosts_in_cells_interval = 10
[vnc]
enabled = False
[oslo_messaging_notifications]
driver = noop
""" % dict(rabbit=RABBIT, state=state, db=db if databases else '') + ''.join(
        service_auth(section, 'nova') for section in (
            'keystone_authtoken', 'placement', 'neutron', 'service_user',
            'glance')) + """
[service_user]
send_service_user_token = True
"""


def compute_conf(state, lab, venv, host, postcopy_conf=''):
    """One compute host's own settings, read after nova.conf.

    An operator's nova.conf for our driver: the driver, post-copy permitted,
    the migration on the host's own address, and shared instances.
    """
    helper = '%s/bin/privsep-helper' % venv
    return """
[DEFAULT]
host = host%(host)s
max_concurrent_live_migrations = 2
compute_driver = postcopy.PostcopyLibvirtDriver
instances_path = %(lab)s/instances
state_path = %(state)s/compute/host%(host)s
[libvirt]
connection_uri = %(uri)s
virt_type = qemu
live_migration_inbound_addr = %(addr)s
live_migration_permit_post_copy = True
live_migration_bandwidth = 32
# The lab's QEMUs know machine types up to 10.0 (trixie) or 11.1 (forky).
hw_machine_type = x86_64=pc-i440fx-10.0
[workarounds]
# The lab's guest is a Debian kernel booted directly; Nova's inspection
# takes the kernel image for a GPT disk and refuses it.
disable_deep_image_inspection = True
[nova_sys_admin]
helper_command = %(helper)s
[privsep_osbrick]
helper_command = %(helper)s
[vif_plug_ovs_privileged]
helper_command = %(helper)s
[vif_plug_linux_bridge_privileged]
helper_command = %(helper)s
[nova_postcopy_privileged]
helper_command = %(helper)s
[postcopy]
# The lab's short budget: a migration that post-copy may not rescue ends
# within a minute (the demo's first run, the tests' aborts).
precopy_timeout_max = 45
# A slow background push keeps post-copy running long enough for a test to
# cut the link in it; pages the guest touches still come on demand.
postcopy_bandwidth_mibs = 4
%(postcopy)s
""" % dict(host=host, lab=lab, state=state, addr=lab_hosts.ADDR[host],
           helper=helper, postcopy=postcopy_conf, uri=(
               'qemu+unix:///system?socket=%s/hosts/%s/run/libvirt-sock'
               % (lab, host)))


def openrc(user):
    name, password = (('admin', ADMIN_PASSWORD) if user == 'admin'
                      else MEMBER)
    values = {
        'OS_AUTH_URL': KEYSTONE, 'OS_IDENTITY_API_VERSION': '3',
        'OS_USERNAME': name, 'OS_PASSWORD': password,
        'OS_PROJECT_NAME': name, 'OS_USER_DOMAIN_NAME': 'Default',
        'OS_PROJECT_DOMAIN_NAME': 'Default', 'OS_REGION_NAME': REGION,
        'OS_INTERFACE': 'public',
    }
    return ''.join('export %s=%s\n' % item for item in sorted(values.items()))


def clouds_yaml():
    text = 'clouds:\n'
    users = (('lab-admin', ('admin', ADMIN_PASSWORD)),
             ('lab-member', MEMBER))
    for cloud, (name, password) in users:
        text += """  %s:
    region_name: %s
    identity_api_version: 3
    auth:
      auth_url: %s
      username: %s
      password: %s
      project_name: %s
      user_domain_name: Default
      project_domain_name: Default
""" % (cloud, REGION, KEYSTONE, name, password, name)
    return text
