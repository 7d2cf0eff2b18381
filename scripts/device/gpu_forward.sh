#!/usr/bin/env bash
# gpu_forward.sh: the forward pass on --backend cuda, checked on the GPU machine against
# the transformers goldens, the CPU backend and the perplexity reference.
#   scripts/device/gpu_forward.sh build   (here: a CUDA host for sm_90 + Lua modules into .dev/gpu)
#   scripts/device/gpu_forward.sh run     (there, with carry [".dev/gpu"])
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in
build)
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DTMRUN_TESTS=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
  cmake --build build-gpu -j"$(nproc)" --target tmrun_host test_engine test_model_random cutest_rmsnorm cutest_silu_mul
  mkdir -p .dev/gpu
  cp build-gpu/tmrun build-gpu/test_engine build-gpu/test_model_random build-gpu/cutest_rmsnorm build-gpu/cutest_silu_mul .dev/gpu/
  cp /usr/lib/x86_64-linux-gnu/lua/5.1/luv.so /usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so .dev/gpu/
  cp -L /lib/x86_64-linux-gnu/libuv.so.1 .dev/gpu/
  build/tmrun scripts/data/brown.lua --out .dev/brown >/dev/null && cp .dev/brown/eval.txt .dev/gpu/eval.txt
  du -sh .dev/gpu ;;
run)
  export TMRUN_HOME=$PWD LD_LIBRARY_PATH=$PWD/.dev/gpu:${LD_LIBRARY_PATH:-} LUA_CPATH="$PWD/.dev/gpu/?.so;;"
  .dev/gpu/tmrun scripts/device/gpu_forward.lua
  # the engine's C test (batching exactness, cancel, preemption, sessions, shutdown) on the GPU
  TMRUN_TEST_BACKEND=cuda .dev/gpu/test_engine
  # a random model made on the GPU gives the CPU model's logits (same seed, same noise)
  TMRUN_TEST_BACKEND=cuda .dev/gpu/test_model_random ;;
*) echo "usage: scripts/device/gpu_forward.sh build|run" >&2; exit 2 ;;
esac
