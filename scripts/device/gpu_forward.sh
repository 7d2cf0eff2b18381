#!/usr/bin/env bash
# gpu_forward.sh: the forward pass on --backend cuda, checked on the GPU machine against
# the transformers goldens, the CPU backend and the perplexity reference.
#   scripts/device/gpu_forward.sh build   here: the CUDA host, the C tests and every cutest for
#                                         sm_90, luv/cjson/libuv, busted and the eval text into
#                                         .dev/gpu, packed as .dev/gpu.txz (each static CUDA
#                                         binary is ~9.5 MB, the packed folder ~18 MB: the
#                                         device tool carries at most 64 MiB with the tree)
#   scripts/device/gpu_forward.sh run     there, with carry [".dev/gpu.txz"] (unpacked first)
set -euo pipefail
cd "$(dirname "$0")/../.."
unpack() { if [ ! -x .dev/gpu/tmrun ] && [ -f .dev/gpu.txz ]; then tar xJf .dev/gpu.txz -C .dev; fi; }
case "${1:-}" in
build)
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DTMRUN_TESTS=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
  cutests=$(ls kernels/*/cutest_*.c | xargs -n1 basename | sed 's/\.c$//')
  # shellcheck disable=SC2086
  cmake --build build-gpu -j"$(nproc)" --target tmrun_host test_engine test_model_random $cutests
  rm -rf .dev/gpu .dev/gpu-extra && mkdir -p .dev/gpu
  for t in tmrun test_engine test_model_random $cutests; do cp "build-gpu/$t" .dev/gpu/; done
  strip .dev/gpu/tmrun .dev/gpu/test_* .dev/gpu/cutest_* 2>/dev/null || true
  cp /usr/lib/x86_64-linux-gnu/lua/5.1/luv.so /usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so .dev/gpu/
  cp -L /lib/x86_64-linux-gnu/libuv.so.1 .dev/gpu/
  # busted and its modules (1.2 MB of Lua and three C modules), for the Lua specs on the GPU
  rm -rf .dev/gpu/lua && mkdir -p .dev/gpu/lua/share .dev/gpu/lua/lib
  for pkg in lua-busted lua-luassert lua-say lua-penlight lua-term lua-system lua-filesystem lua-mediator lua-cliargs lua-dkjson; do
    dpkg -L "$pkg" 2>/dev/null | grep -E '^/usr/share/lua/5\.1/.*\.lua$' | while read -r f; do
      d=.dev/gpu/lua/share/${f#/usr/share/lua/5.1/}; mkdir -p "$(dirname "$d")"; cp "$f" "$d"; done || true
    dpkg -L "$pkg" 2>/dev/null | grep -E '^/usr/lib/x86_64-linux-gnu/lua/5\.1/.*\.so$' | while read -r f; do
      d=.dev/gpu/lua/lib/${f#/usr/lib/x86_64-linux-gnu/lua/5.1/}; mkdir -p "$(dirname "$d")"; cp -L "$f" "$d"; done || true
  done
  build/tmrun scripts/data/brown.lua --out .dev/brown >/dev/null && cp .dev/brown/eval.txt .dev/gpu/eval.txt
  tar -I 'xz -T2 -6' -cf .dev/gpu.txz -C .dev gpu
  du -sh .dev/gpu .dev/gpu.txz ;;
run)
  unpack
  export TMRUN_HOME=$PWD LD_LIBRARY_PATH=$PWD/.dev/gpu:${LD_LIBRARY_PATH:-}
  export LUA_CPATH="$PWD/.dev/gpu/?.so;$PWD/.dev/gpu/lua/lib/?.so;;" LUA_PATH="$PWD/.dev/gpu/lua/share/?.lua;$PWD/.dev/gpu/lua/share/?/init.lua;;"
  # every part runs whatever the one before gave (a failure must not hide the checks
  # after it); the exit status says whether any failed
  failed=""
  .dev/gpu/tmrun scripts/device/gpu_forward.lua || failed+=" gpu_forward.lua"
  # the engine's C test (batching exactness, cancel, preemption, sessions, shutdown) on the GPU
  TMRUN_TEST_BACKEND=cuda .dev/gpu/test_engine || failed+=" test_engine"
  # the Lua engine specs with every model on the GPU (TMRUN_BACKEND is the default backend).
  # They check batched requests against solo runs token for token on the bf16 demo model, so
  # they take the GEMM kernels whose results do not depend on the batch (docs/CUDA.md, "GEMM
  # choice"): with the defaults a solo step (m = 1) runs the small-m kernel and a batch cuBLAS
  # kernels chosen by timing, and gpu_forward.lua's INFO line counted 338 to 369 of 384 tokens
  # equal across the device calls of 2026-12-01 (each difference a near-tie); the spec failed
  # one of those calls that way.
  for spec in ${GPU_SPECS:-engine_spec}; do
    TMRUN_GEMM_SMALL_M=0 TMRUN_GEMM_TUNE=0 TMRUN_BACKEND=cuda TMRUN_BUILD_DIR=$PWD/.dev/gpu \
      .dev/gpu/tmrun tests/lua/run_busted.lua "tests/lua/$spec.lua" || failed+=" $spec"
  done
  # a random model made on the GPU gives the CPU model's logits (same seed, same noise)
  TMRUN_TEST_BACKEND=cuda .dev/gpu/test_model_random || failed+=" test_model_random"
  if [ -n "$failed" ]; then echo "gpu_forward.sh: failed:$failed"; exit 1; fi
  echo "gpu_forward.sh: all passed" ;;
*) echo "usage: scripts/device/gpu_forward.sh build|run" >&2; exit 2 ;;
esac
