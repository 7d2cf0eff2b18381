#!/usr/bin/env python3
"""HuggingFace transformers side of tmrun's throughput benchmark (issue 8).

The scenario is LMDeploy's profile_generation: a Llama-2-7B-shaped model (hidden 4096,
32 layers, 32 heads = 32 kv heads, intermediate 11008, vocab 32000) with random fp16
weights made on the GPU (no checkpoint), 1 prompt token per sequence, --new-tokens
output tokens with EOS disabled, greedy, for each batch size and each mode:

  eager   model.generate(...): dynamic cache, the default attention implementation;
  static  model.generate(..., cache_implementation="static"): on CUDA, transformers
          then compiles the decode step itself (torch.compile with its CompileConfig
          defaults: inductor, mode "reduce-overhead" = CUDA graphs); prefill stays eager.

Each (mode, batch) is warmed up first (static: one full generate, which is where the
compilation happens; eager: a short one, there is nothing to compile) and that time is
reported apart. Then one timed generate gives out tok/s (batch * new tokens / wall time,
synchronised) and, through a LogitsProcessor that synchronises and stamps the clock each
step, the per-token latency p50/p99. The processor runs outside the compiled region and
generate() already synchronises every step (its stop check reads a GPU flag), so the
extra sync breaks no graph and costs little; static runs are timed once more without it
(out_tok_s_unclocked) to show that. First-token latency is the median of 3 generates with
max_new_tokens=1 (prompt + first token, generate()'s own setup included).

Usage: python3 scripts/device/bench_hf.py [--batch 1,16,64,128,256] [--modes eager,static]
       [--new-tokens 256] [--max-seconds 420] [--json $OUT/hf.json]
Needs PyTorch + transformers (5.x; 4.4x should do) and a CUDA GPU; --help needs neither.
"""
import argparse
import datetime
import json
import math
import sys
import time
import traceback

LLAMA2_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                 hidden_act="silu", tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                 pad_token_id=0, initializer_range=0.02)
DEFAULT_FIRST = "static:1,static:64,eager:1,eager:64"


def int_list(text):
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"want a comma list of positive integers, got {text!r}")
    return values


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int_list, default=[1, 16, 64, 128, 256], help="batch sizes (1,16,64,128,256)")
    p.add_argument("--modes", default="eager,static", help="comma list of eager, static (eager,static)")
    p.add_argument("--first", default=DEFAULT_FIRST,
                   help=f"mode:batch runs to do before all others, in this order ({DEFAULT_FIRST})")
    p.add_argument("--new-tokens", type=int, default=256, help="output tokens per sequence (256)")
    p.add_argument("--max-seconds", type=float, default=420.0,
                   help="start no (mode, batch) run that the last run of its mode says would end past this "
                        "many seconds after the script started (420)")
    p.add_argument("--eager-warmup-tokens", type=int, default=32, help="tokens of the eager warm-up generate (32)")
    p.add_argument("--json", help="write all results here")
    p.add_argument("--layers", type=int, default=32, help="decoder layers (32; fewer for a quick smoke run)")
    p.add_argument("--rms-eps", type=float, default=1e-5, help="RMSNorm epsilon (1e-5)")
    p.add_argument("--attn", default=None, help="attn_implementation to force (default: transformers' choice)")
    p.add_argument("--seed", type=int, default=1234)
    args = p.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in ("eager", "static")]
    if bad or not args.modes:
        p.error(f"--modes takes eager and/or static, got {args.modes}")
    if args.new_tokens < 2:
        p.error(f"--new-tokens must be at least 2 (per-token latency needs two steps), got {args.new_tokens}")
    return args


def plan_runs(modes, batches, first):
    """The (mode, batch) list: --first's entries that were asked for, then the rest by mode, batch."""
    combos = [(m, b) for m in modes for b in batches]
    head = []
    for item in first.split(","):
        mode, _, batch = item.strip().partition(":")
        if batch.isdigit() and (mode, int(batch)) in combos and (mode, int(batch)) not in head:
            head.append((mode, int(batch)))
    return head + [c for c in combos if c not in head]


def percentile(values, q):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100.0 * len(s)) - 1))]


def build_model(torch, transformers, args):
    """Random fp16 Llama-2-7B shape straight on the GPU, every matrix drawn from N(0, 0.02)."""
    kw = dict(LLAMA2_7B, num_hidden_layers=args.layers, rms_norm_eps=args.rms_eps)
    try:  # transformers 5.x keeps theta in rope_parameters
        config = transformers.LlamaConfig(**kw, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    except (TypeError, ValueError) as e:
        print(f"note: LlamaConfig(rope_parameters=...) refused ({e}); using rope_theta", flush=True)
        config = transformers.LlamaConfig(**kw, rope_theta=10000.0)
    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16)  # build in fp16: no fp32 copy of 13.5 GB on the way
    try:
        with torch.device("cuda"):
            model = transformers.LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(old_dtype)
    model = model.to(device="cuda", dtype=torch.float16).eval().requires_grad_(False)
    if args.attn:
        if hasattr(model, "set_attn_implementation"):  # transformers >= 4.56
            model.set_attn_implementation(args.attn)
        else:
            model.config._attn_implementation = args.attn
    torch.manual_seed(args.seed)
    with torch.no_grad():  # our own draw, so the weights do not depend on the library's init path
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02)
    w = model.model.layers[0].self_attn.q_proj.weight
    std = float(w.float().std())
    if not 0.01 < std < 0.04:
        raise RuntimeError(f"q_proj weight std is {std:.4g}, not about 0.02: the random init did not happen")
    # EOS off the way scripts/device/make_goldens.py does it: every sequence gets all its tokens
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model, std


def make_step_clock(torch, base):
    class StepClock(base):
        """Stamps a synchronised host clock each time generate() has the next token's logits."""

        def __init__(self):
            self.times = []

        def __call__(self, input_ids, scores):
            torch.cuda.synchronize()
            self.times.append(time.perf_counter())
            return scores
    return StepClock


def forget_cache(torch, model, mode):
    """Drop generate()'s kept static cache (it would count in the next run's peak memory) and,
    for static runs, the compiled graphs, so each batch size compiles with static shapes the
    way a one-batch-size user's process would."""
    for name in ("_cache", "_compiled_call", "_last_compile_config"):
        if hasattr(model, name):
            delattr(model, name)
    if mode == "static":
        torch._dynamo.reset()
    torch.cuda.empty_cache()


def timed_generate(torch, model, ids, **kw):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(ids, **kw)
    torch.cuda.synchronize()
    return (out.sequences if hasattr(out, "sequences") else out), time.perf_counter() - t0


def run_one(torch, transformers, model, mode, batch, args):
    n = args.new_tokens
    forget_cache(torch, model, mode)
    g = torch.Generator(device="cuda").manual_seed(args.seed + batch)
    ids = torch.randint(3, model.config.vocab_size, (batch, 1), device="cuda", generator=g)
    kw = dict(attention_mask=torch.ones_like(ids), do_sample=False, pad_token_id=0)
    if mode == "static":
        kw["cache_implementation"] = "static"
    # The static warm-up must be full length: a shorter one would size the cache smaller and
    # the timed run would make a new cache and capture new graphs.
    warm = n if mode == "static" else min(n, args.eager_warmup_tokens)
    _, warm_s = timed_generate(torch, model, ids, max_new_tokens=warm, min_new_tokens=warm, **kw)
    compiled = hasattr(model, "_compiled_call")
    if mode == "static" and not compiled:
        print("note: static cache ran but generate() did not compile the decode step", flush=True)

    torch.cuda.reset_peak_memory_stats()
    clock = make_step_clock(torch, transformers.LogitsProcessor)()
    seqs, wall = timed_generate(torch, model, ids, max_new_tokens=n, min_new_tokens=n,
                                logits_processor=transformers.LogitsProcessorList([clock]), **kw)
    peak = torch.cuda.max_memory_allocated()
    # The clock's sync could cost the CUDA-graph path more than eager's 60 ms steps; a static
    # run is seconds, so time it once more without the clock to show that it does not.
    unclocked = None
    if mode == "static":
        unclocked = batch * n / timed_generate(torch, model, ids, max_new_tokens=n, min_new_tokens=n, **kw)[1]
    steps = [(b - a) * 1e3 for a, b in zip(clock.times, clock.times[1:])]
    first = sorted(timed_generate(torch, model, ids, max_new_tokens=1, min_new_tokens=1, **kw)[1]
                   for _ in range(3))[1]
    new_tokens = int(seqs.shape[1]) - 1
    return dict(mode=mode, batch=batch, new_tokens=new_tokens, out_tok_s=batch * new_tokens / wall,
                out_tok_s_unclocked=unclocked, wall_s=wall, first_token_ms=first * 1e3,
                step_p50_ms=percentile(steps, 50), step_p99_ms=percentile(steps, 99),
                step_mean_ms=sum(steps) / len(steps), steps_timed=len(clock.times), peak_gib=peak / 2**30,
                warmup_s=warm_s, warmup_tokens=warm, compiled=compiled,
                tokens_ok=tuple(seqs.shape) == (batch, 1 + n) and len(clock.times) == n)


def print_table(meta, results):
    print(f"\n{meta['gpu']}, torch {meta['torch']}, transformers {meta['transformers']}, "
          f"attn {meta['attn_implementation']}, {meta['date']}")
    print(f"{meta['params'] / 1e9:.2f}B params, {meta['weight_bytes'] / 1e9:.2f} GB fp16 weights "
          f"({meta['decode_weight_bytes'] / 1e9:.2f} GB read per decode step), {meta['new_tokens']} new tokens\n")
    print("| mode | batch | out tok/s | first token ms | per-token p50 ms | p99 ms | peak GiB | warm-up s "
          "| tokens ok |\n|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['batch']} | {r['out_tok_s']:,.1f} | {r['first_token_ms']:.1f} | "
              f"{r['step_p50_ms']:.2f} | {r['step_p99_ms']:.2f} | {r['peak_gib']:.1f} | {r['warmup_s']:.1f} | "
              f"{'yes' if r['tokens_ok'] else 'NO'} |")


def main():
    args = parse_args()
    t_start = time.perf_counter()
    import torch
    import transformers
    if not torch.cuda.is_available():
        sys.exit("bench_hf.py needs a CUDA GPU")
    model, std = build_model(torch, transformers, args)
    params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    embed = model.get_input_embeddings().weight
    meta = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, transformers=transformers.__version__,
                attn_implementation=getattr(model.config, "_attn_implementation", None),
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                params=params, weight_bytes=weight_bytes,
                decode_weight_bytes=weight_bytes - embed.numel() * embed.element_size(),
                layers=args.layers, rms_eps=args.rms_eps, new_tokens=args.new_tokens, seed=args.seed,
                weight_std=std, rope=getattr(model.config, "rope_parameters", None)
                or getattr(model.config, "rope_theta", None), build_s=time.perf_counter() - t_start)
    print(json.dumps(meta, default=str), flush=True)

    results, skipped, errors, last_s, broken = [], [], [], {}, set()
    for mode, batch in plan_runs(args.modes, args.batch, args.first):
        elapsed = time.perf_counter() - t_start
        if mode in broken or elapsed + last_s.get(mode, 0.0) > args.max_seconds:
            why = "mode failed earlier" if mode in broken else f"time budget ({elapsed:.0f} s used)"
            skipped.append(dict(mode=mode, batch=batch, why=why))
            print(f"skip {mode} batch {batch}: {why}", flush=True)
            continue
        t0 = time.perf_counter()
        try:
            r = run_one(torch, transformers, model, mode, batch, args)
        except Exception as e:  # a failed mode (e.g. compilation) must not cost the other results
            traceback.print_exc()
            errors.append(dict(mode=mode, batch=batch, error=f"{type(e).__name__}: {e}"))
            print(f"error {mode} batch {batch}: {type(e).__name__}: {e}; skipping the rest of {mode}", flush=True)
            broken.add(mode)
            forget_cache(torch, model, mode)
            continue
        last_s[mode] = time.perf_counter() - t0
        r["weight_gbps_p50"] = meta["decode_weight_bytes"] / (r["step_p50_ms"] * 1e-3) / 1e9
        results.append(r)
        print("result " + json.dumps(r), flush=True)

    meta["total_s"] = time.perf_counter() - t_start
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, results=results, skipped=skipped, errors=errors), f, indent=1, default=str)
    print_table(meta, results)
    for s in skipped:
        print(f"skipped: {s['mode']} batch {s['batch']} ({s['why']})")
    for e in errors:
        print(f"failed: {e['mode']} batch {e['batch']}: {e['error']}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
