#!/bin/sh
# Install ser2net (the Debian package; Debian 12 ships 4.3.x with YAML configuration) when missing.
#
# Used by the network-rack tests (tests/unit/test_network_rack.py) and usable on a rack host.
# Idempotent: does nothing when ser2net is already on PATH. Needs root (apt-get); prints the path of
# the ser2net executable on success, a reason on stderr and exit 1 when it cannot install.
set -eu

if command -v ser2net >/dev/null 2>&1; then
    command -v ser2net
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-ser2net: ser2net is missing and this is not root: run 'sudo apt-get install -y ser2net'" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-ser2net: ser2net is missing and there is no apt-get: install ser2net 4.x by hand" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The package's postinst may try to start the daemon through systemd; policy-rc.d stops that, so the
# tests' own ser2net (run in the foreground on loopback ports) is the only one.
if ! apt-cache show ser2net >/dev/null 2>&1; then
    apt-get update -q >&2
fi
apt-get install -y -q --no-install-recommends ser2net >&2
command -v ser2net || { echo "install-ser2net: apt-get finished, but ser2net is not on PATH" >&2; exit 1; }
