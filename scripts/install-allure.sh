#!/bin/sh
# Install the Allure Report 3 command line (npm package "allure", pinned) into <project>/.allure/.
#
# Why Allure 3: it needs only Node.js (which the project's machines have), where Allure 2 needs a Java
# runtime as well. Idempotent: nothing is fetched when the pinned version is already there.
# Prints the path of the `allure` executable on success.
#
#   ALLURE_VERSION  the npm version to install (default below)
#   ALLURE_PREFIX   where to install (default: .allure beside this script's parent)
set -eu

version="${ALLURE_VERSION:-3.18.0}"
here=$(cd "$(dirname "$0")" && pwd)
prefix="${ALLURE_PREFIX:-$here/../.allure}"
bin="$prefix/node_modules/.bin/allure"
manifest="$prefix/node_modules/allure/package.json"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-allure: $tool is missing: install Node.js 20 or newer with npm (Debian: apt-get install -y nodejs npm)" >&2
        exit 1
    fi
done

installed() {
    [ -x "$bin" ] && [ -f "$manifest" ] && [ "$(node -p "require(process.argv[1]).version" "$manifest")" = "$version" ]
}

if ! installed; then
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "allure@$version" >&2
    installed || { echo "install-allure: npm finished, but $bin is not allure $version" >&2; exit 1; }
fi
echo "$(cd "$(dirname "$bin")" && pwd)/allure"
