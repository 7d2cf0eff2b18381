#!/usr/bin/env bash
# train.sh: the one device call that makes models/tmrun-demo and its perplexity reference.
#   here:       build/tmrun scripts/data/brown.lua --out .dev/brown
#   GPU machine (run with carry [".dev"]):  scripts/device/train.sh
# Leaves in $OUT: train.log, loss_curve.tsv, train_summary.json, ppl_reference.json,
# ppl.log and tmrun-demo.tar.gz.part00, part01... (the HF folder, split
# to pass the 16 MiB limit on returned files; cat them together) with its sha256.  The model is tarred even if a later
# step fails, so one call always brings back what it made.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:?OUT must name the output folder}
DATA=${DATA:-.dev/brown}
MINUTES=${MINUTES:-6.5}
export PYTHONUNBUFFERED=1
work=$(mktemp -d)
python3 scripts/device/train_demo.py --data "$DATA" --out "$work" --minutes "$MINUTES" 2>&1 | tee "$OUT/train.log"
rc=$?
cp "$work/loss_curve.tsv" "$work/train_summary.json" "$OUT/" 2>/dev/null
if [ -d "$work/tmrun-demo" ]; then
  # $OUT files come back only up to 16 MiB each: split the archive.
  tar -C "$work" -czf "$work/tmrun-demo.tar.gz" tmrun-demo
  split -b 15M -d "$work/tmrun-demo.tar.gz" "$OUT/tmrun-demo.tar.gz.part"
  sha256sum "$work/tmrun-demo.tar.gz" | cut -d' ' -f1 > "$OUT/tmrun-demo.tar.gz.sha256"
  python3 scripts/device/ppl_reference.py --model "$work/tmrun-demo" --text "$DATA/eval.txt" \
    --out "$OUT/ppl_reference.json" 2>&1 | tee "$OUT/ppl.log"
  rc2=$?
else
  echo "train.sh: no model folder was made" >&2
  rc2=1
fi
rm -rf "$work"
[ "$rc" -eq 0 ] && [ "$rc2" -eq 0 ]
