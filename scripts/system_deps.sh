#!/usr/bin/env bash
# Install the system packages APEX needs (Debian/Ubuntu, only when run as root).
# Anything already present is left alone; non-root runs just report what is missing.
set -euo pipefail

need=()
command -v python3.11 >/dev/null || command -v python3 >/dev/null || need+=(python3 python3-venv)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v chromium >/dev/null || need+=(chromium)
# Go builds stripe-mock for the billing tests (scripts/servers.py, cached in ~/.cache/apex)
command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || need+=(golang-go)
# the production shape's reverse proxy (integration tests) and the HTTP load generator (benchmarks)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
    echo "missing system packages: ${need[*]} (install them, or run as root on Debian/Ubuntu)" >&2
    exit 0
fi
echo "==> apt-get install ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
