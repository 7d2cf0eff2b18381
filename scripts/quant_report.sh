#!/usr/bin/env bash
# quant_report.sh: the quality table of docs/QUANTIZATION.md on the demo model, in one run:
# perplexity (first WINDOWS windows of 512 of the Brown eval split) and greedy agreement
# with bf16 on 100 prompts, for fp, RTN/AWQ w4g128, KV int8 (online, static), KV int4,
# and AWQ + KV int8.   scripts/quant_report.sh [WORK_DIR] [WINDOWS]
set -euo pipefail
cd "$(dirname "$0")/.."
T=build/tmrun
W=${1:-/tmp/tmrun-quant-report}
N=${2:-40}
M=models/tmrun-demo
mkdir -p "$W"
[ -f "$W/awq/config.json" ] || {
  $T calibrate.lua --model $M --calib-dataset brown --calib-samples 128 --calib-seqlen 512 --work-dir "$W/awq" >/dev/null
  cp -r "$W/awq" "$W/rtn"
  $T auto_awq.lua --model $M --w-bits 4 --w-group-size 128 --work-dir "$W/awq" >/dev/null
  $T auto_awq.lua --model $M --w-bits 4 --w-group-size 128 --work-dir "$W/rtn" --method rtn >/dev/null
}
[ -d "$W/ws_awq" ] || $T convert.lua demo "$W/awq" --model-format awq --group-size 128 --dst-path "$W/ws_awq" 2>/dev/null
[ -d "$W/ws_rtn" ] || $T convert.lua demo "$W/rtn" --model-format awq --group-size 128 --dst-path "$W/ws_rtn" 2>/dev/null
[ -d "$W/ws_fp" ] || {
  $T convert.lua demo $M --dst-path "$W/ws_fp" 2>/dev/null
  cp -r "$W/ws_fp" "$W/ws_static"
  $T kv_qparams.lua --work-dir "$W/awq" --turbomind-dir "$W/ws_static/weights" --kv-sym false --num-tp 1 >/dev/null
}
row() { # name, model, eval flags
  local name=$1 model=$2; shift 2
  local ppl agree
  ppl=$($T eval.lua --model "$model" --max-windows "$N" "$@" 2>/dev/null | tail -1 | sed -n 's/.*"ppl":\([0-9.e+-]*\).*/\1/p')
  if [ "$name" = "bf16" ]; then agree="—"; else
    local kvflags=()
    for a in "$@"; do kvflags+=("$a"); done
    local line same frac
    line=$($T scripts/quant_agreement.lua --ref $M --model "$model" "${kvflags[@]}" 2>/dev/null | tail -1)
    same=$(echo "$line" | sed -n 's/.*"identical":\([0-9]*\).*/\1/p')
    frac=$(echo "$line" | sed -n 's/.*"matching_prefix_fraction":\([0-9.e+-]*\).*/\1/p')
    agree="$same/100, $frac"
  fi
  echo "| $name | $ppl | $agree |"
}
echo "| setting | ppl (first $N windows) | greedy vs bf16: identical prompts, matching-prefix token fraction |"
echo "|---|---|---|"
row bf16 $M
row "RTN w4g128" "$W/ws_rtn"
row "AWQ w4g128" "$W/ws_awq"
row "KV int8 online" $M --kv-cache-dtype int8 --kv-qparams online
row "KV int8 static" "$W/ws_static" --kv-cache-dtype int8 --kv-qparams static
row "KV int4 online" $M --kv-cache-dtype int4 --kv-qparams online
row "AWQ w4g128 + KV int8 online" "$W/ws_awq" --kv-cache-dtype int8 --kv-qparams online
