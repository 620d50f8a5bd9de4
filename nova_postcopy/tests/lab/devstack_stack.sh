#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs phases of nova-postcopy's devstack plugin as stack.sh would, on this
# machine: Nova 34 installed from its source tree in develop mode into a
# venv of its own (as devstack installs it from git), libvirt-python in it,
# and the few devstack helpers a plugin calls. devstack itself comes from
# opendev.org, which this machine cannot reach; its helpers here do what
# devstack's do for these calls.
#
#   devstack_stack.sh WORK PHASE...     e.g. stack:install stack:post-config
#
# WORK receives nova.conf; the venv is $TOP/.venv-devstack (made once).
set -eu
TOP=$(cd "$(dirname "$0")/../../.." && pwd)
WORK=$1
shift
VENV=${NOVA_POSTCOPY_DEVSTACK_VENV:-$TOP/.venv-devstack}
NOVA_VERSION=34.0.0

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

# -- devstack's helpers, for the calls the plugin makes ---------------------
function define_plugin { :; }
function is_service_enabled {
    local service
    for service in "$@"; do
        [[ ",$ENABLED_SERVICES," == *",$service,"* ]] && return 0
    done
    return 1
}
function trueorfalse {
    local default=$1 value=${!2:-}
    case "$value" in
        1|[yY]|[yY]es|YES|[tT]rue|TRUE|on|ON) echo True ;;
        0|[nN]|[nN]o|NO|[fF]alse|FALSE|off|OFF) echo False ;;
        *) echo "$default" ;;
    esac
}
function iniset {
    "$VENV/bin/python" - "$@" <<'PY'
import configparser, sys
path, section, option, value = sys.argv[1:5]
parser = configparser.RawConfigParser(default_section='\x00')
parser.optionxform = str
parser.read(path)
if section != 'DEFAULT' and not parser.has_section(section):
    parser.add_section(section)
if section == 'DEFAULT' and 'DEFAULT' not in parser:
    parser['DEFAULT'] = {}
parser[section][option] = value
with open(path, 'w') as handle:
    parser.write(handle)
PY
}
function setup_develop {
    "$VENV/bin/pip" install -q --no-deps -e "$1"
}
function die {
    shift
    echo "stack.sh: $*" >&2
    exit 1
}
function echo_summary { echo ">>> $*"; }
function sudo { "$@"; }

prepare_venv
DEST=$WORK/opt-stack
NOVA_CONF=$WORK/nova.conf
NOVA_BIN_DIR=$VENV/bin
ENABLED_SERVICES=${ENABLED_SERVICES:-n-cpu,placement-client}
NOVA_POSTCOPY_DIR=$TOP
mkdir -p "$DEST"
touch "$NOVA_CONF"
# stack.sh runs from devstack's directory. From this tree's top the
# nova/ directory there would shadow Nova's develop-mode import hook.
cd "$WORK"
unset PYTHONPATH
source "$TOP/devstack/settings"
for phase in "$@"; do
    source "$TOP/devstack/plugin.sh" "${phase%%:*}" "${phase#*:}"
done
