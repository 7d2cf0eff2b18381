-- tmrun.random_model: models with random weights made in memory, for benchmarks
-- (no checkpoint file needed).  The tensors are built directly in workspace layout.
--
--   local rm = require("tmrun.random_model")
--   local m = rm.open("100m", { dtype = "fp16", backend = "cpu" })
local tmffi = require("tmrun.ffi")
local core = require("tmrun.core")
local config = require("tmrun.config")
local weights = require("tmrun.weights")

local ffi, C = tmffi.ffi, tmffi.C

local M = {}

-- Shapes of the presets ([llama] keys).
M.presets = {
  ["100m"] = { hidden_size = 768, head_num = 12, kv_head_num = 12, num_layer = 12, inter_size = 2048,
    vocab_size = 8192, max_position_embeddings = 2048 },
  ["tiny"] = { hidden_size = 64, head_num = 4, kv_head_num = 2, num_layer = 2, inter_size = 128,
    vocab_size = 256, max_position_embeddings = 512 },
  ["llama2-7b"] = { hidden_size = 4096, head_num = 32, kv_head_num = 32, num_layer = 32, inter_size = 11008,
    vocab_size = 32000, max_position_embeddings = 4096 },
}

local DTYPES = { fp32 = C.TM_F32, fp16 = C.TM_F16, bf16 = C.TM_BF16 }

-- Fills n values of dtype with uniform noise in [-scale, scale) (xorshift; seeded).
local function fill(buf, n, dtype, scale, seed)
  local s = ffi.new("uint64_t[1]", 0x9E3779B97F4A7C15ULL * (seed + 1))
  local f = ffi.new("float[1]")
  local u32 = ffi.cast("uint32_t *", f)
  local out16 = ffi.cast("uint16_t *", buf)
  local out32 = ffi.cast("float *", buf)
  for i = 0, n - 1 do
    local x = s[0]
    x = bit.bxor(x, bit.lshift(x, 13))
    x = bit.bxor(x, bit.rshift(x, 7))
    x = bit.bxor(x, bit.lshift(x, 17))
    s[0] = x
    local v = (tonumber(bit.rshift(x, 40)) / 16777216.0 * 2.0 - 1.0) * scale
    if dtype == C.TM_F32 then
      out32[i] = v
    else
      f[0] = v
      local b = u32[0]
      if dtype == C.TM_BF16 then
        out16[i] = bit.rshift(b, 16)
      else -- fp16 of a small normal value: rebias the exponent, truncate the mantissa
        local sign = bit.band(bit.rshift(b, 16), 0x8000)
        local e = bit.band(bit.rshift(b, 23), 0xff) - 127 + 15
        if e <= 0 then out16[i] = sign
        else out16[i] = bit.bor(sign, bit.lshift(e, 10), bit.band(bit.rshift(b, 13), 0x3ff)) end
      end
    end
  end
end

local function add_random(w, name, shape, dtype, scale, seed)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  local size = dtype == C.TM_F32 and 4 or 2
  local buf = ffi.new("uint8_t[?]", math.max(n * size, 1))
  fill(buf, n, dtype, scale, seed)
  assert(w:add(name, dtype, shape, buf))
end

-- The workspace tensors of a preset (or a table of [llama] keys) as a store.
function M.weights(shape, dtype)
  local d = DTYPES[dtype or "fp16"] or error("dtype must be fp32, fp16 or bf16", 2)
  local w = weights.new()
  local hd = shape.hidden_size / shape.head_num
  local qkv = (shape.head_num + 2 * shape.kv_head_num) * hd
  local seed = 0
  local function add(name, dims, scale)
    seed = seed + 1
    add_random(w, name, dims, d, scale, seed)
  end
  local wscale = 1 / math.sqrt(shape.hidden_size)
  add("tok_embeddings.weight", { shape.vocab_size, shape.hidden_size }, 1.0)
  add("norm.weight", { shape.hidden_size }, 1.0)
  add("output.weight", { shape.hidden_size, shape.vocab_size }, wscale)
  for l = 0, shape.num_layer - 1 do
    local p = string.format("layers.%d.", l)
    add(p .. "attention_norm.weight", { shape.hidden_size }, 1.0)
    add(p .. "attention.w_qkv.0.weight", { shape.hidden_size, qkv }, wscale)
    add(p .. "attention.wo.0.weight", { shape.head_num * hd, shape.hidden_size }, wscale)
    add(p .. "ffn_norm.weight", { shape.hidden_size }, 1.0)
    add(p .. "feed_forward.w1.0.weight", { shape.hidden_size, shape.inter_size }, wscale)
    add(p .. "feed_forward.w3.0.weight", { shape.hidden_size, shape.inter_size }, wscale)
    add(p .. "feed_forward.w2.0.weight", { shape.inter_size, shape.hidden_size }, 1 / math.sqrt(shape.inter_size))
  end
  return w
end

-- Opens a random model; preset is a name in M.presets or a table of [llama] keys.
-- opts: dtype, backend, threads, session_len, seed, kv_cache_dtype ("fp16", "int8", "int4").  The weights are made by the
-- library where the backend keeps them (tm_model_create_random: on the GPU for
-- cuda), the same numbers on both backends for one seed.
function M.open(preset, opts)
  opts = opts or {}
  local shape = type(preset) == "table" and preset or M.presets[preset]
  if not shape then error("unknown random model preset " .. tostring(preset), 2) end
  local cfg = {}
  for k, v in pairs(shape) do cfg[k] = v end
  cfg.size_per_head = shape.hidden_size / shape.head_num
  cfg.weight_type = opts.dtype or "fp16"
  cfg.session_len = opts.session_len or shape.max_position_embeddings
  cfg.model_name = "random-" .. tostring(type(preset) == "string" and preset or "custom")
  cfg.kv_cache_dtype = opts.kv_cache_dtype
  local dtype = DTYPES[cfg.weight_type] or error("dtype must be fp32, fp16 or bf16", 2)
  local vcfg = assert(config.validate(cfg, "random model"))
  local params = config.model_params(vcfg, opts)
  local box = ffi.new("tm_model *[1]")
  core.check(C.tm_model_create_random(params, dtype, opts.seed or 1, box), 2)
  local model = require("tmrun.model")
  return model.wrap(box[0], vcfg, params, nil, nil)
end

return M
