#!/usr/bin/env python3
"""Train tmrun's embedded default model (models/tmrun-demo) on the Brown corpus.

Runs on the GPU machine (torch, transformers, tokenizers are there).  Input is the
output of `tmrun scripts/data/brown.lua --out DIR` (train.txt, val.txt; eval.txt is
never read here).  Steps, all seeded:

1. A byte-level BPE tokenizer (GPT-2 style ByteLevel pre-tokenizer and decoder,
   no normalizer, no BOS added) with 8192 ids, trained on train.txt only.  Ids 0-2
   are the special tokens <|endoftext|>, <|im_start|>, <|im_end|>.
2. The training stream: every train file is one document followed by
   <|endoftext|>; then, so that the chat template means something to the model,
   ChatML conversations cut from consecutive sentences of a seeded 20% of the train
   files (user = 1-2 sentences, assistant = the next 2-4), each turn closed by
   <|im_end|>.  val.txt is tokenized whole, exactly as eval perplexity does.
3. A LlamaForCausalLM with GQA (hidden 384, 6 layers, 6 heads of 64, 2 KV heads,
   intermediate 1024, untied lm_head), bf16 autocast, AdamW, warmup + cosine.
   Brown is small (~1.3M tokens) and the H200 fast, so the wall-clock budget is
   spent on a short sweep of (epochs, dropout) runs rather than one long run; each
   run keeps its best weights by held-out (val) loss, and the best of all runs is
   exported.  Dropout is applied by hooks on the embedding and on every o_proj and
   down_proj output (LlamaForCausalLM has no residual dropout of its own); the
   hooks are training-only and not part of the exported model.
4. Export: a standard HF folder, bf16 model.safetensors, tokenizer.json,
   tokenizer_config.json with a ChatML chat_template, generation_config.json.

Every run stops at the global wall-clock deadline (--minutes); the best model so far
is exported after each run, so a budget cut short still leaves a model.

Usage: python3 train_demo.py --data DIR --out DIR [--minutes 6.5] [--seed 1234]
Writes OUT/tmrun-demo/ (the model), OUT/loss_curve.tsv, OUT/train_summary.json.
"""
import argparse
import json
import math
import os
import random
import sys
import time
import traceback

import torch
import torch.nn.functional as F
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EOT, IM_START, IM_END = 0, 1, 2
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

MODEL = dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=6,
             num_key_value_heads=2, head_dim=64, max_position_embeddings=1024, rms_norm_eps=1e-5)

# (epochs, dropout, peak lr), cheapest first so the deadline cuts the longest.  The sweep
# 12:0.1:1.5e-3,24:0.2:1.5e-3,48:0.3:1.5e-3,96:0.35:1.5e-3 was run once (models/README.md
# has its curve): the first config won, so it is the default and what models/ holds.
SWEEP = "12:0.1:1.5e-3"


def log(msg):
    print(msg, flush=True)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def train_tokenizer(text, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    # One document a train_from_iterator item: the BPE counts do not depend on order.
    tok.train_from_iterator(text.split("\n\n"), trainer=trainer)
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    return tok


def chat_documents(train_text, rng):
    """ChatML conversations from consecutive sentences of a seeded 20% of the train files."""
    docs = []
    for doc in train_text.split("\n\n"):
        if rng.random() >= 0.2:
            continue
        sents = [s for s in doc.split("\n") if len(s.split()) >= 3]
        i, turns = 0, []
        while i + 3 <= len(sents):
            nu, na = rng.randint(1, 2), rng.randint(2, 4)
            user, asst = " ".join(sents[i:i + nu]), " ".join(sents[i + nu:i + nu + na])
            i += nu + na
            turns.append(f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{asst}<|im_end|>\n")
            if len(turns) == 3 or i + 3 > len(sents):
                docs.append("".join(turns))
                turns = []
    return docs


def build_stream(tok, train_text, rng):
    plain = train_text.split("\n\n")
    chats = chat_documents(train_text, rng)
    ids = []
    for enc in tok.encode_batch(plain + chats, add_special_tokens=False):
        ids.extend(enc.ids)
        ids.append(EOT)
    n_chat = sum(len(e.ids) + 1 for e in tok.encode_batch(chats, add_special_tokens=False))
    return torch.tensor(ids, dtype=torch.long), len(chats), n_chat


def add_dropout_hooks(model, p):
    hooks = []

    def drop(module, inputs, output):
        return F.dropout(output, p=p, training=module.training)

    hooks.append(model.model.embed_tokens.register_forward_hook(drop))
    for layer in model.model.layers:
        hooks.append(layer.self_attn.o_proj.register_forward_hook(drop))
        hooks.append(layer.mlp.down_proj.register_forward_hook(drop))
    return hooks


def lm_loss(model, x):
    """Mean NLL of x[:, 1:] given the prefix; fp32 cross-entropy over bf16 logits."""
    logits = model(input_ids=x).logits
    return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))


@torch.no_grad()
def held_out_loss(model, windows, batch):
    model.eval()
    total, count = 0.0, 0
    for i in range(0, windows.shape[0], batch):
        x = windows[i:i + batch]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = lm_loss(model, x)
        n = x.shape[0] * (x.shape[1] - 1)
        total += float(loss) * n
        count += n
    model.train()
    return total / count


def epoch_windows(stream, seqlen, gen):
    """Non-overlapping windows from a random offset, shuffled: one epoch of the stream."""
    off = int(torch.randint(0, seqlen, (1,), generator=gen))
    n = (stream.numel() - off) // seqlen
    w = stream[off:off + n * seqlen].view(n, seqlen)
    return w[torch.randperm(n, generator=gen)]


def make_model(dropout, seed):
    torch.manual_seed(seed)
    rope = {"rope_type": "default", "rope_theta": 10000.0}
    kw = dict(MODEL, vocab_size=8192, hidden_act="silu", initializer_range=0.02, tie_word_embeddings=False,
              bos_token_id=EOT, eos_token_id=[IM_END, EOT], pad_token_id=EOT, attention_dropout=0.0)
    if int(transformers.__version__.split(".")[0]) >= 5:
        kw["rope_parameters"] = rope
    else:
        kw["rope_theta"] = rope["rope_theta"]
    model = LlamaForCausalLM(LlamaConfig(**kw)).cuda()
    return model


def train_run(run, cfg, data, args, deadline, curve):
    epochs, dropout, lr = cfg
    model = make_model(dropout, args.seed + run)
    hooks = add_dropout_hooks(model, dropout)
    gen = torch.Generator().manual_seed(args.seed + 100 + run)
    steps_per_epoch = (data["train"].numel() // args.seqlen) // args.batch
    total = epochs * steps_per_epoch
    warmup = max(1, min(100, total // 10))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))))
    eval_every = max(1, steps_per_epoch // 2)
    best = (float("inf"), None, 0)
    step, t0, stopped = 0, time.time(), "planned steps done"
    log(f"run {run}: epochs {epochs} dropout {dropout} lr {lr}: {total} steps of {args.batch}x{args.seqlen}")
    while step < total:
        windows = epoch_windows(data["train"], args.seqlen, gen).cuda(non_blocking=True)
        for b in range(steps_per_epoch):
            if step >= total:
                break
            if time.time() > deadline:
                stopped = "wall-clock budget reached"
                break
            x = windows[b * args.batch:(b + 1) * args.batch]
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = lm_loss(model, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            if step % eval_every == 0 or step == total:
                val = held_out_loss(model, data["val"], 64)
                tr = float(loss)
                curve.write(f"{run}\t{step}\t{step / steps_per_epoch:.2f}\t{tr:.4f}\t{val:.4f}\t"
                            f"{time.time() - t0:.1f}\n")
                curve.flush()
                log(f"  run {run} step {step}/{total} epoch {step / steps_per_epoch:.2f} "
                    f"train {tr:.4f} val {val:.4f} (ppl {math.exp(val):.2f}) {time.time() - t0:.0f}s")
                if val < best[0]:
                    best = (val, {k: v.detach().clone() for k, v in model.state_dict().items()}, step)
        if stopped != "planned steps done":
            break
    for h in hooks:
        h.remove()
    tok_s = step * args.batch * args.seqlen / max(1e-9, time.time() - t0)
    log(f"run {run}: {stopped} at step {step}; best val {best[0]:.4f} at step {best[2]}; {tok_s / 1e6:.2f}M tok/s")
    return dict(run=run, epochs=epochs, dropout=dropout, lr=lr, planned_steps=total, steps=step, stopped=stopped,
                best_val=best[0], best_step=best[2], tokens_per_s=tok_s), model, best[1]


def export(model, state, tok, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    model.load_state_dict(state)
    model.config.use_cache = True
    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    model.to(torch.float32)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    tcfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
        "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False,
        "model_max_length": MODEL["max_position_embeddings"], "chat_template": CHAT_TEMPLATE,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tcfg, f, indent=2)
        f.write("\n")
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, f, indent=2)
        f.write("\n")
    GenerationConfig(bos_token_id=EOT, eos_token_id=[IM_END, EOT], pad_token_id=EOT, do_sample=True,
                     temperature=0.8, top_p=0.95, max_new_tokens=256).save_pretrained(out_dir)
    # save_pretrained may also write a chat_template.jinja or other side files; keep the folder standard.
    log(f"exported {out_dir}: {sorted(os.listdir(out_dir))}")


def check_export(out_dir, tok):
    """Loud, not fatal: the folder must load back with transformers and render the template."""
    try:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(out_dir)
        msgs = [{"role": "user", "content": "Hello there."}]
        text = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        assert text == "<|im_start|>user\nHello there.<|im_end|>\n<|im_start|>assistant\n", repr(text)
        sample = "The jury said it did find that many of Georgia's laws \"are outmoded\"."
        assert hf(sample, add_special_tokens=False)["input_ids"] == tok.encode(sample, add_special_tokens=False).ids
        m = LlamaForCausalLM.from_pretrained(out_dir, dtype=torch.float32).cuda().eval()
        ids = hf(text, return_tensors="pt", add_special_tokens=False)["input_ids"].cuda()
        out = m.generate(ids, max_new_tokens=40, do_sample=False)
        log("check: template ok; greedy reply: " + repr(hf.decode(out[0, ids.shape[1]:])))
        start = hf("The", return_tensors="pt", add_special_tokens=False)["input_ids"].cuda()
        torch.manual_seed(0)
        out = m.generate(start, max_new_tokens=60, do_sample=True, temperature=0.8, top_p=0.95)
        log("check: sampled text: " + repr(hf.decode(out[0])))
        return True
    except Exception:
        log("CHECK FAILED (the model is exported anyway):\n" + traceback.format_exc())
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="output folder of scripts/data/brown.lua")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=6.5, help="wall-clock budget for tokenizer + training")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--sweep", default=SWEEP, help="comma-separated epochs:dropout:lr runs")
    args = ap.parse_args()
    sweep = [(int(e), float(d), float(lr)) for e, d, lr in (c.split(":") for c in args.sweep.split(","))]
    t_start = time.time()
    deadline = t_start + args.minutes * 60
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"device {torch.cuda.get_device_name(0)}")

    train_text, val_text = read(os.path.join(args.data, "train.txt")), read(os.path.join(args.data, "val.txt"))
    tok = train_tokenizer(train_text, 8192)
    log(f"tokenizer: {tok.get_vocab_size()} ids ({time.time() - t_start:.1f}s)")
    stream, n_chat_docs, n_chat_tokens = build_stream(tok, train_text, random.Random(args.seed))
    val_ids = torch.tensor(tok.encode(val_text, add_special_tokens=False).ids, dtype=torch.long)
    nv = val_ids.numel() // args.seqlen
    data = {"train": stream, "val": val_ids[:nv * args.seqlen].view(nv, args.seqlen).cuda()}
    log(f"train stream {stream.numel()} tokens ({n_chat_docs} chat documents, {n_chat_tokens} tokens); "
        f"val {val_ids.numel()} tokens, {nv} windows of {args.seqlen}")

    os.makedirs(args.out, exist_ok=True)
    model_dir = os.path.join(args.out, "tmrun-demo")
    runs, best = [], (float("inf"), None, None)
    with open(os.path.join(args.out, "loss_curve.tsv"), "w") as curve:
        curve.write("run\tstep\tepoch\ttrain_loss\tval_loss\tseconds\n")
        for run, cfg in enumerate(sweep):
            if time.time() > deadline - 10:
                log(f"run {run} {cfg}: skipped, budget spent")
                break
            info, model, state = train_run(run, cfg, data, args, deadline, curve)
            runs.append(info)
            if state is not None and info["best_val"] < best[0]:
                best = (info["best_val"], run, state)
                export(model, state, tok, model_dir)
            del model
            torch.cuda.empty_cache()
    if best[2] is None:
        raise RuntimeError("no run produced a checkpoint")
    ok = check_export(model_dir, tok)
    n_params = sum(p.numel() for p in LlamaForCausalLM.from_pretrained(model_dir).parameters())
    summary = dict(seed=args.seed, minutes=args.minutes, seqlen=args.seqlen, batch=args.batch, model=MODEL,
                   vocab_size=8192, params=n_params, train_tokens=stream.numel(), chat_docs=n_chat_docs,
                   chat_tokens=n_chat_tokens, val_tokens=val_ids.numel(), sweep=runs, chosen_run=best[1],
                   chosen_val_loss=best[0], chosen_val_ppl=math.exp(best[0]), export_check=ok,
                   seconds=time.time() - t_start, torch=torch.__version__, transformers=transformers.__version__)
    with open(os.path.join(args.out, "train_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    log(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
