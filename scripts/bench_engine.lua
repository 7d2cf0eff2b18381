-- Engine benchmark: output tokens/s vs batch size on a random model, and the scheduler's time per step.
local args = require("tmrun.util.args")
local rm = require("tmrun.random_model")
local engine_mod = require("tmrun.engine")
local uv = require("luv")

local opts = args.parse(arg, {
  usage = "tmrun bench_engine.lua [--preset 100m] [--batches 1,4,16,64] [--prompt 16] [--output 32]",
  options = {
    preset = { type = "string", default = "100m", choices = { "100m", "tiny", "llama2-7b" } },
    dtype = { type = "string", default = "fp16", choices = { "fp32", "fp16", "bf16" } },
    batches = { type = "string", default = "1,4,16,64", help = "comma-separated batch sizes" },
    prompt = { type = "int", default = 16, min = 1, max = 4096, help = "prompt tokens per request" },
    output = { type = "int", default = 32, min = 1, max = 4096, help = "output tokens per request (ignore_eos)" },
    threads = { type = "int", default = 0, min = 0, max = 512 },
    backend = { type = "string", default = "cpu", choices = { "cpu", "cuda" } },
  },
})

local function now() return uv.hrtime() / 1e9 end

local batches = {}
for b in opts.batches:gmatch("%d+") do batches[#batches + 1] = tonumber(b) end
local max_batch = math.max(unpack(batches))
local session_len = opts.prompt + opts.output + 1
local m = rm.open(opts.preset, { dtype = opts.dtype, threads = opts.threads, session_len = session_len,
  backend = opts.backend })
local eng = assert(engine_mod.new({
  model = m, max_batch_size = max_batch, session_len = session_len, cache_block_seq_len = 64,
  cache_max_entry_count = max_batch * math.ceil(session_len / 64) + 1, tokenizer = false,
}))

print(string.format("# tmrun bench_engine: random %s (%.1fM params, %s), %d prompt + %d output tokens, backend %s, %s",
  opts.preset, m:param_count() / 1e6, opts.dtype, opts.prompt, opts.output, opts.backend, uv.cpu_info()[1].model))
print()
print("| batch | output tok/s | wall s | steps | schedule µs/step | forward ms/step | sample µs/step |")
print("|---|---|---|---|---|---|---|")
for _, b in ipairs(batches) do
  local before = eng:stats()
  local prompts = {}
  for i = 1, b do
    local p = {}
    for t = 1, opts.prompt do p[t] = (i * 131 + t * 7) % m.vocab_size end
    prompts[i] = p
  end
  local t0 = now()
  local outs = assert(eng:generate(prompts, { max_new_tokens = opts.output, ignore_eos = true }))
  local dt = now() - t0
  local produced = 0
  for _, o in ipairs(outs) do produced = produced + #o.ids end
  local st = eng:stats()
  local steps = st.steps - before.steps
  print(string.format("| %d | %.1f | %.2f | %d | %.1f | %.1f | %.1f |", b, produced / dt, dt, steps,
    (st.schedule_seconds - before.schedule_seconds) / steps * 1e6,
    (st.forward_seconds - before.forward_seconds) / steps * 1e3,
    (st.sample_seconds - before.sample_seconds) / steps * 1e6))
end
eng:close()
m:close()
