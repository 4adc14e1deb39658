#!/usr/bin/env bash
# Installs the Debian tools that the deployment tests use, when they are missing:
#   prometheus + promtool (2.42 in bookworm): the real-Prometheus test and `promtool test rules`
#   docker-compose (1.29, Python): `docker-compose config` validates deploy/docker-compose.yml
#   without a Docker engine.
#   prometheus-alertmanager: amtool checks deploy/alertmanager/alertmanager.yml.
# Called by tests/deploy/conftest.py and by `make deploy-tools`; does nothing when all are there.
set -euo pipefail
need=()
{ command -v prometheus && command -v promtool; } >/dev/null || need+=(prometheus)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "missing ${need[*]}: run as root: apt-get update && apt-get install -y ${need[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "installed ${need[*]}"
