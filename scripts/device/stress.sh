#!/usr/bin/env bash
# stress.sh - one device test run many times, for a failure that comes once in a
# while (test_engine's pressure case failed once in ten device calls on 2026-12-01).
#
#   scripts/device/stress.sh N [TEST]   there, carry [".dev/gpu.txz"]
#
# runs .dev/gpu/TEST (test_engine) N times on the GPU (TMRUN_TEST_BACKEND=cuda),
# prints the failed checks of each failing run, and ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .dev/gpu/tmrun ] && [ -f .dev/gpu.txz ]; then tar xJf .dev/gpu.txz -C .dev; fi
export TMRUN_HOME=$PWD LD_LIBRARY_PATH=$PWD/.dev/gpu:${LD_LIBRARY_PATH:-}
N=${1:-20}
TEST=${2:-test_engine}
pass=0 fail=0 log=$(mktemp)
for i in $(seq "$N"); do
  if TMRUN_TEST_BACKEND=cuda ".dev/gpu/$TEST" >"$log" 2>&1; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "== run $i failed"
    grep -E "CHECK failed|FAIL|request [0-9]+:" "$log" | head -n 20
  fi
done
rm -f "$log"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
