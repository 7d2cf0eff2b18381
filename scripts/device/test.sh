#!/usr/bin/env bash
# scripts/device/test.sh - the CUDA twin tests (kernels/*/cutest_*.c) on the GPU machine.
#
#   scripts/device/test.sh build   here (nvcc, no GPU needed): configure build-cuda for
#                                  sm_90, build every cutest_* binary, copy them into
#                                  .dev/cuda-bin/ (git-ignored, carried to the device)
#   scripts/device/test.sh run     there: run every binary in .dev/cuda-bin/ with a time
#                                  limit each, logs in .dev/cuda-logs (archived to
#                                  $OUT/cutest-logs.tgz when OUT is set), and
#                                  print a summary table last; exit 1 if any failed
#
# docs/DEVELOPING.md ("CUDA tests on the GPU machine") has the device call.
set -u
cd "$(dirname "$0")/../.."
BIN=.dev/cuda-bin

build() {
    set -e
    cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
    local targets
    targets=$(ls kernels/*/cutest_*.c | xargs -n1 basename | sed 's/\.c$//')
    # shellcheck disable=SC2086
    cmake --build build-cuda -j2 --target $targets
    rm -rf "$BIN" && mkdir -p "$BIN"
    for t in $targets; do cp "build-cuda/$t" "$BIN/"; done
    strip "$BIN"/cutest_* 2>/dev/null || true
    du -sh "$BIN"
}

run() {
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
    return $failed
}

case "${1:-run}" in
build) build ;;
run) run ;;
*) echo "usage: $0 build|run" >&2; exit 2 ;;
esac
