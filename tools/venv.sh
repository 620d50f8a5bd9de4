# SPDX-License-Identifier: Apache-2.0
# Sourced by tools/run-tests and tools/demo: a virtualenv in .venv with the
# project installed, on a fresh Debian 12 machine as on a developer's.
set -eu

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${NOVA_POSTCOPY_VENV:-$TOP/.venv}
# pbr reads the version from git tags; a copy without .git needs this.
export PBR_VERSION=${PBR_VERSION:-0.1.0}

source "$TOP/tools/debian-packages.sh"

if command -v dpkg-query >/dev/null; then
    need_debian_packages python3 python3-venv python3-pip git
fi

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat "$TOP/requirements.txt" "$TOP/test-requirements.txt" "$TOP/doc/requirements.txt" "$TOP/setup.cfg" | sha1sum | cut -c1-12)"
if [ ! -e "$stamp" ]; then
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    "$VENV/bin/pip" install -q -r "$TOP/requirements.txt" -r "$TOP/test-requirements.txt" \
        -r "$TOP/doc/requirements.txt"
    touch "$stamp"
fi
# A regular install, as on a compute host: the nova/virt/postcopy shim must
# land inside Nova's own package for compute_driver to find it, which an
# editable install does not do. Reinstalled every time (seconds), so that
# what runs is this tree.
if ! "$VENV/bin/pip" install -q --no-deps --force-reinstall "$TOP" \
        >"$VENV/install.log" 2>&1; then
    cat "$VENV/install.log" >&2
    exit 1
fi
export PATH="$VENV/bin:$PATH"

# libvirt-python and matplotlib, for the lab: the binding is built against
# the host's libvirt, whose client library talks to the lab's daemons.
lab_extras() {
    if command -v dpkg-query >/dev/null; then
        need_debian_packages libvirt-dev pkg-config gcc python3-dev
    fi
    if ! "$VENV/bin/python" -c 'import libvirt, matplotlib' 2>/dev/null; then
        "$VENV/bin/pip" install -q "libvirt-python==$(pkg-config --modversion libvirt)" matplotlib
    fi
}
