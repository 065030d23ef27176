#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine (root): npm packages, and the
# Debian packages the tests use as fixtures and as real peers. Idempotent and quiet when done.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# containerd and docker.io: the real containerd/ctr/shim and dockerd/docker the peer tests drive our
# runc with (test/peer-*.test.ts). openssl: the certificates of the token-auth and HTTPS registry tests.
for pkg in busybox-static runc crun tini containerd docker.io docker-registry zstd skopeo openssl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  # Keep the packages' init scripts from starting the system's containerd/dockerd (which would use
  # /var/lib/docker and /run/containerd): a policy-rc.d that denies, only for this install.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; } || rc=$?
  [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || exit "$rc"
fi
[ -x node_modules/.bin/bun ] || npm install --no-audit --no-fund --loglevel=error
