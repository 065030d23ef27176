#!/usr/bin/env bash
# The project's test command (npm test): host deps, node deps, build, then the integration tests.
#
#   test/run.sh                      everything under test/
#   test/run.sh test/runc-cli        only matching files (arguments go to `bun test`)
#   RUNC_BIN=/usr/sbin/runc test/run.sh test/runc-   the runc tests against the real runc
#
# Ends with one line "N passed, N failed[, N skipped]" taken from bun test's own summary, and exits
# non-zero if anything failed (or bun test did not get to print a summary).
#
# bun test runs files one after another in one process and the tests of a file one at a time
# (we never pass --parallel/--concurrent): the tests start real containers, and the machine has
# two cores.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# --- Debian packages and node_modules, only when something is missing ---------------------------
bash scripts/setup.sh || { echo "run.sh: setup failed" >&2; echo "0 passed, 1 failed"; exit 1; }

# --- build -----------------------------------------------------------------------------------------
node_modules/.bin/bun run build.ts || { echo "run.sh: build failed" >&2; echo "0 passed, 1 failed"; exit 1; }

# --- tests -------------------------------------------------------------------------------------------
log="$(mktemp /tmp/bunker-run-log.XXXXXX)"
trap 'rm -f "$log"' EXIT
if [ $# -gt 0 ]; then
  node_modules/.bin/bun test "$@" 2>&1 | tee "$log"
else
  node_modules/.bin/bun test test/ 2>&1 | tee "$log"
fi
rc=${PIPESTATUS[0]}

# bun test's summary: " 12 pass", " 0 fail", " 1 skip" (alone on their lines).
count() { grep -E "^ *[0-9]+ $1\$" "$log" | tail -n 1 | tr -dc '0-9'; }
pass="$(count pass)"
fail="$(count fail)"
skip="$(count skip)"
summary_found=1
[ -n "$pass" ] || { pass=0; summary_found=0; }
[ -n "$fail" ] || fail=0
[ -n "$skip" ] || skip=0
if [ "$rc" != 0 ] && [ "$fail" = 0 ]; then
  # bun test failed without counting a failed test (crashed before its summary, an error outside
  # any test, no test files matched...): count that as one failure.
  [ "$summary_found" = 1 ] || echo "run.sh: bun test exited $rc without a summary" >&2
  fail=1
fi

# Leftovers from the harness' naming scheme (warn only: other runs may be in progress).
node_modules/.bin/bun test/harness.ts leaks >&2 || echo "run.sh: warning: resources left behind (see above)" >&2

line="$pass passed, $fail failed"
[ "$skip" != 0 ] && line="$line, $skip skipped"
echo
echo "$line"
if [ "$fail" != 0 ] || [ "$rc" != 0 ]; then
  exit 1
fi
exit 0
