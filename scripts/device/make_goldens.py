#!/usr/bin/env python3
"""Golden references for tmrun's forward pass, made by HuggingFace transformers.

Runs on the GPU machine (PyTorch + transformers are there; nothing here needs a
GPU, but that is where transformers is installed).  For each model kind it
builds a small random model with transformers' own classes, saves it with
save_pretrained, reloads it, and stores in golden.safetensors:

  prompt      I32 [P]          the fixed prompt ids
  logits      F32 [P][vocab]   logits at every prompt position (fp32 forward)
  greedy      I32 [G]          G greedy tokens from model.generate (EOS disabled)
  greedy_gap  F32 [G]          top-1 minus top-2 logit at each greedy step, so a
                               near-tie can be told from a bug

Weights saved in bf16/fp16 are run in fp32 after loading (the values are the
rounded ones), exactly what tmrun's CPU backend computes with.

Usage: python3 make_goldens.py --out DIR [--stories DIR_OF_stories260K]
The results are committed under tests/data/goldens/; never edit them by hand.
"""
import argparse
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

PROMPT_LEN = 24
GREEDY = 32
VOCAB = 256


def base_kwargs(**kw):
    d = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
             rms_norm_eps=1e-6, initializer_range=0.15, tie_word_embeddings=False,
             bos_token_id=1, eos_token_id=2)
    d.update(kw)
    return d


# name -> (config class, model class, config kwargs, save dtype, save kwargs)
KINDS = {
    "llama_mha": (LlamaConfig, LlamaForCausalLM, base_kwargs(), torch.float32, {}),
    "llama3_gqa": (LlamaConfig, LlamaForCausalLM,
                   base_kwargs(num_attention_heads=4, num_key_value_heads=2, head_dim=16, rope_theta=500000.0,
                               max_position_embeddings=256,
                               rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                 high_freq_factor=4.0, original_max_position_embeddings=64)),
                   torch.bfloat16, {}),
    "llama_dynamic": (LlamaConfig, LlamaForCausalLM,
                      base_kwargs(max_position_embeddings=16, rope_scaling=dict(rope_type="dynamic", factor=2.0)),
                      torch.float32, {}),
    "llama_linear": (LlamaConfig, LlamaForCausalLM,
                     base_kwargs(num_key_value_heads=2, rope_scaling=dict(rope_type="linear", factor=4.0)),
                     torch.float16, {}),
    "qwen2_tied": (Qwen2Config, Qwen2ForCausalLM,
                   base_kwargs(num_key_value_heads=2, intermediate_size=128, tie_word_embeddings=True),
                   torch.float32, {}),
    "internlm_bias": (LlamaConfig, LlamaForCausalLM, base_kwargs(attention_bias=True), torch.float32, {}),
    "mistral_sharded": (MistralConfig, MistralForCausalLM,
                        base_kwargs(num_key_value_heads=2, sliding_window=None),
                        torch.float32, {"max_shard_size": "60KB"}),
}


def set_rope(cfg_kwargs):
    """transformers 5 spells RoPE settings as rope_parameters; older as rope_scaling."""
    rs = cfg_kwargs.pop("rope_scaling", None)
    theta = cfg_kwargs.pop("rope_theta", 10000.0)
    major = int(transformers.__version__.split(".")[0])
    if major >= 5:
        params = {"rope_type": "default", "rope_theta": theta}
        if rs:
            params.update(rs)
        cfg_kwargs["rope_parameters"] = params
    else:
        cfg_kwargs["rope_theta"] = theta
        if rs:
            cfg_kwargs["rope_scaling"] = rs
    return cfg_kwargs


def load_fp32(model_cls, path):
    model = model_cls.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model


def greedy_with_gaps(model_cls, path, prompt):
    model = load_fp32(model_cls, path)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    with torch.no_grad():
        out = model.generate(prompt[None, :], max_new_tokens=GREEDY, min_new_tokens=GREEDY, do_sample=False,
                             output_scores=True, return_dict_in_generate=True)
    ids = out.sequences[0, prompt.shape[0]:].to(torch.int32)
    gaps = []
    for s in out.scores:
        top = torch.topk(s[0].float(), 2).values
        gaps.append(float(top[0] - top[1]))
    assert ids.shape[0] == GREEDY, ids.shape
    return ids, torch.tensor(gaps, dtype=torch.float32)


def make_kind(name, out_dir):
    cfg_cls, model_cls, kw, dtype, save_kw = KINDS[name]
    torch.manual_seed(1234)
    cfg = cfg_cls(**set_rope(dict(kw)))
    model = model_cls(cfg).eval()
    path = os.path.join(out_dir, name)
    model.to(dtype).save_pretrained(path, safe_serialization=True, **save_kw)

    g = torch.Generator().manual_seed(99)
    prompt = torch.randint(3, VOCAB, (PROMPT_LEN,), generator=g)
    ref = load_fp32(model_cls, path)  # fresh instance: dynamic RoPE keeps state
    with torch.no_grad():
        logits = ref(prompt[None, :]).logits[0].float().contiguous()
    greedy, gaps = greedy_with_gaps(model_cls, path, prompt)
    save_file({"prompt": prompt.to(torch.int32), "logits": logits, "greedy": greedy, "greedy_gap": gaps},
              os.path.join(path, "golden.safetensors"),
              metadata={"transformers": transformers.__version__, "torch": torch.__version__})
    print(f"{name}: min greedy gap {float(gaps.min()):.4g}, logits absmax {float(logits.abs().max()):.4g}",
          flush=True)


def make_stories(src, out_dir):
    """The real trained stories260K: greedy ids from BOS, and logits along them."""
    model = load_fp32(LlamaForCausalLM, src)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    prompt = torch.tensor([1], dtype=torch.long)
    with torch.no_grad():
        out = model.generate(prompt[None, :], max_new_tokens=64, min_new_tokens=64, do_sample=False,
                             output_scores=True, return_dict_in_generate=True)
        seq = out.sequences[0]
        logits = load_fp32(LlamaForCausalLM, src)(seq[None, :]).logits[0].float().contiguous()
    gaps = torch.tensor([float(torch.topk(s[0], 2).values[0] - torch.topk(s[0], 2).values[1]) for s in out.scores])
    save_file({"prompt": prompt.to(torch.int32), "greedy": seq[1:].to(torch.int32).contiguous(),
               "logits": logits, "greedy_gap": gaps.float()},
              os.path.join(out_dir, "stories260k.safetensors"),
              metadata={"transformers": transformers.__version__, "torch": torch.__version__})
    print(f"stories260k: greedy {seq[1:17].tolist()} ..., min gap {float(gaps.min()):.4g}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--stories", default=None)
    ap.add_argument("--only", default=None, help="comma-separated kinds")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}", flush=True)
    kinds = args.only.split(",") if args.only else list(KINDS)
    for name in kinds:
        make_kind(name, args.out)
    if args.stories:
        make_stories(args.stories, args.out)
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write("# Golden references\n\nMade by `scripts/device/make_goldens.py` with transformers "
                f"{transformers.__version__} and torch {torch.__version__}; never edited by hand.\n"
                "Each folder is a HuggingFace model (save_pretrained) plus golden.safetensors "
                "(prompt, logits at every position, 32 greedy ids from generate, top-2 gaps).\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
