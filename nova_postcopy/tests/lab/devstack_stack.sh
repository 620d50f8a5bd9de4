#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs nova-postcopy's devstack plugin inside real devstack, as stack.sh
# runs it on a compute subnode: devstack's functions, stackrc and every lib
# stack.sh sources, from the snapshot of openstack/devstack in
# ../shared/third_party/devstack (copied to WORK: stack.sh writes into its
# own tree), a subnode's local.conf, the plugin found through devstack's own
# plugin functions, and the phases in stack.sh's order -- with neutron's
# nova.conf options written in the background across post-config, as
# stack.sh does (async_runfunc configure_neutron_nova).
#
# Stubbed, because they start services or change this host:
#   sudo             this runs as root already;
#   run_process, stop_process, restart_service   no systemd here;
#   configure_libvirt, install_libvirt           the lab's libvirt is used;
# and Nova 34 is installed from its sdist in develop mode into
# .venv-devstack (devstack's global venv), as devstack's setup_develop does
# from Nova's git tree, which this machine cannot clone; for the same reason
# the requirements project is its upper constraints and edit-constraints.
#
#   devstack_stack.sh WORK PHASE...     PHASE: stack:install,
#                                       stack:post-config, stack:extra, clean
#
# WORK receives devstack's tree, /opt/stack (opt-stack), /etc/nova (etc/nova)
# and qemu.conf; NOVA_POSTCOPY_LOCALRC adds lines to localrc,
# NOVA_POSTCOPY_LOCAL_CONF meta-sections to local.conf.
#
# NOVA_POSTCOPY_SLOW_BACKGROUND_INISET=1 stretches each ini write of the
# background job to half a second (read, wait, write back), as on a loaded
# host: the window in which a concurrent iniset is lost.
set -eu
TOP=$(cd "$(dirname "$0")/../../.." && pwd)
WORK=$1
shift
VENV=${NOVA_POSTCOPY_DEVSTACK_VENV:-$TOP/.venv-devstack}
SNAPSHOT=${NOVA_POSTCOPY_DEVSTACK:-$(cd "$TOP/.." && pwd)/shared/third_party/devstack}
NOVA_VERSION=34.0.0

if [ ! -e "$SNAPSHOT/stack.sh" ]; then
    echo "devstack_stack.sh: no devstack at $SNAPSHOT; the tests need the" \
         "snapshot of openstack/devstack described in" \
         "../shared/third_party/README.md (or NOVA_POSTCOPY_DEVSTACK)" >&2
    exit 2
fi
source "$TOP/tools/debian-packages.sh"
# devstack's local.conf merge is written in awk (gawk's extensions);
# its neutron library calls uuidgen (both installed by its install_prereqs).
need_debian_packages gawk uuid-runtime

prepare_venv() {
    local stamp="$VENV/.nova-$NOVA_VERSION"
    [ -e "$stamp" ] && return
    rm -rf "$VENV"
    # pbr would take this tree's PBR_VERSION for Nova's own version.
    local pip=(env -u PBR_VERSION "$VENV/bin/pip")
    python3 -m venv "$VENV"
    "${pip[@]}" install -q --upgrade pip
    "${pip[@]}" download -q --no-deps --no-binary :all: \
        "nova==$NOVA_VERSION" -d "$VENV/src"
    tar -xzf "$VENV/src/nova-$NOVA_VERSION.tar.gz" -C "$VENV/src"
    # devstack: setup_develop $NOVA_DIR; python3-libvirt from the distro.
    "${pip[@]}" install -q -e "$VENV/src/nova-$NOVA_VERSION" libvirt-python
    touch "$stamp"
}
prepare_venv

TOP_DIR=$WORK/devstack
if [ ! -e "$TOP_DIR/stack.sh" ]; then
    cp -a "$SNAPSHOT" "$TOP_DIR"
fi
# A compute subnode's local.conf, as devstack's multinode guide has it, with
# the plugin enabled from this tree.
cat > "$TOP_DIR/local.conf" <<CONF
[[local|localrc]]
DEST=$WORK/opt-stack
DATA_DIR=$WORK/data
SERVICE_HOST=10.250.0.1
MYSQL_HOST=\$SERVICE_HOST
RABBIT_HOST=\$SERVICE_HOST
GLANCE_HOSTPORT=\$SERVICE_HOST:9292
ENABLED_SERVICES=${ENABLED_SERVICES:-n-cpu,placement-client,q-agt,neutron}
# devstack's global venv, where Nova is installed (.venv-devstack).
GLOBAL_VENV=True
DEVSTACK_VENV=$VENV
NOVA_VNC_ENABLED=True
VIRT_DRIVER=libvirt
LIBVIRT_TYPE=qemu
ADMIN_PASSWORD=secret
# stack.sh runs as the stack user, which this root-run test has not made.
APACHE_USER=root
Q_AGENT=openvswitch
DATABASE_PASSWORD=secret
RABBIT_PASSWORD=secret
SERVICE_PASSWORD=secret
enable_plugin nova-postcopy file://$TOP
${NOVA_POSTCOPY_LOCALRC:-}
${NOVA_POSTCOPY_LOCAL_CONF:-}
CONF

cd "$TOP_DIR"
unset PYTHONPATH
# devstack is not written for -u, and stack.sh sets errexit only later.
set +eu
source "$TOP_DIR/functions"
source "$TOP_DIR/lib/stack"
GetDistro
rm -f "$TOP_DIR/.localrc.auto"
extract_localrc_section "$TOP_DIR/local.conf" "$TOP_DIR/localrc" \
    "$TOP_DIR/.localrc.auto"
source "$TOP_DIR/stackrc"
set -o errexit
mkdir -p "$DEST" "$DATA_DIR" "$DEST/logs"
async_init
for lib in database rpc_backend host apache tls infra libraries lvm \
        horizon keystone glance nova placement cinder swift neutron ldap \
        dstat atop tcpdump etcd3 os-vif; do
    source "$TOP_DIR/lib/$lib"
done

# The requirements project, which devstack clones: its upper constraints
# (here the release of nova 34.0.0 as tools/lab/cloud pins it) and its
# edit-constraints, which drops a package installed from source.
mkdir -p "$REQUIREMENTS_DIR/.venv/bin"
grep -v '^#' "$TOP/tools/lab/cloud-constraints.txt" \
    > "$REQUIREMENTS_DIR/upper-constraints.txt"
cat > "$REQUIREMENTS_DIR/.venv/bin/edit-constraints" <<'TOOL'
#!/bin/sh
# edit-constraints FILE -- NAME: remove NAME's pin from FILE.
sed -i "/^$3==/Id" "$1"
TOOL
chmod +x "$REQUIREMENTS_DIR/.venv/bin/edit-constraints"

# -- stubs: what starts services or changes the host ------------------------
function sudo { "$@"; }
function run_process { echo "run_process $1 (stubbed)"; }
function stop_process { echo "stop_process $1 (stubbed)"; }
function restart_service { echo "restart_service $1 (stubbed)"; }
function configure_libvirt { echo "configure_libvirt (stubbed)"; }
function install_libvirt { echo "install_libvirt (stubbed)"; }

# -- where this run writes ---------------------------------------------------
NOVA_CONF_DIR=$WORK/etc/nova
NOVA_CONF=$NOVA_CONF_DIR/nova.conf
NOVA_CPU_CONF=$NOVA_CONF_DIR/nova-cpu.conf
NOVA_API_PASTE_INI=$NOVA_CONF_DIR/api-paste.ini
NOVA_BIN_DIR=$VENV/bin
mkdir -p "$NOVA_CONF_DIR"
# qemu.conf as devstack's configure_libvirt leaves it with neutron enabled:
# its explicit cgroup_device_acl, taken from devstack's own text.
QEMU_CONF=$WORK/qemu.conf
if [ ! -e "$QEMU_CONF" ]; then
    sed -n '/^cgroup_device_acl = \[/,/^\]/p' \
        "$TOP_DIR/lib/nova_plugins/functions-libvirt" > "$QEMU_CONF"
    grep -q cgroup_device_acl "$QEMU_CONF" \
        || die $LINENO "no cgroup_device_acl in devstack's functions-libvirt"
fi

# The plugin, as stack.sh finds an enabled one: its settings sourced by
# devstack's load_plugin_settings, its phases run by run_plugins (stack.sh's
# run_phase would also run devstack's extras.d, e.g. tempest's install).
GITDIR[nova-postcopy]=$TOP
DEVSTACK_PLUGINS=nova-postcopy
NOVA_POSTCOPY_DIR=$TOP
load_plugin_settings

if [[ -n "${NOVA_POSTCOPY_SLOW_BACKGROUND_INISET:-}" ]]; then
    eval "function _real_iniset $(declare -f iniset | tail -n +2)"
    function configure_neutron_nova {
        function iniset {
            [[ "$1" == -sudo ]] && shift
            local file=$1 saved
            saved=$(mktemp)
            cp "$file" "$saved"
            sleep 0.5
            _real_iniset "$saved" "${@:2}"
            cat "$saved" > "$file"
            rm -f "$saved"
        }
        create_nova_conf_neutron $NOVA_CONF
    }
fi

for phase in "$@"; do
    case "$phase" in
        stack:install)
            run_plugins stack install
            ;;
        stack:post-config)
            # stack.sh: init_nova's nova.conf, then neutron's options in the
            # background across the plugins' post-config.
            create_nova_conf
            configure_nova_hypervisor
            async_runfunc configure_neutron_nova
            run_plugins stack post-config
            merge_config_group "$TOP_DIR/local.conf" post-config
            async_wait configure_neutron_nova
            # stack.sh's start_nova: nova-cpu.conf is made from nova.conf.
            start_nova_compute
            ;;
        stack:extra)
            run_plugins stack extra
            ;;
        clean)
            run_plugins clean
            ;;
        *)
            die $LINENO "unknown phase $phase"
            ;;
    esac
done
