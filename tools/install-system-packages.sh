#!/usr/bin/env bash
# Installs the Debian packages the tests use as real parts: promtool and a Prometheus server
# (package prometheus), amtool (prometheus-alertmanager), and a PostgreSQL server (package
# postgresql: tests/postgres.py runs initdb and pg_ctl from /usr/lib/postgresql/<version>/bin for a
# throw-away cluster). Idempotent: does nothing when present.
set -euo pipefail
needed=()
command -v promtool >/dev/null 2>&1 || needed+=(prometheus)
command -v amtool >/dev/null 2>&1 || needed+=(prometheus-alertmanager)
# Debian keeps the server binaries off PATH, one folder per major version: any version will do.
postgres_found=false
for bin in /usr/lib/postgresql/*/bin; do
  if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ]; then
    postgres_found=true
  fi
done
$postgres_found || needed+=(postgresql)
[ ${#needed[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${needed[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
