#!/bin/bash
# nova-postcopy devstack plugin: devstack calls it as
# "source plugin.sh <mode> [phase]" at each phase of stack.sh, unstack.sh
# and clean.sh.

_XTRACE_NOVA_POSTCOPY=$(set +o | grep xtrace)
set -o xtrace

source "$NOVA_POSTCOPY_DIR/devstack/lib/nova-postcopy"

if is_service_enabled n-cpu; then
    case "$1:${2:-}" in
        stack:install)
            echo_summary "Installing nova-postcopy"
            install_nova_postcopy
            ;;
        stack:post-config)
            echo_summary "Configuring nova-postcopy"
            configure_nova_postcopy
            ;;
        stack:extra)
            echo_summary "Checking this host for post-copy"
            check_nova_postcopy
            ;;
        clean:*)
            cleanup_nova_postcopy
            ;;
    esac
fi

$_XTRACE_NOVA_POSTCOPY
