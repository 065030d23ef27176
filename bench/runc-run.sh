#!/usr/bin/env bash
# Container lifecycle benchmark: create + start + wait + delete of a busybox `true` container, ours
# against Debian's runc (and crun where it runs), interleaved; per-step medians; `exec true` into a
# running container; startup context; our per-stage BUNKER_TIMINGS. Goal: ours <= 0.6x runc.
# The timing driver is bench/runc-run.ts; this script sets up and, whatever happens, cleans up.
#
#   OURS=path      our runc (default dist/bin/runc; built first if missing)
#   RUNC=path      reference runc (default /usr/sbin/runc)
#   CRUN=path      crun (default /usr/bin/crun; CRUN= to skip)
#   BUNKER=path    binary whose --version startup is measured for context (default dist/bunker)
#   ITER=n         measured cycles per runtime (default 30); WARMUP=n (default 2)
#   EXEC_ITER=n    exec iterations (default ITER); CTX_ITER=n context iterations (default ITER)
#   TIMINGS=0      don't set BUNKER_TIMINGS for ours
#   KEEP=1         keep the temp dir (for debugging; containers and cgroups are still removed)
# Exit: 0 measured, 2 ours couldn't run a container, 1 setup error or leftovers after cleanup.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

export OURS=${OURS:-$root/dist/bin/runc}
export RUNC=${RUNC:-/usr/sbin/runc}
export CRUN=${CRUN-/usr/bin/crun}
export BUNKER=${BUNKER:-$root/dist/bunker}
export ITER=${ITER:-30}

die() { echo "runc-run: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (containers with cgroups)"
[[ -x $RUNC ]] || die "reference runc $RUNC not found"
[[ -x /bin/busybox ]] || die "/bin/busybox (busybox-static) not found"
if [[ ! -e $OURS && $OURS == "$root/dist/bin/runc" ]]; then
  echo "runc-run: building dist/bunker ..." >&2
  (cd "$root" && npx bun run build.ts) >&2 || die "build failed"
fi
[[ -x $OURS ]] || die "our runc $OURS not found"

if [[ -x $root/node_modules/.bin/bun ]]; then bun=("$root/node_modules/.bin/bun"); else bun=(npx bun); fi

export BENCH_TMP
BENCH_TMP=$(mktemp -d /tmp/bunker-bench.XXXXXX) || die "mktemp failed"
export BENCH_TAG=${BENCH_TMP##*.}   # in container ids and cgroup names, so cleanup only touches ours
driver=

cgroup_dirs() { # every cgroup dir this run created, deepest first, in every hierarchy (v1, unified, v2)
  local h
  for h in /sys/fs/cgroup /sys/fs/cgroup/*/; do
    [[ -d $h ]] || continue
    find "${h%/}" -maxdepth 1 -mindepth 1 -type d -name "bunker-bench-$BENCH_TAG-*" -print0 2>/dev/null |
      xargs -0 -r -I{} find {} -depth -type d 2>/dev/null
  done
}

cleanup() {
  local rc=$? name bin dir id d pid i m
  trap - EXIT INT TERM HUP
  # The driver (in its own session) and whatever runtime call it had in flight.
  if [[ -n $driver ]] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM -- -"$driver" 2>/dev/null || kill -TERM "$driver" 2>/dev/null
    for i in {1..50}; do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- -"$driver" 2>/dev/null
    wait "$driver" 2>/dev/null
  fi
  # Containers still known to a runtime: delete --force with the runtime that owns the --root.
  for name in ours runc crun; do
    case $name in ours) bin=$OURS ;; runc) bin=$RUNC ;; crun) bin=$CRUN ;; esac
    dir=$BENCH_TMP/root-$name
    [[ -d $dir && -n $bin ]] || continue
    for d in "$dir"/*/; do
      [[ -d $d ]] || continue
      id=$(basename "$d")
      timeout 10 "$bin" --root "$dir" delete --force "$id" >/dev/null 2>&1
    done
  done
  # Processes a broken runtime left behind: kill what is in our cgroups, then remove them.
  for i in 1 2 3; do
    while read -r d; do
      [[ -w $d/freezer.state ]] && echo THAWED >"$d/freezer.state" 2>/dev/null
      if [[ -r $d/cgroup.procs ]]; then
        while read -r pid; do kill -KILL "$pid" 2>/dev/null; done <"$d/cgroup.procs"
      fi
    done < <(cgroup_dirs)
    sleep 0.05
    while read -r d; do rmdir "$d" 2>/dev/null; done < <(cgroup_dirs)
    [[ -z $(cgroup_dirs) ]] && break
    sleep 0.2
  done
  # Mounts a broken runtime left in our namespace under the temp dir, innermost first.
  while read -r m; do umount -l "$m" 2>/dev/null; done < <(awk -v t="$BENCH_TMP" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  # Leak check.
  local leaks=0
  if [[ -n $(cgroup_dirs) ]]; then
    echo "runc-run: LEAK: cgroups left: $(cgroup_dirs | tr '\n' ' ')" >&2; leaks=1
  fi
  if grep -q " $BENCH_TMP" /proc/self/mountinfo; then
    echo "runc-run: LEAK: mounts left under $BENCH_TMP" >&2; leaks=1
  fi
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "runc-run: kept $BENCH_TMP" >&2
  else
    rm -rf --one-file-system "$BENCH_TMP"
  fi
  # Stale dirs of earlier, killed runs: remove the empty ones, name the rest.
  for d in /sys/fs/cgroup/bunker-bench-* /sys/fs/cgroup/*/bunker-bench-*; do
    [[ -d $d ]] && ! rmdir "$d" 2>/dev/null && echo "runc-run: note: stale busy cgroup $d (not ours)" >&2
  done
  ((leaks == 0)) && echo "cleanup: containers, cgroups, mounts and $BENCH_TMP removed; no leftovers" >&2
  ((leaks)) && ((rc == 0)) && rc=1
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "runc-run: interrupted" >&2; exit 130' INT TERM HUP

# Bundle pieces: a busybox rootfs shared by all bundles, and the base config from `runc spec`.
rootfs=$BENCH_TMP/rootfs
mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp,etc} || exit 1
cp /bin/busybox "$rootfs/bin/busybox" || exit 1
for a in sh true sleep cat ls; do ln -s busybox "$rootfs/bin/$a"; done
mkdir -p "$BENCH_TMP/spec" && "$RUNC" spec --bundle "$BENCH_TMP/spec" || die "$RUNC spec failed"
mv "$BENCH_TMP/spec/config.json" "$BENCH_TMP/base-config.json"
export SPEC_FROM=$RUNC

# The driver runs in its own session, in the background: an interrupt reaches this shell at once
# (not after the driver finishes), and the cleanup can kill the driver and its runtime calls as a group.
setsid -w "${bun[@]}" "$here/runc-run.ts" &
driver=$!
wait "$driver"
