#!/usr/bin/env bash
# soak.sh - the long forms of the reliability tests (issue #8), by hand:
#
#   make soak                               # builds build/test, then this
#   tests/reliability/soak.sh [BUILD_DIR] [FILE...]
#
# Runs tests/reliability/*.test.mjs (or the FILEs given) one after another
# with CHATGATE_SOAK=1 against BUILD_DIR's ASan/UBSan gateway (default
# build/test), then the log check over this run's logs. Each long form runs
# for minutes (more pairs, more faults, the full corpora); logs and the
# summary table go to BUILD_DIR/tests/reliability/soak-runs/ (summary.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
build=${1:-build/test}
[ $# -gt 0 ] && shift
bin="$build/gateway/chatgate"
[ -x "$bin" ] || { echo "soak: no gateway at $bin (make build-test first)" >&2; exit 2; }
runs="$root/$build/tests/reliability/soak-runs"
rm -rf "$runs"
mkdir -p "$runs"

export CHATGATE_SOAK=1
export CHATGATE_BIN="$root/$bin"
export REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}
export NODE_PATH="$root/node_modules"
export CHATGATE_IT_TMPDIR="$runs"
export CHATGATE_LOG_DIRS="$runs"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:quarantine_size_mb=16"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

if [ $# -gt 0 ]; then files=("$@"); else
  mapfile -t files < <(ls tests/reliability/*.test.mjs | grep -v zz_no_secrets_in_logs)
  files+=(tests/reliability/zz_no_secrets_in_logs.test.mjs)
fi

failed=()
for f in "${files[@]}"; do
  echo "=== soak: $f"
  if ! node --test --test-reporter=spec "$f"; then failed+=("$f"); fi
done
echo
[ -f "$runs/summary.md" ] && cat "$runs/summary.md"
if [ ${#failed[@]} -gt 0 ]; then
  echo "soak: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "soak: all passed (logs in $runs)"
