#!/usr/bin/env bash
# kernel_times.sh - GPU time per kernel of a few 7B decode steps, from Nsight
# Compute (ncu, in the CUDA toolkit of the GPU machine): unlike the engine's own
# profile (CUDA events between ops) it has no host gaps in it, so it says what each
# kernel costs on the device.  Eager steps (TMRUN_CUDA_GRAPHS=0), caches kept warm
# between kernels as in a real step (--cache-control none).
#
#   scripts/device/kernel_times.sh BATCH [KERNELS] [SKIP] [OUTPUT]   there, with .dev/gpu unpacked
#
# profiles KERNELS launches (1500) after the first SKIP (0) of a run of OUTPUT (8)
# tokens a request, so a large SKIP looks at late steps (longer contexts).
#
# Prints, per kernel name, the launches and the mean and total us, and the total a step.
set -uo pipefail
cd "$(dirname "$0")/../.."
BATCH=${1:-1}
N=${2:-1500}
SKIP=${3:-0}
OUTPUT=${4:-8}
NCU=${NCU:-/usr/local/cuda/bin/ncu}
export TMRUN_HOME=$PWD LD_LIBRARY_PATH=$PWD/.dev/gpu:${LD_LIBRARY_PATH:-} LUA_CPATH="$PWD/.dev/gpu/?.so;;"
csv=$(mktemp)
TMRUN_CUDA_GRAPHS=0 "$NCU" --metrics gpu__time_duration.sum --cache-control none --csv --print-units base \
  --print-kernel-base function --launch-skip "$SKIP" -c "$N" .dev/gpu/tmrun scripts/bench_throughput.lua --random-weights llama2-7b --backend cuda \
  --batches "$BATCH" --output "$OUTPUT" >"$csv" 2>/dev/null
python3 - "$csv" "$BATCH" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head = rows[0]
name_i, val_i = head.index("Kernel Name"), head.index("Metric Value")
t = collections.OrderedDict()
for r in rows[1:]:
    try: v = float(r[val_i].replace(",", ""))
    except ValueError: continue
    k = r[name_i].strip()[:60]
    c, s = t.get(k, (0, 0.0)); t[k] = (c + 1, s + v)
# a decode step launches each layer kernel once a layer: count steps by the rmsnorm launches / 65
norm = sum(c for k, (c, s) in t.items() if "rmsnorm" in k)
steps = max(norm / 65.0, 1)
print(f"batch {sys.argv[2]}: {len(rows) - 1} kernels profiled, about {steps:.1f} steps (rmsnorm launches / 65)")
print(f"{'kernel':60s} {'launches':>8s} {'mean us':>9s} {'us a step':>10s}")
tot = 0
for k, (c, s) in sorted(t.items(), key=lambda kv: -kv[1][1]):
    if "fill" in k.lower() or "random" in k.lower(): continue
    tot += s / steps
    print(f"{k:60s} {c:8d} {s / c / 1e3:9.2f} {s / steps / 1e3:10.1f}")
print(f"{'all but the weight fill':60s} {'':8s} {'':9s} {tot / 1e3:10.1f}")
PY
rm -f "$csv"
