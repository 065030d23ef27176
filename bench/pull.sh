#!/usr/bin/env bash
# Image pull benchmark: cold `ctr images pull --plain-http` with unpack of a ~500 MB multi-layer
# gzip image from Debian's docker-registry on loopback, our containerd + ctr against Debian's
# containerd + ctr, fresh roots every pull, ROUNDS rounds alternated; wall time (fetch / unpack),
# peak RSS of daemon and ctr, ratios ours/real; then an image with one layer 4x the biggest to show
# our peak memory is flat in layer size. Goal: ours <= 1.0x containerd's time; memory flat.
# The driver is bench/pull.ts; this script checks and builds what it needs, runs the driver in a
# private mount namespace with its own tmpfs on /run (nothing reaches /run/containerd or
# /var/lib/containerd; every daemon gets --root/--state/--address under the temp dir), and,
# whatever happens, stops what the driver started and removes the temp dir.
#
#   OURS=path      our bunker binary (default dist/bunker; built first if missing)
#   REAL_CONTAINERD=path REAL_CTR=path   the reference (default /usr/bin/containerd, /usr/bin/ctr)
#   BASE=path      another bunker binary (say, a build of main) pulled in the same rounds: ours/base
#   ROUNDS=n       interleaved rounds (default 3)
#   SCALE=x        image size factor (default 1: ~500 MB compressed); FLAT=0 skips the flatness pull
#   CACHE=dir      keep the generated layer blobs in dir and reuse them next time (default: regenerate)
#   TMPDIR=dir     where the temp dir goes (default /tmp; needs ~4 GB, and overlayfs upper dirs)
#   KEEP=1         keep the temp dir
# Exit: 0 goals met, 2 goals not met, 1 setup error.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

export REAL_CONTAINERD=${REAL_CONTAINERD:-/usr/bin/containerd}
export REAL_CTR=${REAL_CTR:-/usr/bin/ctr}
export REGISTRY=${REGISTRY:-/usr/bin/docker-registry}
OURS=${OURS:-$root/dist/bunker}

die() { echo "pull bench: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (overlayfs snapshots, a private mount namespace)"
need_pkgs=()
[[ -x $REAL_CONTAINERD && -x $REAL_CTR ]] || need_pkgs+=(containerd)
[[ -x $REGISTRY ]] || need_pkgs+=(docker-registry)
if ((${#need_pkgs[@]})); then
  echo "pull bench: installing ${need_pkgs[*]} ..." >&2
  # A policy-rc.d keeps the packages' init scripts from starting system daemons.
  own_policy=0
  [[ -e /usr/sbin/policy-rc.d ]] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >&2 ||
    { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >&2; }
  ((own_policy)) && rm -f /usr/sbin/policy-rc.d
fi
[[ -x $REAL_CONTAINERD && -x $REAL_CTR ]] || die "reference containerd/ctr not found ($REAL_CONTAINERD, $REAL_CTR)"
[[ -x $REGISTRY ]] || die "docker-registry $REGISTRY not found"
[[ -x /bin/busybox ]] || die "/bin/busybox (busybox-static) not found"
if [[ ! -e $OURS && $OURS == "$root/dist/bunker" ]]; then
  echo "pull bench: building dist/bunker ..." >&2
  (cd "$root" && node_modules/.bin/bun run build.ts) >&2 || die "build failed"
fi
[[ -x $OURS ]] || die "our binary $OURS not found"
if [[ -x $root/node_modules/.bin/bun ]]; then bun=("$root/node_modules/.bin/bun"); else bun=(npx bun); fi

export BENCH_TMP
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/bunker-bench-pull.XXXXXX") || die "mktemp failed"
# Measure a snapshot: a rebuild of dist/ during the run would swap the binary under us. bunker picks
# its personality from its name, so the copy is named containerd and ctr links to it.
mkdir -p "$BENCH_TMP/bin" && cp "$(realpath "$OURS")" "$BENCH_TMP/bin/containerd" && ln -s containerd "$BENCH_TMP/bin/ctr" || die "copying $OURS failed"
export OURS_SHOWN=$OURS OURS_CONTAINERD=$BENCH_TMP/bin/containerd OURS_CTR=$BENCH_TMP/bin/ctr
if [[ -n ${BASE:-} ]]; then
  [[ -x $BASE ]] || die "BASE $BASE not found"
  mkdir -p "$BENCH_TMP/base" && cp "$(realpath "$BASE")" "$BENCH_TMP/base/containerd" && ln -s containerd "$BENCH_TMP/base/ctr" || die "copying $BASE failed"
  export BASE_SHOWN=$BASE BASE_CONTAINERD=$BENCH_TMP/base/containerd BASE_CTR=$BENCH_TMP/base/ctr
fi
driver=

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM HUP
  # The driver runs in its own session with the registry, the daemons and ctr: it stops them when
  # told to, then the whole session goes. Their mounts live in the driver's private mount
  # namespace and go with its last process.
  if [[ -n $driver ]] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null
    for i in {1..30}; do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
    kill -TERM -- -"$driver" 2>/dev/null
    for i in {1..20}; do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- -"$driver" 2>/dev/null
    wait "$driver" 2>/dev/null
  fi
  if [[ -n $driver ]]; then
    for i in {1..50}; do pgrep -s "$driver" >/dev/null || break; sleep 0.1; done
    pgrep -s "$driver" >/dev/null && { echo "pull bench: LEAK: processes left in session $driver: $(pgrep -s "$driver" | tr '\n' ' ')" >&2; ((rc == 0)) && rc=1; }
  fi
  if grep -q " $BENCH_TMP" /proc/self/mountinfo; then
    echo "pull bench: LEAK: mounts under $BENCH_TMP in the host namespace" >&2
    ((rc == 0)) && rc=1
  elif [[ ${KEEP:-0} == 1 ]]; then
    echo "pull bench: kept $BENCH_TMP" >&2
  else
    rm -rf --one-file-system "$BENCH_TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "pull bench: interrupted" >&2; exit 130' INT TERM HUP

# Own session (the cleanup kills it as a group), own mount namespace with a tmpfs on /run: the real
# containerd 1.6 hard-codes a few paths under /run/containerd.
setsid -w unshare -m --propagation private -- bash -c 'mount -t tmpfs -o mode=755,size=64m bunker-bench-run /run && mkdir -p /run/containerd /run/lock && exec "$@"' bash "${bun[@]}" "$here/pull.ts" &
driver=$!
wait "$driver"
