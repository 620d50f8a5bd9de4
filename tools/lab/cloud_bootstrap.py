# SPDX-License-Identifier: Apache-2.0
"""What the lab cloud's users need, made through the public APIs.

``identity``: the service project and users, the member user, the catalog.
``resources``: both computes registered, the lab's guest in glance (its
kernel and initramfs, and one root image per guest shape: the dirtier reads
its working set and rate from the kernel command line, which Nova takes
from the image's ``os_command_line``), and the flavors. Idempotent: what
exists is left alone. Runs in the cloud's virtualenv (openstacksdk), with
the admin's ``OS_*`` variables.
"""

import os
import sys
import time

import openstack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cloud_conf as conf  # noqa: E402

SERVICE_USERS = ('nova', 'placement', 'glance', 'neutron')
CATALOG = (('keystone', 'identity', conf.KEYSTONE),
           ('placement', 'placement', 'http://127.0.0.1:%d'
            % conf.PORTS['placement']),
           ('glance', 'image', 'http://127.0.0.1:%d' % conf.PORTS['glance']),
           ('neutron', 'network', 'http://127.0.0.1:%d'
            % conf.PORTS['neutron']),
           ('nova', 'compute', 'http://127.0.0.1:%d/v2.1'
            % conf.PORTS['nova-api']))
# name: (working set MiB, dirty rate MiB/s, 0 = as fast as TCG goes)
SHAPES = {'lab-busy': (256, 0), 'lab-quiet': (64, 2),
          'lab-steady': (128, 24), 'lab-slow': (384, 8)}
# name: (RAM MiB, extra specs)
FLAVORS = {'lab.512': (512, {}),
           'lab.512.required': (512, {'postcopy:mode': 'required'}),
           'lab.512.forbidden': (512, {'postcopy:mode': 'forbidden'})}
WAIT_S = 180


def cmdline(wss_mib, dirty_mibs, pattern='sequential'):
    return ('console=ttyS0 quiet panic=-1 dirty_mb=%d dirty_rate=%d '
            'dirty_pattern=%s' % (wss_mib, dirty_mibs, pattern))


def identity(cloud):
    ident = cloud.identity
    service = (ident.find_project('service')
               or ident.create_project(name='service', domain_id='default'))
    demo = (ident.find_project(conf.MEMBER[0])
            or ident.create_project(name=conf.MEMBER[0],
                                    domain_id='default'))
    roles = {}
    for name in ('admin', 'member', 'service'):
        roles[name] = (ident.find_role(name)
                       or ident.create_role(name=name))
    for name in SERVICE_USERS:
        user = (ident.find_user(name)
                or ident.create_user(name=name, password=conf.PASSWORD,
                                     domain_id='default'))
        for role in ('admin', 'service'):
            ident.assign_project_role_to_user(service, user, roles[role])
    member = (ident.find_user(conf.MEMBER[0])
              or ident.create_user(name=conf.MEMBER[0],
                                   password=conf.MEMBER[1],
                                   domain_id='default'))
    ident.assign_project_role_to_user(demo, member, roles['member'])
    for name, kind, url in CATALOG:
        svc = ident.find_service(name) or ident.create_service(
            name=name, type=kind)
        have = {e.interface for e in ident.endpoints(service_id=svc.id)}
        for interface in ('public', 'internal'):
            if interface not in have:
                ident.create_endpoint(service_id=svc.id, interface=interface,
                                      url=url, region_id=conf.REGION)


def wait_for_computes(cloud):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        up = {s.host for s in cloud.compute.services(binary='nova-compute')
              if s.state == 'up' and s.status == 'enabled'}
        hypervisors = {h.name for h in cloud.compute.hypervisors()}
        if up >= {'hostA', 'hostB'} and len(hypervisors) >= 2:
            return
        time.sleep(2)
    sys.exit('the computes hostA and hostB did not both come up within %d s '
             '(services up: %s); see the nova-compute-host*.log'
             % (WAIT_S, sorted(up)))


def image(cloud, name, path, disk_format, **properties):
    found = cloud.image.find_image(name)
    if found:
        return found
    return cloud.create_image(
        name, filename=path, disk_format=disk_format,
        container_format=disk_format, visibility='public', wait=True,
        meta=properties)


def resources(cloud, lab):
    wait_for_computes(cloud)
    guest = os.path.join(lab, 'guest')
    kernel = image(cloud, 'lab-kernel', os.path.join(guest, 'vmlinuz'),
                   'aki')
    ramdisk = image(cloud, 'lab-initramfs',
                    os.path.join(guest, 'initramfs.cpio.gz'), 'ari')
    root = os.path.join(lab, 'cloud', 'root.img')
    if not os.path.exists(root):
        with open(root, 'wb') as handle:
            handle.truncate(1024 * 1024)
    for name, (wss, rate) in SHAPES.items():
        image(cloud, name, root, 'ami', kernel_id=kernel.id,
              ramdisk_id=ramdisk.id, os_command_line=cmdline(wss, rate))
    for name, (ram, specs) in FLAVORS.items():
        flavor = cloud.compute.find_flavor(name)
        if not flavor:
            flavor = cloud.compute.create_flavor(
                name=name, ram=ram, vcpus=1, disk=1, is_public=True)
        if specs:
            cloud.compute.create_flavor_extra_specs(flavor, specs)


def main(argv):
    step, lab = argv[1], argv[2]
    cloud = openstack.connect()
    {'identity': identity, 'resources': lambda c: resources(c, lab)}[step](
        cloud)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
