#!/usr/bin/env bash
# Install Debian's redis-server for the side-by-side benchmark, unless one is already on PATH.
# The bench starts its own redis-server on a free loopback port (the Debian service is stopped and
# disabled here so it does not hold port 6379 or use memory during the measurements).
# Exit status: 0 when redis-server is available afterwards, 1 when it could not be installed
# (the bench then skips the Redis half and says why).
set -u

if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_redis: redis-server is not on PATH and apt-get is not available" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "setup_redis: redis-server is not on PATH and installing it needs root (apt-get install redis-server)" >&2
        exit 1
    fi
fi
echo "setup_redis: installing redis-server with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
# Try without a package-list refresh first (fast when the lists are current), then with one.
if ! $SUDO apt-get install -y -q --no-install-recommends redis-server >/dev/null 2>&1; then
    $SUDO apt-get update -q >/dev/null 2>&1 || true
    if ! $SUDO apt-get install -y -q --no-install-recommends redis-server >/dev/null 2>&1; then
        echo "setup_redis: apt-get install redis-server failed" >&2
        exit 1
    fi
fi
# The package may start a system service on :6379; the bench runs its own server, so stop that one.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
    $SUDO systemctl stop redis-server >/dev/null 2>&1 || true
    $SUDO systemctl disable redis-server >/dev/null 2>&1 || true
elif command -v service >/dev/null 2>&1; then
    $SUDO service redis-server stop >/dev/null 2>&1 || true
fi
command -v redis-server >/dev/null 2>&1
