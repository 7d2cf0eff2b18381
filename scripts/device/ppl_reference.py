#!/usr/bin/env python3
"""Reference perplexity of an HF model folder on a text, by transformers, for tmrun eval.lua.

The definition (lua/tmrun/eval.lua computes exactly the same):
  * the whole text is tokenized once with the folder's tokenizer.json, no special
    tokens added (no BOS anywhere, not at window starts either);
  * windows of seqlen tokens start at 0, stride, 2*stride, ... while they fit; the
    final partial window is dropped;
  * window 0 scores its tokens 1..seqlen-1; every later window scores only its last
    `stride` tokens (HF's sliding-window recipe), which for stride == seqlen is its
    tokens 1..seqlen-1 again (the first has nothing to be predicted from);
  * each window runs alone from an empty cache; NLL = -log softmax in float64 of
    the fp32 logits; PPL = exp(sum NLL / number of scored tokens).
The model runs in fp32 (bf16 weights widened, TF32 off), which is what tmrun's CPU
backend computes.

Also prints the tokenization check the spec compares: the token count, the first
ids, and ids_hash = fold(h = (h * 31 + id + 1) mod 1000000007) from h = 0.

Usage: python3 ppl_reference.py --model DIR --text eval.txt --out ref.json
       [--config 512:512 --config 512:256 ...] [--ci-windows 4]
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import sys
import time

import torch
import transformers
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM


def ids_hash(ids):
    h = 0
    for i in ids:
        h = (h * 31 + i + 1) % 1000000007
    return h


def windows(n_tokens, seqlen, stride):
    """(begin, first scored position inside the window) for each full window."""
    out, b = [], 0
    while b + seqlen <= n_tokens:
        out.append((b, 1 if b == 0 else max(1, seqlen - stride)))
        b += stride
    return out


@torch.no_grad()
def perplexity(model, ids, seqlen, stride, max_windows=None, batch=16):
    wins = windows(len(ids), seqlen, stride)
    if max_windows is not None:
        wins = wins[:max_windows]
    t = torch.tensor(ids, dtype=torch.long, device="cuda")
    total, count = 0.0, 0
    per_window = []
    for i in range(0, len(wins), batch):
        chunk = wins[i:i + batch]
        x = torch.stack([t[b:b + seqlen] for b, _ in chunk])
        logits = model(input_ids=x).logits.double()  # [B][seqlen][vocab]
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        nll = -logp.gather(-1, x[:, 1:, None]).squeeze(-1)  # [B][seqlen-1]: nll of token p+1
        for j, (_, first) in enumerate(chunk):
            s = float(nll[j, first - 1:].sum())
            per_window.append(s / (seqlen - first))
            total += s
            count += seqlen - first
    return dict(seqlen=seqlen, stride=stride, windows=len(wins), scored_tokens=count, nll=total / count,
                ppl=math.exp(total / count), window_nll=[round(v, 6) for v in per_window[:8]])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", action="append", default=None, help="seqlen:stride (default 512:512, 512:256)")
    ap.add_argument("--ci-windows", type=int, default=4)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")

    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    ids = tok.encode(text, add_special_tokens=False).ids
    with open(os.path.join(args.model, "model.safetensors"), "rb") as f:
        weights_sha = hashlib.sha256(f.read()).hexdigest()
    with open(args.text, "rb") as f:
        text_sha = hashlib.sha256(f.read()).hexdigest()
    model = LlamaForCausalLM.from_pretrained(args.model, dtype=torch.float32).cuda().eval()

    t0 = time.time()
    results = []
    for spec in args.config or ["512:512", "512:256"]:
        seqlen, stride = (int(v) for v in spec.split(":"))
        r = perplexity(model, ids, seqlen, stride)
        print(f"seqlen {seqlen} stride {stride}: {r['windows']} windows, {r['scored_tokens']} tokens, "
              f"ppl {r['ppl']:.6f}", flush=True)
        results.append(r)
    ci = perplexity(model, ids, 512, 512, max_windows=args.ci_windows)
    print(f"ci slice (first {args.ci_windows} windows of 512): ppl {ci['ppl']:.6f}", flush=True)
    # The same, in bf16 on the GPU: how far the usual fast path is from the fp32 reference.
    bf = perplexity(model.to(torch.bfloat16), ids, 512, 512)
    out = dict(
        date=datetime.date.today().isoformat(), made_by="scripts/device/ppl_reference.py",
        transformers=transformers.__version__, torch=torch.__version__, device=torch.cuda.get_device_name(0),
        model=os.path.basename(os.path.normpath(args.model)), model_safetensors_sha256=weights_sha,
        text=os.path.basename(args.text), text_sha256=text_sha, text_bytes=len(text.encode("utf-8")),
        tokens=len(ids), first_ids=ids[:16], ids_hash=ids_hash(ids), precision="fp32, tf32 off",
        results=results, ci_slice=ci, bf16_512_512_ppl=bf["ppl"], seconds=time.time() - t0)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(json.dumps({k: v for k, v in out.items() if k not in ("results", "ci_slice")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
