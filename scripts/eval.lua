-- Perplexity of a model on the Brown eval split or a text file; prints one JSON line.
--
--   tmrun eval.lua [--model DIR] [--dataset brown-eval|FILE] [--seqlen 512] [--stride 512]
--                  [--backend cpu|cuda] [--kv-cache-dtype fp16|int8|int4] [--quant-policy 0|4|8]
--                  [--kv-qparams auto|online|static] [--chunk N] [--max-windows N] [--threads N]
--
-- The definition (windows, scoring, no BOS) is in lua/tmrun/eval.lua and docs/QUALITY.md;
-- scripts/device/ppl_reference.py computes the same with transformers.  Without --model
-- the shipped default model (models/tmrun-demo) is used.  A progress bar goes to stderr
-- (only when stderr is a terminal, unless --progress); the result is the last stdout line.
local cjson = require("cjson")
local uv = require("luv")
local args = require("tmrun.util.args")
local config = require("tmrun.config")
local default_model = require("tmrun.default_model")
local eval = require("tmrun.eval")
local model = require("tmrun.model")
local tokenizer = require("tmrun.tokenizer")

local opts = args.parse(arg, {
  usage = "tmrun eval.lua [--model DIR] [--dataset brown-eval|FILE] [--seqlen 512] [--stride 512] [options]",
  options = {
    model = { type = "string", help = "HF folder or workspace (default: the shipped models/tmrun-demo)" },
    dataset = { type = "string", default = "brown-eval", help = "brown-eval, or a UTF-8 text file" },
    seqlen = { type = "int", default = 512, min = 2, max = 1048576, help = "tokens a window" },
    stride = { type = "int", min = 1, max = 1048576, help = "tokens between window starts (default seqlen)" },
    backend = { type = "string", default = "cpu", choices = { "cpu", "cuda" } },
    ["quant-policy"] = { type = "int", min = 0, max = 8, help = "KV cache: 0 fp, 4 int8 (seed LMDeploy), 8 int8" },
    ["kv-cache-dtype"] = { type = "string", choices = { "fp16", "int8", "int4" }, help = "KV cache kind" },
    ["kv-qparams"] = { type = "string", choices = { "auto", "online", "static" },
      help = "quantized KV: static (past_kv_scale) or online per-token params; auto: static when present" },
    chunk = { type = "int", default = 0, min = 0, max = 4096, help = "tokens per forward call (0: 512)" },
    ["max-windows"] = { type = "int", min = 1, help = "evaluate only the first N windows" },
    threads = { type = "int", default = 0, min = 0, max = 512, help = "CPU threads (0: one per core)" },
    progress = { type = "flag", help = "draw the progress bar even when stderr is not a terminal" },
  },
})

local function die(msg)
  io.stderr:write("error: ", msg, "\n")
  os.exit(1)
end

if opts.quant_policy and opts.quant_policy ~= 0 and opts.quant_policy ~= 4 and opts.quant_policy ~= 8 then
  die("--quant-policy must be 0, 4 or 8, got " .. opts.quant_policy)
end
local stride = opts.stride or opts.seqlen
if stride > opts.seqlen then
  die(string.format("--stride must be at most --seqlen (%d), got %d", opts.seqlen, stride))
end

local dir, derr = default_model.resolve(opts.model)
if not dir then die(derr) end
local text, terr = eval.dataset_text(opts.dataset)
if not text then die(terr) end

local overrides = { session_len = math.max(opts.seqlen, 1) }
overrides.quant_policy = opts.quant_policy
overrides.kv_cache_dtype = opts.kv_cache_dtype
overrides.kv_qparams = opts.kv_qparams
local m, merr = model.open(dir, { backend = opts.backend, threads = opts.threads, overrides = overrides })
if not m then die(merr) end
if opts.seqlen > m.cfg.max_position_embeddings then
  die(string.format("--seqlen %d is more than the model's max_position_embeddings %d", opts.seqlen,
    m.cfg.max_position_embeddings))
end

local tok = tokenizer.load(m.tokenizer_dir)
local ids = tok:encode(text, { add_special = false })
tok:close()

local show = opts.progress or uv.guess_handle(2) == "tty"
local function bar(i, n, partial)
  if not show then return end
  local width = 30
  local done = math.floor(width * i / n)
  local rate = partial.seconds > 0 and i * opts.seqlen / partial.seconds or 0
  io.stderr:write(string.format("\r[%s%s] %d/%d windows  ppl %.3f  %.0f tok/s", string.rep("#", done),
    string.rep(".", width - done), i, n, partial.ppl, rate))
  if i == n then io.stderr:write("\n") end
end

local kv_dtype = config.kv_dtype(m.cfg)
local kv_qparams = m.cfg.kv_qparams
local r, err = eval.perplexity(m, ids, { seqlen = opts.seqlen, stride = stride, max_windows = opts.max_windows,
  chunk = opts.chunk, on_window = bar })
m:close()
if not r then die(err) end

local out = {
  model = dir, dataset = opts.dataset, text_bytes = #text, tokens = r.tokens, ids_hash = eval.ids_hash(ids),
  seqlen = r.seqlen, stride = r.stride, windows = r.windows, scored_tokens = r.scored_tokens,
  backend = opts.backend, quant_policy = m.cfg.quant_policy, kv_cache_dtype = kv_dtype, kv_qparams = kv_qparams,
  chunk = r.chunk, nll = r.nll, ppl = r.ppl,
  seconds = r.seconds, tokens_per_s = r.tokens_per_s,
}
io.stdout:write(cjson.encode(out), "\n")
