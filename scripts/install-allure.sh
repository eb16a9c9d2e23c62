#!/bin/sh
# Install the Allure Report 3 command line (npm package "allure", pinned) into <project>/.allure/.
#
# Why Allure 3: it needs only Node.js (which the project's machines have), where Allure 2 needs a Java
# runtime as well. Idempotent: nothing is fetched when the pinned version is already there, so once
# installed it works offline. Prints the path of the `allure` executable on success.
#
# Exit status: 0 installed; 3 the npm registry cannot be reached (no network: nothing else is wrong);
# 1 anything else (Node.js or npm missing, npm failed for another reason).
#
#   ALLURE_VERSION  the npm version to install (default below)
#   ALLURE_PREFIX   where to install (default: .allure beside this script's parent)
#   ALLURE_INSTALL_BOUND_S  how long the install may take (default 300 s)
set -eu

version="${ALLURE_VERSION:-3.18.0}"
here=$(cd "$(dirname "$0")" && pwd)
prefix="${ALLURE_PREFIX:-$here/../.allure}"
bin="$prefix/node_modules/.bin/allure"
manifest="$prefix/node_modules/allure/package.json"
bound="${ALLURE_INSTALL_BOUND_S:-300}"

for tool in node npm timeout; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-allure: $tool is missing: the report needs Node.js 20 or newer with npm, and coreutils (Debian: apt-get install -y nodejs npm)" >&2
        exit 1
    fi
done

installed() {
    [ -x "$bin" ] && [ -f "$manifest" ] && [ "$(node -p "require(process.argv[1]).version" "$manifest")" = "$version" ]
}

registry_unreachable() {
    ! timeout 30 npm ping --fetch-timeout=10000 --fetch-retries=0 >/dev/null 2>&1
}

if ! installed; then
    mkdir -p "$prefix"
    log="$prefix/npm-install.log"
    # --prefer-offline: what npm's cache holds is used without asking the registry. npm's own waits are not
    # bounded when the registry cannot be reached (it retries for ever), so `timeout` bounds the install.
    status=0
    timeout "$bound" npm install --prefix "$prefix" --prefer-offline --no-audit --no-fund --loglevel=error \
        "allure@$version" >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        cat "$log" >&2
        if registry_unreachable; then
            echo "install-allure: the npm registry cannot be reached (offline?) and npm's cache lacks allure $version" >&2
            exit 3
        fi
        if [ "$status" -eq 124 ]; then
            echo "install-allure: npm install allure@$version did not finish within $bound s" >&2
        else
            echo "install-allure: npm install allure@$version failed (see above)" >&2
        fi
        exit 1
    fi
    installed || { echo "install-allure: npm finished, but $bin is not allure $version" >&2; exit 1; }
fi
echo "$(cd "$(dirname "$bin")" && pwd)/allure"
