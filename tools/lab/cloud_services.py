# SPDX-License-Identifier: Apache-2.0
"""The lab cloud's services, each set up once and started in order.

Debian's MariaDB and RabbitMQ; keystone, placement, glance, neutron-server
and Nova's services of the release that ships nova 34.0.0, from PyPI, in a
virtualenv under the state directory (``cloud-constraints.txt`` pins what
was proven); nova-postcopy installed next to Nova the way an operator
installs it. The API services run under gunicorn, as WSGI applications.
"""

import os
import shutil
import subprocess
import sys
import time

import cloud_conf as conf
import cloud_process as proc
from cloud_process import etc
from cloud_process import path
from cloud_process import run
from cloud_process import say
from cloud_process import start
from cloud_process import venv_bin
from cloud_process import write
from cloud_process import wsgi

HERE, LAB, STATE, TOP, VENV = (proc.HERE, proc.LAB, proc.STATE, proc.TOP,
                               proc.VENV)

CONSTRAINTS = os.path.join(HERE, 'cloud-constraints.txt')
PACKAGES = ('mariadb-server', 'rabbitmq-server', 'qemu-utils')
DATABASES = ('keystone', 'placement', 'glance', 'neutron', 'nova_api',
             'nova', 'nova_cell0')
COMPUTES = ('A', 'B')


# -- installation ------------------------------------------------------------

def install():
    missing = [pkg for pkg in PACKAGES if subprocess.run(
        ['dpkg-query', '-W', '-f=${Status}', pkg], capture_output=True,
        text=True).stdout.find('ok installed') < 0]
    os.makedirs(path('log'), exist_ok=True)
    if missing:
        say('installing Debian packages: %s' % ' '.join(missing))
        run(['apt-get', 'update', '-qq'], 'install')
        run(['apt-get', 'install', '-y', '-q', '--no-install-recommends']
            + missing, 'install',
            env={'DEBIAN_FRONTEND': 'noninteractive'})
    with open(CONSTRAINTS) as handle:
        wanted = handle.read()
    stamp = path('venv', '.installed')
    if not os.path.exists(venv_bin('python')):
        say('creating the virtualenv in %s' % VENV)
        run([sys.executable, '-m', 'venv', VENV], 'install')
    if not os.path.exists(stamp) or open(stamp).read() != wanted:
        say('installing the OpenStack services of nova 34.0.0\'s release '
            '(once; a few minutes)')
        run([venv_bin('pip'), 'install', '-q', '--upgrade', 'pip'], 'install')
        run([venv_bin('pip'), 'install', '-q', '-c', CONSTRAINTS,
             'nova', 'keystone', 'glance', 'neutron', 'openstack-placement',
             'python-openstackclient', 'PyMySQL', 'gunicorn',
             'libvirt-python'], 'install')
        write(stamp, wanted)
    # Our driver as an operator installs it: a regular install next to
    # Nova (the nova/virt/postcopy shim lands in Nova's package). Every
    # `up`, so that what runs is this tree.
    run([venv_bin('pip'), 'install', '-q', '--no-deps', '--force-reinstall',
         TOP], 'install', env={'PBR_VERSION': os.environ.get(
             'PBR_VERSION', '0.1.0')})


# -- the services ------------------------------------------------------------

def mariadb():
    datadir = path('mysql')
    if not os.path.exists(os.path.join(datadir, 'mysql')):
        os.makedirs(datadir, exist_ok=True)
        run(['mariadb-install-db', '--no-defaults', '--user=root',
             '--datadir=%s' % datadir, '--auth-root-authentication-method='
             'socket'], 'mariadb')
    start('mariadb', ['/usr/sbin/mariadbd', '--no-defaults', '--user=root',
                      '--datadir=%s' % datadir,
                      '--socket=%s' % path('run', 'mysqld.sock'),
                      '--bind-address=127.0.0.1',
                      '--port=%d' % conf.PORTS['mariadb'],
                      '--pid-file=%s' % path('run', 'mariadbd.pid'),
                      '--max-connections=500', '--innodb-buffer-pool-size=64M',
                      '--skip-name-resolve'],
          port=conf.PORTS['mariadb'])
    sql = ''.join('CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8;' % db
                  for db in DATABASES)
    sql += ("CREATE USER IF NOT EXISTS 'cloud'@'127.0.0.1' IDENTIFIED BY '%s';"
            "GRANT ALL PRIVILEGES ON *.* TO 'cloud'@'127.0.0.1';"
            % conf.PASSWORD)
    run(['mariadb', '--no-defaults', '-S', path('run', 'mysqld.sock'),
         '-u', 'root', '-e', sql], 'mariadb')


def rabbitmq():
    home = path('rabbitmq')
    os.makedirs(home, exist_ok=True)
    start('rabbitmq', ['/usr/lib/rabbitmq/bin/rabbitmq-server'],
          port=conf.PORTS['rabbitmq'], env={
              'HOME': home, 'RABBITMQ_NODENAME': 'rabbit@localhost',
              'RABBITMQ_NODE_IP_ADDRESS': '127.0.0.1',
              'RABBITMQ_NODE_PORT': str(conf.PORTS['rabbitmq']),
              'RABBITMQ_MNESIA_BASE': os.path.join(home, 'mnesia'),
              'RABBITMQ_LOG_BASE': os.path.join(home, 'log'),
              'RABBITMQ_PID_FILE': os.path.join(home, 'rabbit.pid'),
              'RABBITMQ_ENABLED_PLUGINS_FILE': os.path.join(home, 'plugins'),
              'ERL_EPMD_ADDRESS': '127.0.0.1'})


def once(step, *commands):
    """Run the set-up commands of ``step`` unless they ran to the end."""
    stamp = path('done', step)
    if os.path.exists(stamp):
        return
    for argv in commands:
        run(argv, step)
    write(stamp, time.strftime('%F %T\n'))


def keystone():
    write(etc('keystone', 'keystone.conf'), conf.keystone_conf(STATE))
    cfg = ['--config-file', etc('keystone', 'keystone.conf')]
    once('keystone', [venv_bin('keystone-manage')] + cfg + ['db_sync'],
         [venv_bin('keystone-manage')] + cfg + [
             'fernet_setup', '--keystone-user', 'root',
             '--keystone-group', 'root'],
         [venv_bin('keystone-manage')] + cfg + [
             'credential_setup', '--keystone-user', 'root',
             '--keystone-group', 'root'],
         [venv_bin('keystone-manage')] + cfg + [
             'bootstrap', '--bootstrap-password', conf.ADMIN_PASSWORD,
             '--bootstrap-admin-url', conf.KEYSTONE,
             '--bootstrap-internal-url', conf.KEYSTONE,
             '--bootstrap-public-url', conf.KEYSTONE,
             '--bootstrap-region-id', conf.REGION])
    wsgi('keystone', 'keystone.wsgi.api:application', conf.PORTS['keystone'],
         {'OS_KEYSTONE_CONFIG_DIR': path('etc', 'keystone')})


def bootstrap(step):
    """Users, services, endpoints (identity) or flavors, images (resources)."""
    run([venv_bin('python'), os.path.join(HERE, 'cloud_bootstrap.py'),
         step, LAB], 'bootstrap-%s' % step, env=dict(
             line.split(' ', 1)[1].split('=', 1)
             for line in conf.openrc('admin').splitlines()))


def placement():
    write(etc('placement', 'placement.conf'), conf.placement_conf(STATE))
    once('placement', [venv_bin('placement-manage'), '--config-file',
                       etc('placement', 'placement.conf'), 'db', 'sync'])
    wsgi('placement', 'placement.wsgi.api:application',
         conf.PORTS['placement'],
         {'OS_PLACEMENT_CONFIG_DIR': path('etc', 'placement')})


def glance():
    write(etc('glance', 'glance-api.conf'), conf.glance_conf(STATE))
    shutil.copy(os.path.join(VENV, 'etc', 'glance', 'glance-api-paste.ini'),
                etc('glance', 'glance-api-paste.ini'))
    for store in ('images', 'glance/staging', 'glance/tasks'):
        os.makedirs(path(store), exist_ok=True)
    once('glance', [venv_bin('glance-manage'), '--config-dir',
                    path('etc', 'glance'), 'db_sync'])
    wsgi('glance', 'glance.wsgi.api:application', conf.PORTS['glance'],
         {'OS_GLANCE_CONFIG_DIR': path('etc', 'glance')})


def neutron():
    write(etc('neutron', 'neutron.conf'), conf.neutron_conf(STATE))
    write(etc('neutron', 'ml2_conf.ini'), conf.ML2_CONF)
    shutil.copy(os.path.join(VENV, 'etc', 'neutron', 'api-paste.ini'),
                etc('neutron', 'api-paste.ini'))
    once('neutron', [venv_bin('neutron-db-manage'), '--config-file',
                     etc('neutron', 'neutron.conf'), '--config-file',
                     etc('neutron', 'ml2_conf.ini'), 'upgrade', 'head'])
    wsgi('neutron', 'neutron.wsgi.api:application', conf.PORTS['neutron'],
         {'OS_NEUTRON_CONFIG_DIR': path('etc', 'neutron'),
          'OS_NEUTRON_CONFIG_FILES': 'neutron.conf;ml2_conf.ini'},
         hooks=NEUTRON_HOOKS)


# neutron 29's port queries read Port.port_forwardings, a backref that
# exists only once SQLAlchemy has configured its mappers; with no agent and
# no mechanism driver, nothing has queried before Nova's first
# GET /v2.0/ports, which then fails ("'Port' has no attribute
# 'port_forwardings'"). Configure them when the worker has loaded the app.
NEUTRON_HOOKS = """

def post_worker_init(worker):
    from sqlalchemy import orm
    orm.configure_mappers()
"""


def nova_manage(*args):
    return [venv_bin('nova-manage'), '--config-file',
            etc('nova', 'nova.conf')] + list(args)


def nova():
    write(etc('nova', 'nova.conf'), conf.nova_conf(STATE))
    shutil.copy(os.path.join(VENV, 'etc', 'nova', 'api-paste.ini'),
                etc('nova', 'api-paste.ini'))
    once('nova', forget_old_instances(), nova_manage('api_db', 'sync'),
         nova_manage('cell_v2', 'map_cell0', '--database_connection',
                     conf.database('nova_cell0')),
         nova_manage('cell_v2', 'create_cell', '--name', 'cell1'),
         nova_manage('db', 'sync'))
    wsgi('nova-api', 'nova.wsgi.osapi_compute:application',
         conf.PORTS['nova-api'], {'OS_NOVA_CONFIG_DIR': path('etc', 'nova')})
    for service in ('conductor', 'scheduler'):
        start('nova-%s' % service, [venv_bin('nova-%s' % service),
                                    '--config-file', etc('nova', 'nova.conf')])


# Run when Nova's database is created: Nova instances the lab's libvirtds
# still define belong to a cloud whose database is gone, and a new
# nova-compute refuses to start next to them ("My hypervisor has existing
# instances, but I appear to be a new service").
FORGET = """
import libvirt, sys
for sock in sys.argv[1:]:
    conn = libvirt.open('qemu+unix:///system?socket=' + sock)
    for dom in conn.listAllDomains():
        if dom.name().startswith('instance-'):
            if dom.isActive():
                dom.destroy()
            dom.undefine()
            print('forgot', dom.name(), 'on', sock)
"""


def forget_old_instances():
    return [venv_bin('python'), '-c', FORGET] + [
        os.path.join(LAB, 'hosts', host, 'run', 'libvirt-sock')
        for host in COMPUTES]


def compute_config(host):
    return etc('nova', 'compute-host%s.conf' % host)


def computes():
    extra = ''
    if os.path.exists(etc('nova', 'postcopy.conf')):
        with open(etc('nova', 'postcopy.conf')) as handle:
            extra = handle.read()
    write(etc('nova', 'nova-cpu.conf'), conf.nova_conf(STATE, False))
    for host in COMPUTES:
        os.makedirs(path('compute', 'host%s' % host), exist_ok=True)
        write(compute_config(host), conf.compute_conf(
            STATE, LAB, VENV, host, extra))
        start('nova-compute-host%s' % host, [
            venv_bin('nova-compute'), '--config-file',
            etc('nova', 'nova-cpu.conf'), '--config-file',
            compute_config(host)])
    run(nova_manage('cell_v2', 'discover_hosts'), 'nova')
