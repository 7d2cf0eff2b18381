#!/usr/bin/env bash
# ab.sh - the same benchmark under several environment settings, one line each, in
# one device call: the A/B comparisons of docs/CUDA.md and docs/BENCHMARKS.md (a
# switch of docs/DEVELOPING.md against the default, repeated to see the noise).
#
#   scripts/device/ab.sh "NAME=VALUE ..." ...     there, carry [".dev/gpu.txz"]
#
# Each argument is one run of bench_throughput.lua (random llama2-7b, 256 output
# tokens, CUDA) with those variables set ("-" for none); BATCHES (1,64) picks the
# batch sizes.  Prints output tok/s and per-token p50 ms per batch size.  A word
# BIN=DIR in an argument runs DIR/tmrun instead of .dev/gpu/tmrun (another build,
# e.g. the commit before a change, unpacked beside it).
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .dev/gpu/tmrun ] && [ -f .dev/gpu.txz ]; then tar xJf .dev/gpu.txz -C .dev; fi
export TMRUN_HOME=$PWD LD_LIBRARY_PATH=$PWD/.dev/gpu:${LD_LIBRARY_PATH:-} LUA_CPATH="$PWD/.dev/gpu/?.so;;"
BATCHES=${BATCHES:-1,64}
for setting in "$@"; do
  vars=() words=() bin=.dev/gpu
  [ "$setting" != - ] && read -r -a words <<<"$setting"
  for w in "${words[@]}"; do
    case $w in BIN=*) bin=${w#BIN=} ;; *) vars+=("$w") ;; esac
  done
  line=$(env "${vars[@]}" "$bin/tmrun" scripts/bench_throughput.lua --random-weights llama2-7b --backend cuda \
    --batches "$BATCHES" --output 256 2>&1 | awk -F'|' '/^\| [0-9]/ {printf "batch%s%s tok/s, p50%s ms; ", $2, $3, $5}')
  echo "${setting}: ${line:-FAILED}"
done
