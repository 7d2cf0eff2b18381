-- Throughput benchmark in the style of LMDeploy's profile_generation: `batch`
-- requests at once, each `prompt` tokens in and exactly `output` tokens out
-- (ignore_eos), on a real model or on random weights made on the device.
--
--   tmrun bench_throughput.lua --random-weights llama2-7b --backend cuda --batches 1,16,64,128,256 --output 256
--   tmrun bench_throughput.lua models/tmrun-demo --batches 1,16
--
-- Per batch size: output tokens/s (all generated tokens over the wall time from
-- the first submit to the last token), first-token latency (submit to first
-- token, mean and max over the requests), per-token latency (gaps between a
-- request's consecutive tokens, p50 / p99 over all of them), and device memory
-- in use (weights + KV pool + buffers; the pool is sized to the batch's need, as
-- a fair comparison with a framework that allocates per request).  Timestamps
-- are the engine's own (tm_event.time), so polling from Lua adds no error.
-- At batch 1 the bandwidth limit (every step reads every weight once) is
-- reported beside the measurement when --bandwidth (GB/s) is given.
local args = require("tmrun.util.args")
local rm = require("tmrun.random_model")
local model_mod = require("tmrun.model")
local engine_mod = require("tmrun.engine")
local core = require("tmrun.core")
local json = require("tmrun.util.json")
local uv = require("luv")

local opts = args.parse(arg, {
  usage = "tmrun bench_throughput.lua [MODEL] [--random-weights llama2-7b] [--backend cuda] [--batches 1,16,64]",
  positional = { "model" },
  options = {
    ["random-weights"] = { type = "string", choices = { "llama2-7b", "100m", "tiny" },
      help = "a random model of this shape instead of MODEL, made where the backend keeps weights" },
    dtype = { type = "string", default = "fp16", choices = { "fp32", "fp16", "bf16" }, help = "random weights' dtype" },
    backend = { type = "string", default = "cuda", choices = { "cpu", "cuda" } },
    batches = { type = "string", default = "1,16,64,128,256", help = "comma-separated batch sizes" },
    prompt = { type = "int", default = 1, min = 1, max = 65536, help = "prompt tokens per request" },
    output = { type = "int", default = 256, min = 1, max = 65536, help = "output tokens per request" },
    temperature = { type = "number", default = 0, min = 0, max = 100 },
    ["top-k"] = { type = "int", default = 0, min = 0 },
    ["top-p"] = { type = "number", default = 1, min = 0, max = 1 },
    ["block-len"] = { type = "int", default = 64, min = 1, max = 4096, help = "cache_block_seq_len" },
    warmup = { type = "int", default = 8, min = 0, max = 4096, help = "output tokens of the untimed warm-up run" },
    bandwidth = { type = "number", default = 0, min = 0, help = "measured read bandwidth in GB/s, for the batch-1 limit" },
    threads = { type = "int", default = 0, min = 0, max = 512 },
    json = { type = "string", help = "write the results as JSON here" },
    profile = { type = "flag", help = "also print each batch's per-op time (a sync a step on CUDA: slower)" },
  },
})

if not opts.model and not opts.random_weights then
  io.stderr:write("bench_throughput: give a MODEL folder or --random-weights NAME\n")
  os.exit(2)
end

local function now() return uv.hrtime() / 1e9 end
local GiB = 1024 ^ 3

local function percentile(xs, p)
  if #xs == 0 then return 0 end
  table.sort(xs)
  local i = math.max(1, math.min(#xs, math.ceil(p / 100 * #xs)))
  return xs[i]
end

local function used_memory()
  if opts.backend ~= "cuda" then return nil end
  local free, total = core.cuda_memory()
  return free and (total - free) or nil
end

local batches = {}
for b in opts.batches:gmatch("%d+") do batches[#batches + 1] = tonumber(b) end
if #batches == 0 then
  io.stderr:write("bench_throughput: --batches needs at least one number\n")
  os.exit(2)
end
local session_len = opts.prompt + opts.output + 1

local mem_before = used_memory()
local t_load = now()
local m
if opts.random_weights then
  m = rm.open(opts.random_weights, { dtype = opts.dtype, backend = opts.backend, threads = opts.threads,
    session_len = session_len })
else
  local err
  m, err = model_mod.open(opts.model, { backend = opts.backend, threads = opts.threads })
  if not m then
    io.stderr:write("bench_throughput: " .. err .. "\n")
    os.exit(1)
  end
end
t_load = now() - t_load
local weight_bytes = m:weight_bytes()
-- a decode step reads every weight but the embedding table (one row of it)
local step_bytes = weight_bytes - m.cfg.vocab_size * m.cfg.hidden_size * (opts.dtype == "fp32" and 4 or 2)

local name = opts.random_weights and ("random " .. opts.random_weights .. " " .. opts.dtype) or opts.model
print(string.format("# tmrun bench_throughput: %s (%.2fB params, %.2f GiB of weights, made in %.1f s), backend %s",
  name, m:param_count() / 1e9, weight_bytes / GiB, t_load, opts.backend))
print(string.format("# %d prompt token(s) + %d output tokens a request (ignore_eos), temperature %g, top_k %d, top_p %g, %s",
  opts.prompt, opts.output, opts.temperature, opts.top_k, opts.top_p, os.date("!%Y-%m-%d %H:%M UTC")))

-- Bytes of one KV block: every layer's K and V of block_len tokens, in the cache
-- kind the backend keeps for these weights (fp16 on CUDA for 16-bit weights).
local function kv_block_bytes()
  local c = m.cfg
  local es = (opts.backend == "cuda" and (m.cfg.weight_type or opts.dtype) ~= "fp32") and 2 or 4
  return c.num_layer * 2 * c.kv_head_num * opts.block_len * c.size_per_head * es
end

local function prompts_for(b, vocab)
  local ps = {}
  for i = 1, b do
    local p = {}
    for t = 1, opts.prompt do p[t] = (i * 7919 + t * 104729) % (vocab - 2) + 1 end
    ps[i] = p
  end
  return ps
end

-- Submits b requests at once; returns their timelines.
local function run(eng, b, n_out)
  local reqs, t_submit = {}, {}
  local sopts = { max_new_tokens = n_out, ignore_eos = true, temperature = opts.temperature,
    top_k = opts.top_k, top_p = opts.top_p }
  for i, p in ipairs(prompts_for(b, m.vocab_size)) do
    t_submit[i] = now()
    reqs[i] = assert(eng:submit(p, sopts))
  end
  local res = { first = {}, gaps = {}, tokens = 0, t0 = t_submit[1], t_end = t_submit[1] }
  for i, r in ipairs(reqs) do
    local times = {}
    local done = false
    while not done do
      for _, ev in ipairs(r:events(-1)) do
        if ev.kind == "token" then times[#times + 1] = ev.time
        else
          done = true
          if ev.finish_reason == "error" then error("request failed: " .. tostring(ev.error)) end
        end
      end
    end
    r:close()
    if #times ~= n_out then error(string.format("request %d got %d tokens, want %d", i, #times, n_out)) end
    res.tokens = res.tokens + #times
    res.first[i] = times[1] - t_submit[i]
    for k = 2, #times do res.gaps[#res.gaps + 1] = times[k] - times[k - 1] end
    if times[#times] > res.t_end then res.t_end = times[#times] end
  end
  return res
end

local rows = {}
print()
print("| batch | output tok/s | first token ms (mean / max) | per-token ms p50 | p99 | device memory GiB | KV pool GiB | steps/s |")
print("|---|---|---|---|---|---|---|---|")
for _, b in ipairs(batches) do
  local blocks = b * math.ceil(session_len / opts.block_len) + 1
  local eng = assert(engine_mod.new({
    model = m, max_batch_size = b, session_len = session_len, cache_block_seq_len = opts.block_len,
    cache_max_entry_count = blocks, tokenizer = false, max_prefill_token_num = math.max(b * opts.prompt, 256),
    profile = opts.profile,
  }))
  if opts.warmup > 0 then run(eng, b, math.min(opts.warmup, opts.output)) end
  local st0 = eng:stats()
  local r = run(eng, b, opts.output)
  local st1 = eng:stats()
  local mem = used_memory()
  local wall = r.t_end - r.t0
  local first_sum, first_max = 0, 0
  for _, f in ipairs(r.first) do
    first_sum = first_sum + f
    if f > first_max then first_max = f end
  end
  local row = {
    batch = b, output_tok_s = r.tokens / wall, wall_s = wall,
    first_token_ms_mean = first_sum / #r.first * 1e3, first_token_ms_max = first_max * 1e3,
    per_token_ms_p50 = percentile(r.gaps, 50) * 1e3, per_token_ms_p99 = percentile(r.gaps, 99) * 1e3,
    device_memory_gib = mem and (mem - (mem_before or 0)) / GiB or nil,
    kv_pool_gib = blocks * kv_block_bytes() / GiB,
    steps = st1.steps - st0.steps,
    forward_ms_per_step = (st1.forward_seconds - st0.forward_seconds) / (st1.steps - st0.steps) * 1e3,
    sample_ms_per_step = (st1.sample_seconds - st0.sample_seconds) / (st1.steps - st0.steps) * 1e3,
  }
  rows[#rows + 1] = row
  print(string.format("| %d | %.1f | %.1f / %.1f | %.2f | %.2f | %s | %.2f | %.1f |", b, row.output_tok_s,
    row.first_token_ms_mean, row.first_token_ms_max, row.per_token_ms_p50, row.per_token_ms_p99,
    row.device_memory_gib and string.format("%.2f", row.device_memory_gib) or "-", row.kv_pool_gib,
    row.steps / wall))
  if opts.profile then row.profile = eng:profile() end
  io.stdout:flush()
  eng:close()
end

local out = { tool = "tmrun", model = name, backend = opts.backend, prompt = opts.prompt, output = opts.output,
  weight_bytes = weight_bytes, step_bytes = step_bytes, params = m:param_count(), date = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  rows = rows }
if opts.bandwidth > 0 and rows[1] and rows[1].batch == 1 then
  local limit = opts.bandwidth * 1e9 / step_bytes
  out.bandwidth_gbs, out.batch1_limit_tok_s = opts.bandwidth, limit
  print(string.format("\nbatch 1: %.1f tok/s = %.1f%% of the bandwidth limit %.1f tok/s (%.0f GB/s over %.2f GB a step)",
    rows[1].output_tok_s, 100 * rows[1].output_tok_s / limit, limit, opts.bandwidth, step_bytes / 1e9))
end
for _, row in ipairs(rows) do
  if row.profile then print(string.format("\n### per-op time, batch %d (warm-up included)\n\n%s", row.batch, row.profile)) end
end
if opts.json then
  local f = assert(io.open(opts.json, "w"))
  f:write(json.encode(out), "\n")
  f:close()
end
m:close()
