#!/usr/bin/env bash
# Installs the Debian packages the tests use as real parts: promtool and a Prometheus server
# (package prometheus), amtool (prometheus-alertmanager), and a PostgreSQL server (package
# postgresql: tests/postgres.py runs initdb and pg_ctl from /usr/lib/postgresql/<version>/bin for a
# throw-away cluster), and a headless browser for the generated HTML pages: Chromium with its
# WebDriver at the same version (packages chromium and chromium-driver: tests/browser.py drives
# /usr/lib/chromium/chromium through its chromedriver with Selenium; a browser build a Python package
# would download cannot be fetched here). Idempotent: does nothing when present.
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
# Debian's chromium-driver depends on chromium of the very same version: both come, or are upgraded, together.
command -v chromium >/dev/null 2>&1 || needed+=(chromium)
command -v chromedriver >/dev/null 2>&1 || needed+=(chromium-driver)
[ ${#needed[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${needed[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
