#!/usr/bin/env bash
# scripts/device/test.sh - every CUDA test on the GPU machine in one call: the CUDA twin
# tests (kernels/*/cutest_*.c, each op against its CPU twin), then the forward pass and
# the engine on --backend cuda (scripts/device/gpu_forward.sh run: the goldens, the demo
# model's perplexity, the engine's C test and Lua spec, random models CUDA = CPU).
#
#   scripts/device/test.sh build   here (nvcc, no GPU needed): gpu_forward.sh build, which
#                                  builds all of it for sm_90 into .dev/gpu and packs
#                                  .dev/gpu.txz (git-ignored, carried to the device)
#   scripts/device/test.sh run     there, carry [".dev/gpu.txz"]: run every cutest with a
#                                  time limit each, logs in .dev/cuda-logs (archived to
#                                  $OUT/cutest-logs.tgz when OUT is set), a summary table,
#                                  then the forward checks; exit 1 if anything failed
#
# docs/DEVELOPING.md ("CUDA tests on the GPU machine") has the device call.
set -u
cd "$(dirname "$0")/../.."
BIN=.dev/gpu

build() {
    scripts/device/gpu_forward.sh build
}

run() {
    if [ ! -x "$BIN/tmrun" ] && [ -f .dev/gpu.txz ]; then tar xJf .dev/gpu.txz -C .dev; fi
    local logs=.dev/cuda-logs limit=${CUTEST_TIMEOUT:-120} failed=0 summary=""
    mkdir -p "$logs"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$logs/gpu.txt"
    for b in "$BIN"/cutest_*; do
        local name rc t0 t1 worst
        name=$(basename "$b")
        t0=$(date +%s.%N)
        timeout "$limit" "$b" >"$logs/$name.log" 2>&1
        rc=$?
        t1=$(date +%s.%N)
        case $rc in 0) status=PASS ;; 77) status=SKIP ;; 124) status=TIMEOUT; failed=1 ;; *) status="FAIL($rc)"; failed=1 ;; esac
        worst=$(grep '^worst' "$logs/$name.log" | sed 's/^worst //' | paste -sd ';' -)
        summary+=$(printf '%-18s %-9s %6.1fs  %s' "$name" "$status" "$(awk "BEGIN{print $t1 - $t0}")" "$worst")$'\n'
        if [ "$status" != PASS ]; then tail -n 20 "$logs/$name.log"; fi
    done
    echo "---- cutest summary ----"
    printf '%s' "$summary" | tee "$logs/summary.txt"
    # the device tool returns at most 8 files from $OUT: one archive and the summary
    if [ -n "${OUT:-}" ]; then
        tar czf "$OUT/cutest-logs.tgz" -C "$logs" . && cp "$logs/summary.txt" "$OUT/"
    fi
    echo "---- forward, engine and random-model checks on --backend cuda ----"
    scripts/device/gpu_forward.sh run || failed=1
    return $failed
}

case "${1:-run}" in
build) build ;;
run) run ;;
*) echo "usage: $0 build|run" >&2; exit 2 ;;
esac
