#!/usr/bin/env bash
# docker-proxy benchmark: ours against Debian's (moby's Go docker-proxy), interleaved, on loopback.
#   throughput       a 1 GiB TCP transfer through the proxy (MB/s each, ratio, proxy CPU s/GiB)
#   connection rate  short echo connections through the proxy (conn/s each, ratio, CPU ms/conn)
# Goal: ours >= 1.0x the real proxy's throughput. The driver is bench/proxy.ts; this script
# checks and builds what it needs and, whatever happens, stops what the driver started.
#
#   OURS=path      our docker-proxy (default dist/bin/docker-proxy; built first if missing)
#   REAL=path      the reference (default /usr/sbin/docker-proxy, from Debian's docker.io)
#   SIZE_MIB=n     MiB per transfer (default 1024); CONNS=n (default 3000), CONC=n (default 32)
#   ROUNDS=n       interleaved rounds (default 5)
#   SOCKETS=1      also measure ours with BUNKER_PROXY_ENGINE=sockets (Bun sockets, no splice)
# Exit: 0 goal met, 2 goal not met, 1 setup error.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

export OURS=${OURS:-$root/dist/bin/docker-proxy}
export REAL=${REAL:-/usr/sbin/docker-proxy}

die() { echo "proxy bench: $*" >&2; exit 1; }
if [[ ! -x $REAL ]]; then
  echo "proxy bench: $REAL missing; installing docker.io ..." >&2
  bash "$root/scripts/setup.sh" >&2 || die "setup failed"
  [[ -x $REAL ]] || die "reference docker-proxy $REAL not found (docker.io provides /usr/sbin/docker-proxy)"
fi
if [[ ! -e $OURS && $OURS == "$root/dist/bin/docker-proxy" ]]; then
  echo "proxy bench: building dist/bunker ..." >&2
  (cd "$root" && node_modules/.bin/bun run build.ts) >&2 || die "build failed"
fi
[[ -x $OURS ]] || die "our docker-proxy $OURS not found"
if [[ -x $root/node_modules/.bin/bun ]]; then bun=("$root/node_modules/.bin/bun"); else bun=(npx bun); fi

# Measure a snapshot: a rebuild of dist/ during the run would swap the binary under us (ETXTBSY, or
# two versions in one comparison). The copy keeps the name: bunker picks the personality from it.
snap=$(mktemp -d /tmp/bunker-bench-proxy.XXXXXX) || die "mktemp failed"
cp "$(realpath "$OURS")" "$snap/docker-proxy" || die "copying $OURS failed"
export OURS_SHOWN=$OURS OURS=$snap/docker-proxy

driver=
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM HUP
  rm -rf "$snap"
  # The driver runs in its own process group with its backend and proxies: stop them all.
  if [[ -n $driver ]] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM -- -"$driver" 2>/dev/null || kill -TERM "$driver" 2>/dev/null
    for i in {1..30}; do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- -"$driver" 2>/dev/null
    wait "$driver" 2>/dev/null
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "proxy bench: interrupted" >&2; exit 130' INT TERM HUP

setsid -w "${bun[@]}" "$here/proxy.ts" &
driver=$!
wait "$driver"
