-- Device memory of a served model: weights, the KV pool a batch of full-length
-- sessions needs, and the runner's buffers, measured (cudaMemGetInfo before and
-- after the engine exists) for each KV cache kind, context length and batch.
--
--   tmrun bench_memory.lua --random-weights llama2-7b --contexts 2048,4096 --batches 1,16,64
--
-- The KV pool is sized to exactly the blocks batch x context tokens need (as
-- cache_max_entry_count = a block count), so the table shows what the numbers
-- cost, not the 90% of free memory a server takes by default.
local args = require("tmrun.util.args")
local rm = require("tmrun.random_model")
local model_mod = require("tmrun.model")
local engine_mod = require("tmrun.engine")
local core = require("tmrun.core")

local opts = args.parse(arg, {
  usage = "tmrun bench_memory.lua [MODEL] [--random-weights llama2-7b] [--contexts 2048,4096] [--batches 1,16,64]",
  positional = { "model" },
  options = {
    ["random-weights"] = { type = "string", choices = { "llama2-7b", "100m", "tiny" } },
    dtype = { type = "string", default = "fp16", choices = { "fp32", "fp16", "bf16" } },
    contexts = { type = "string", default = "2048,4096" },
    batches = { type = "string", default = "1,16,64" },
    kv = { type = "string", default = "fp16,int8,int4", help = "KV cache kinds to try (quant_policy 0 / 8 / 4)" },
    ["block-len"] = { type = "int", default = 64, min = 1, max = 4096 },
  },
})

local GiB = 1024 ^ 3
local function list(s)
  local t = {}
  for x in s:gmatch("[^,]+") do t[#t + 1] = tonumber(x) or x end
  return t
end

local function used()
  local free, total = core.cuda_memory()
  if not free then error("bench_memory needs a CUDA device: " .. tostring(total)) end
  return total - free
end

local KV = { fp16 = true, int8 = true, int4 = true } -- kv_cache_dtype
local base = used()
for _, kv in ipairs(list(opts.kv)) do
  if KV[kv] == nil then error("--kv: unknown kind " .. tostring(kv)) end
end

print(string.format("# tmrun bench_memory: %s, block %d tokens, %s", opts.random_weights or opts.model,
  opts.block_len, os.date("!%Y-%m-%d %H:%M UTC")))
print()
print("| KV cache | context | batch | weights GiB | KV pool GiB | buffers GiB | total GiB |")
print("|---|---|---|---|---|---|---|")
for _, kv in ipairs(list(opts.kv)) do
  local mopts = { dtype = opts.dtype, backend = "cuda", session_len = 8192, kv_cache_dtype = kv }
  local m, err
  if opts.random_weights then
    local ok, res = pcall(rm.open, opts.random_weights, mopts)
    if ok then m = res else err = res end
  else
    m, err = model_mod.open(opts.model, { backend = "cuda", overrides = { kv_cache_dtype = kv } })
  end
  if not m then
    print(string.format("| %s | - | - | - | - | - | not available: %s |", kv, tostring(err):gsub("|", "/")))
  else
    local weights = used() - base
    for _, ctx in ipairs(list(opts.contexts)) do
      for _, b in ipairs(list(opts.batches)) do
        local before = used()
        local blocks = b * math.ceil(ctx / opts.block_len)
        local eng, eerr = engine_mod.new({ model = m, max_batch_size = b, session_len = ctx,
          cache_block_seq_len = opts.block_len, cache_max_entry_count = blocks, tokenizer = false })
        if not eng then
          print(string.format("| %s | %d | %d | %.2f | - | - | failed: %s |", kv, ctx, b, weights / GiB, eerr))
        else
          local total = used() - before
          local c = m.cfg
          local row_bytes = kv == "fp16" and 2 * c.size_per_head or kv == "int8" and c.size_per_head + 8
            or c.size_per_head / 2 + 8
          local pool = blocks * opts.block_len * c.num_layer * 2 * c.kv_head_num * row_bytes
          print(string.format("| %s | %d | %d | %.2f | %.2f | %.2f | %.2f |", kv, ctx, b, weights / GiB, pool / GiB,
            (total - pool) / GiB, (weights + total) / GiB))
          io.stdout:flush()
          eng:close()
        end
      end
    end
    m:close()
  end
end
