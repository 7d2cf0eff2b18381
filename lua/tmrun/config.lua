-- tmrun.config: the workspace's [llama] section: keys, defaults, validation, and the
-- translation into the engine's tm_model_params.
--
-- The keys are LMDeploy TurboMind's (so its users can read and edit config.ini),
-- plus a few tmrun needs to describe models TurboMind's set cannot (marked "tmrun").
local tmffi = require("tmrun.ffi")
local ffi, C = tmffi.ffi, tmffi.C

local M = {}

local INT_MAX = 2 ^ 31 - 1

-- name, kind, default, lo, hi (or a list of choices), editable, note
M.schema = {
  { "model_name", "string", "" },
  { "architecture", "string", "LlamaForCausalLM", nil, nil, false, "tmrun" },
  { "tensor_para_size", "int", 1, 1, 64 },
  { "head_num", "int", nil, 1, 4096 },
  { "kv_head_num", "int", nil, 1, 4096 },
  { "vocab_size", "int", nil, 1, 2 ^ 24 },
  { "num_layer", "int", nil, 1, 4096 },
  { "inter_size", "int", nil, 1, 2 ^ 20 },
  { "hidden_size", "int", nil, 1, 2 ^ 17, false, "tmrun" },
  { "norm_eps", "float", 1e-6, 0, 1 },
  { "attn_bias", "int", 0, 0, 1 },
  { "attn_out_bias", "int", 0, 0, 1, false, "tmrun" },
  { "start_id", "int", 1, -1, INT_MAX },
  { "end_id", "int", 2, -1, INT_MAX },
  { "session_len", "int", nil, 1, 2 ^ 24, true },
  { "weight_type", "choice", "fp16", { "fp32", "fp16", "bf16", "int4" } },
  { "rotary_embedding", "int", nil, 0, 1024 },
  { "rope_theta", "float", 10000.0, 1, 1e12 },
  { "size_per_head", "int", nil, 2, 1024 },
  { "group_size", "int", 0, 0, 1024 },
  { "max_batch_size", "int", 64, 1, 4096, true },
  { "max_context_token_num", "int", 1, 1, 2 ^ 24, true },
  { "step_length", "int", 1, 1, 4096 },
  { "cache_max_entry_count", "float", 0.5, 0, 1e9, true },
  { "cache_block_seq_len", "int", 64, 1, 4096, true },
  { "cache_chunk_size", "int", -1, -1, 2 ^ 24, true },
  { "use_context_fmha", "int", 1, 0, 1 },
  { "quant_policy", "choice", 0, { 0, 4, 8 }, nil, true },
  -- tmrun: the clearer spelling of the KV cache kind ("" : from quant_policy), and
  -- where a quantized cache's scale / zero point come from (docs/QUANTIZATION.md)
  { "kv_cache_dtype", "choice", "", { "", "fp16", "int8", "int4" }, nil, true, "tmrun" },
  { "kv_qparams", "choice", "auto", { "auto", "online", "static" }, nil, true, "tmrun" },
  { "max_position_embeddings", "int", 2048, 1, 2 ^ 24 },
  { "rope_scaling_factor", "float", 0.0, 0, 1024, true },
  { "use_logn_attn", "int", 0, 0, 1, true },
  { "rope_scaling_type", "choice", "", { "", "linear", "dynamic", "llama3" }, nil, false, "tmrun" },
  { "rope_low_freq_factor", "float", 1.0, 0, 1e6, false, "tmrun" },
  { "rope_high_freq_factor", "float", 4.0, 0, 1e6, false, "tmrun" },
  { "original_max_position_embeddings", "int", 0, 0, 2 ^ 24, false, "tmrun" },
  { "sliding_window", "int", 0, 0, 2 ^ 24, false, "tmrun" },
  { "tie_word_embeddings", "int", 0, 0, 1, false, "tmrun" },
}

local by_name = {}
for _, k in ipairs(M.schema) do by_name[k[1]] = k end

-- The editable keys, which the command line may also set (--session-len ...).
function M.editable()
  local out = {}
  for _, k in ipairs(M.schema) do if k[6] then out[#out + 1] = k[1] end end
  return out
end

local function check_value(key, raw, what)
  local spec = by_name[key]
  if not spec then return nil, string.format("%s: unknown key %q in [llama]", what, key) end
  local kind, lo, hi = spec[2], spec[4], spec[5]
  if kind == "string" then return tostring(raw) end
  if kind == "choice" then
    for _, c in ipairs(lo) do
      if tostring(c) == tostring(raw) then return c end
    end
    local names = {}
    for _, c in ipairs(lo) do names[#names + 1] = c == "" and '""' or tostring(c) end
    return nil, string.format("%s: %s must be one of %s, got %q", what, key, table.concat(names, ", "), tostring(raw))
  end
  local v = tonumber(raw)
  if v == nil or v ~= v then
    return nil, string.format("%s: %s must be a number, got %q", what, key, tostring(raw))
  end
  if kind == "int" and v ~= math.floor(v) then
    return nil, string.format("%s: %s must be an integer, got %s", what, key, tostring(raw))
  end
  if v < lo or v > hi then
    return nil, string.format("%s: %s must be in [%s, %s], got %s", what, key, tostring(lo), tostring(hi), tostring(raw))
  end
  return v
end

-- Validates a [llama] table (values as strings or numbers), fills defaults, and
-- checks the rules that tie keys together.  Returns cfg or nil, err.
function M.validate(section, what)
  what = what or "config.ini"
  local cfg = {}
  for key, raw in pairs(section) do
    if key ~= "_order" then
      local v, err = check_value(key, raw, what)
      if err then return nil, err end
      cfg[key] = v
    end
  end
  if cfg.size_per_head == nil and cfg.head_num and cfg.hidden_size then
    cfg.size_per_head = math.floor(cfg.hidden_size / cfg.head_num)
  end
  if cfg.hidden_size == nil and cfg.head_num and cfg.size_per_head then
    cfg.hidden_size = cfg.head_num * cfg.size_per_head
  end
  for _, k in ipairs(M.schema) do
    if cfg[k[1]] == nil then
      if k[3] == nil and k[1] ~= "session_len" and k[1] ~= "rotary_embedding" then
        return nil, string.format("%s: missing required key %s", what, k[1])
      end
      cfg[k[1]] = k[3]
    end
  end
  cfg.session_len = cfg.session_len or cfg.max_position_embeddings
  cfg.rotary_embedding = cfg.rotary_embedding or cfg.size_per_head
  if cfg.head_num % cfg.kv_head_num ~= 0 then
    return nil, string.format("%s: head_num (%d) must be a multiple of kv_head_num (%d)", what, cfg.head_num,
      cfg.kv_head_num)
  end
  if cfg.rotary_embedding ~= cfg.size_per_head then
    return nil, string.format("%s: rotary_embedding (%d) must equal size_per_head (%d): partial rotary is not supported",
      what, cfg.rotary_embedding, cfg.size_per_head)
  end
  if cfg.rope_scaling_type ~= "" and cfg.rope_scaling_factor < 1 then
    return nil, string.format("%s: rope_scaling_type %s needs rope_scaling_factor >= 1, got %s", what,
      cfg.rope_scaling_type, tostring(cfg.rope_scaling_factor))
  end
  if cfg.rope_scaling_type == "llama3" and cfg.original_max_position_embeddings < 1 then
    return nil, what .. ": llama3 rope needs original_max_position_embeddings"
  end
  if cfg.rope_scaling_type == "" and cfg.rope_scaling_factor > 0 and cfg.rope_scaling_factor < 1 then
    return nil, string.format("%s: rope_scaling_factor must be 0 (off) or >= 1, got %s", what,
      tostring(cfg.rope_scaling_factor))
  end
  if cfg.use_logn_attn ~= 0 then
    return nil, what .. ": use_logn_attn = 1 (Qwen-1 log-n attention scaling) is not supported yet"
  end
  if cfg.weight_type == "int4" and cfg.group_size ~= 32 and cfg.group_size ~= 64 and cfg.group_size ~= 128 then
    return nil, string.format("%s: weight_type int4 needs group_size 32, 64 or 128, got %s", what,
      tostring(cfg.group_size))
  end
  if cfg.tensor_para_size > 1 and (cfg.head_num % cfg.tensor_para_size ~= 0
      or cfg.kv_head_num % cfg.tensor_para_size ~= 0 or cfg.inter_size % cfg.tensor_para_size ~= 0) then
    return nil, string.format("%s: tensor_para_size %d must divide head_num, kv_head_num and inter_size", what,
      cfg.tensor_para_size)
  end
  return cfg
end

-- Applies overrides { session_len = 4096, ... } (editable keys only).
function M.override(cfg, overrides, what)
  local out = {}
  for k, v in pairs(cfg) do out[k] = v end
  for key, v in pairs(overrides or {}) do
    local spec = by_name[key]
    if not spec or not spec[6] then
      return nil, string.format("%s: %s cannot be overridden (editable: %s)", what or "override", key,
        table.concat(M.editable(), ", "))
    end
    out[key] = v
  end
  return M.validate(out, what or "override")
end

-- The [llama] section in schema order, for config.ini.
function M.to_section(cfg)
  local keys = {}
  for _, k in ipairs(M.schema) do
    if cfg[k[1]] ~= nil then keys[#keys + 1] = { k[1], cfg[k[1]] } end
  end
  return { name = "llama", keys = keys }
end

-- quant_policy's KV kinds.  4 is INT8 as in the seed's LMDeploy (TurboMind's
-- quant_policy & 4); newer LMDeploy (>= 0.4) renumbered to 4 = int4, 8 = int8, so 8
-- is accepted as int8 too: both numberings agree on what 8 means, and INT4 is only
-- ever spelled kv_cache_dtype = int4.
local POLICY_KV = { [0] = "fp16", [4] = "int8", [8] = "int8" }

-- The KV cache kind of a cfg ("fp16", "int8", "int4"): kv_cache_dtype when set (it
-- wins, so --kv-cache-dtype int4 works on a workspace that kv_qparams.lua set to
-- quant_policy 4), else quant_policy's.
function M.kv_dtype(cfg)
  local kind = cfg.kv_cache_dtype or ""
  if kind ~= "" then return kind end
  return POLICY_KV[cfg.quant_policy or 0]
end

local KV_DTYPE = { fp16 = 0, int8 = 1, int4 = 2 }
local KV_QPARAMS = { auto = 0, online = 1, static = 2 }

local ROPE = { [""] = 0, linear = 1, dynamic = 2, llama3 = 3 }

-- tm_model_params for a validated cfg.  opts: backend ("cpu"|"cuda"; when absent the
-- TMRUN_BACKEND environment variable, else "cpu"), threads.
function M.model_params(cfg, opts)
  opts = opts or {}
  local p = C.tm_model_default_params()
  p.vocab_size = cfg.vocab_size
  p.hidden_size = cfg.hidden_size
  p.num_layer = cfg.num_layer
  p.head_num = cfg.head_num
  p.kv_head_num = cfg.kv_head_num
  p.size_per_head = cfg.size_per_head
  p.inter_size = cfg.inter_size
  p.norm_eps = cfg.norm_eps
  p.attn_bias = cfg.attn_bias
  p.attn_out_bias = cfg.attn_out_bias
  p.max_position_embeddings = cfg.max_position_embeddings
  p.sliding_window = cfg.sliding_window
  p.rope_theta = cfg.rope_theta
  local kind = cfg.rope_scaling_type
  -- LMDeploy's spelling: rope_scaling_factor > 0 alone means dynamic NTK
  if kind == "" and cfg.rope_scaling_factor >= 1 then kind = "dynamic" end
  p.rope_type = ROPE[kind]
  p.rope_factor = kind == "" and 1.0 or cfg.rope_scaling_factor
  p.rope_low_freq_factor = cfg.rope_low_freq_factor
  p.rope_high_freq_factor = cfg.rope_high_freq_factor
  p.rope_original_max = cfg.original_max_position_embeddings
  p.tp = 1
  local backend = opts.backend or os.getenv("TMRUN_BACKEND")
  if backend == "cuda" then p.backend = C.TM_BACKEND_CUDA
  elseif backend == nil or backend == "" or backend == "cpu" then p.backend = C.TM_BACKEND_CPU
  elseif opts.backend then error(string.format("backend must be cpu or cuda, got %q", tostring(backend)), 2)
  else error(string.format("TMRUN_BACKEND must be cpu or cuda, got %q", backend), 2) end
  p.num_threads = opts.threads or 0
  p.group_size = cfg.weight_type == "int4" and cfg.group_size or 0
  p.kv_dtype = KV_DTYPE[assert(M.kv_dtype(cfg))]
  p.kv_qparams = KV_QPARAMS[cfg.kv_qparams or "auto"]
  return p
end

return M
