#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine (root): npm packages, and the
# Debian packages the tests use as fixtures and as real peers. Idempotent and quiet when done.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in busybox-static runc crun tini; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -x node_modules/.bin/bun ] || npm install --no-audit --no-fund --loglevel=error
