#!/bin/sh
# Install Debian's chromium (headless browser for tests/unit/test_report_html.py) when it is missing.
# Idempotent: does nothing when a chromium binary is on PATH. Needs root (or sudo) and apt-get.
# Prints the path of the browser on success.
#
# Exit status: 0 found or installed; 3 the package mirror cannot be reached (no network: nothing else is
# wrong); 1 anything else (no apt-get, no root, the package is not there).
set -eu

find_browser() {
    command -v chromium || command -v chromium-browser || true
}

browser=$(find_browser)
if [ -n "$browser" ]; then
    echo "$browser"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: no chromium and no apt-get: install a Chromium browser by hand" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
else
    echo "install-chromium: chromium is missing; run as root: apt-get install -y chromium" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
offline() {
    grep -Eq 'Temporary failure resolving|Could not resolve|Failed to fetch|Network is unreachable|Connection timed out|Unable to connect' "$log"
}
if ! { $as_root apt-get update -q && $as_root apt-get install -y -q --no-install-recommends chromium; } >"$log" 2>&1; then
    cat "$log" >&2
    if offline; then
        echo "install-chromium: the package mirror cannot be reached (offline?): chromium is not installed" >&2
        exit 3
    fi
    echo "install-chromium: apt-get could not install chromium (see above)" >&2
    exit 1
fi
browser=$(find_browser)
if [ -z "$browser" ]; then
    cat "$log" >&2
    echo "install-chromium: apt-get installed chromium, but no chromium binary is on PATH" >&2
    exit 1
fi
echo "$browser"
