#!/bin/sh
# Install the Debian packages of the services the tests start themselves, those that are missing:
#   sh tests/support/install_services.sh activemq zookeeper prometheus chromium
# Idempotent: does nothing (and needs no network) when every package is installed. Installing
# needs root; without it this only warns, and the tests needing a missing service are skipped
# (or fail under DAGSERVER_REQUIRE_SERVICES=1, as in CI).
set -eu
missing=""
for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "install_services.sh: missing Debian packages:$missing; installing them needs root" \
         "(apt-get install$missing); the tests needing them will be skipped" >&2
    exit 0
fi
echo "install_services.sh: installing$missing"
apt-get update -qq
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
