#!/usr/bin/env bash
# bench.sh - issue 8's side-by-side benchmark in ONE device call: a quick check that
# the CUDA path is right, then tmrun's bench_throughput.lua and bench_memory.lua on a
# random Llama-2-7B, then HF transformers (scripts/device/bench_hf.py, eager and
# static+compiled) on the same scenario, all on the same GPU minutes apart.
#
#   scripts/device/gpu_forward.sh build           here: the CUDA host and Lua modules into .dev/gpu
#   scripts/device/bench.sh run                   there, carry [".dev/gpu.txz"]; results under $OUT
#
# Environment: NEW_TOKENS (256), BATCHES (1,16,64,128,256), HF_SECONDS (the HF
# script's --max-seconds, 300), HF_FIRST (its --first order), HF_BATCHES (BATCHES),
# HF_MODES (eager,static); CHECKS=0, PROFILE=0, MEMORY=0 leave those parts out.
# The device tool brings back at most 8 files from $OUT: the small ones go into
# logs.tgz at the end, and tmrun.txt, hf.txt, bandwidth.txt, memory.txt stay as they are.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-.dev/bench-out}
mkdir -p "$OUT"
if [ ! -x .dev/gpu/tmrun ] && [ -f .dev/gpu.txz ]; then tar xJf .dev/gpu.txz -C .dev; fi
export TMRUN_HOME=$PWD LD_LIBRARY_PATH=$PWD/.dev/gpu:${LD_LIBRARY_PATH:-} LUA_CPATH="$PWD/.dev/gpu/?.so;;"
T=.dev/gpu/tmrun
NEW=${NEW_TOKENS:-256}
BATCHES=${BATCHES:-1,16,64,128,256}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"

rc_fwd=skipped rc_rand=skipped rc_eng=skipped
if [ "${CHECKS:-1}" != 0 ]; then
echo "== checks: the CUDA forward against the goldens, random model CUDA = CPU, the engine's C test"
$T scripts/device/gpu_forward.lua > "$OUT/gpu_forward.txt" 2>&1; rc_fwd=$?
tail -n 25 "$OUT/gpu_forward.txt"
if [ -x .dev/gpu/test_model_random ]; then
  TMRUN_TEST_BACKEND=cuda .dev/gpu/test_model_random > "$OUT/test_model_random.txt" 2>&1; rc_rand=$?
  tail -n 5 "$OUT/test_model_random.txt"
fi
TMRUN_TEST_BACKEND=cuda .dev/gpu/test_engine > "$OUT/test_engine.txt" 2>&1; rc_eng=$?
tail -n 2 "$OUT/test_engine.txt"
for t in cutest_rmsnorm cutest_silu_mul; do [ -x .dev/gpu/$t ] && .dev/gpu/$t 2>&1 | tail -n 2; done
fi

echo "== the read bandwidth of this GPU (a 4 GiB device copy: bytes read + written over time)"
python3 - <<'EOF' | tee "$OUT/bandwidth.txt"
import torch
n = 1 << 31  # 2^31 fp16 = 4 GiB
a = torch.empty(n, dtype=torch.float16, device="cuda").normal_()
b = torch.empty_like(a)
for _ in range(3): b.copy_(a)
torch.cuda.synchronize()
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
ts = []
for _ in range(10):
    s.record(); b.copy_(a); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e) / 1e3)
ts.sort()
print(f"copy bandwidth {2 * n * 2 / ts[len(ts) // 2] / 1e9:.0f} GB/s (median of 10, read + write)")
EOF
BW=$(grep -o '[0-9]* GB/s' "$OUT/bandwidth.txt" | head -1 | cut -d' ' -f1)

echo "== tmrun bench_throughput (random llama2-7b fp16, 1 prompt token, $NEW output tokens)"
$T scripts/bench_throughput.lua --random-weights llama2-7b --backend cuda --batches "$BATCHES" --output "$NEW" \
  --bandwidth "${BW:-4190}" --json "$OUT/tmrun.json" 2>&1 | tee "$OUT/tmrun.txt"
rc_tm=${PIPESTATUS[0]}
if [ "$rc_tm" -ne 0 ]; then
  echo "tmrun bench failed ($rc_tm): HF skipped so the device time is kept for a rerun"
  exit 1
fi

if [ "${PROFILE:-1}" != 0 ]; then
echo "== tmrun per-op time at batch 1 and 64 (eager steps, CUDA events between ops: host gaps included)"
$T scripts/bench_throughput.lua --random-weights llama2-7b --backend cuda --batches 1,64 --output 64 --profile \
  2>&1 | tee "$OUT/profile.txt" | sed -n '/per-op time/,$p'
fi

if [ "${MEMORY:-1}" != 0 ]; then
echo "== tmrun bench_memory (7B, context 2048 / 4096)"
$T scripts/bench_memory.lua --random-weights llama2-7b --contexts 2048,4096 --batches 1,16,64 2>&1 | tee "$OUT/memory.txt"
fi

echo "== HF transformers (same scenario)"
python3 scripts/device/bench_hf.py --batch "${HF_BATCHES:-$BATCHES}" --modes "${HF_MODES:-eager,static}" --new-tokens "$NEW" --max-seconds "${HF_SECONDS:-300}" \
  ${HF_FIRST:+--first "$HF_FIRST"} --json "$OUT/hf.json" 2>&1 | tee "$OUT/hf.txt" | grep -v "^  " | tail -n 30

echo "checks: gpu_forward rc=$rc_fwd test_model_random rc=$rc_rand test_engine rc=$rc_eng"
cd "$OUT" && small=$(ls | grep -vE '^(tmrun.txt|hf.txt|bandwidth.txt|memory.txt|logs.tgz|cutest-logs.tgz)$') &&
  [ -n "$small" ] && tar czf logs.tgz $small && rm -f $small
