#!/usr/bin/env bash
# Size of the one Bunker binary against the budget: 0.55x of the 205 MiB that Docker's eight
# binaries (docker, dockerd, containerd, containerd-shim-runc-v2, ctr, docker-proxy, docker-init,
# runc) take, i.e. 113 MiB. Exits 1 when over budget, 2 when the binary can't be built.
#   BUNKER=path   binary to measure (default dist/bunker; built first if missing)
#   BUILD=1       rebuild before measuring
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${BUNKER:-$root/dist/bunker}

if [[ ${BUILD:-0} == 1 || ! -e $bin ]]; then
  if [[ -n ${BUNKER:-} && ! -e $bin ]]; then
    echo "size: $bin does not exist" >&2
    exit 2
  fi
  echo "size: building $bin ..." >&2
  (cd "$root" && npx bun run build.ts) >&2 || { echo "size: build failed" >&2; exit 2; }
fi

mib=1048576
docker_mib=205
budget_mib=113          # 0.55 x 205 MiB, rounded down
budget=$((budget_mib * mib))
size=$(stat -L -c %s "$bin")

awk -v s="$size" -v b="$budget" -v m="$mib" -v d="$docker_mib" -v bm="$budget_mib" -v f="$bin" 'BEGIN {
  printf "binary:  %s\n", f
  printf "size:    %d bytes = %.2f MiB\n", s, s / m
  printf "budget:  %d bytes = %d MiB (0.55x of Docker'"'"'s %d MiB for eight binaries)\n", b, bm, d
  printf "ratio:   %.3fx of Docker (goal <= 0.55x); %.1f%% of budget\n", s / (d * m), 100 * s / b
  if (s > b) printf "OVER BUDGET by %d bytes = %.2f MiB\n", s - b, (s - b) / m
  else       printf "ok: %.2f MiB under budget\n", (b - s) / m
}'

((size <= budget))
