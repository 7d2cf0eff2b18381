-- tmrun.models.llama: LlamaForCausalLM (Llama 2 and 3, GQA, every RoPE scaling), the
-- base map the other Llama-family architectures extend.
--
-- A map turns an HF config.json into workspace [llama] keys (config) and names the
-- HF tensors of each workspace tensor (names; %d is the layer index).
local M = {}

M.architectures = { "LlamaForCausalLM" }

M.names = {
  embed = "model.embed_tokens.weight",
  norm = "model.norm.weight",
  lm_head = "lm_head.weight",
  attn_norm = "model.layers.%d.input_layernorm.weight",
  q = "model.layers.%d.self_attn.q_proj",
  k = "model.layers.%d.self_attn.k_proj",
  v = "model.layers.%d.self_attn.v_proj",
  o = "model.layers.%d.self_attn.o_proj",
  ffn_norm = "model.layers.%d.post_attention_layernorm.weight",
  gate = "model.layers.%d.mlp.gate_proj",
  up = "model.layers.%d.mlp.up_proj",
  down = "model.layers.%d.mlp.down_proj",
}

local function field(hf, key, kind)
  local v = hf[key]
  if v == nil then error(string.format("config.json: missing %s", key), 0) end
  if kind == "int" and (type(v) ~= "number" or v ~= math.floor(v)) then
    error(string.format("config.json: %s must be an integer, got %s", key, tostring(v)), 0)
  end
  if kind == "number" and type(v) ~= "number" then
    error(string.format("config.json: %s must be a number, got %s", key, tostring(v)), 0)
  end
  return v
end

local function is_null(v) return v == nil or (type(v) == "userdata" and tostring(v) == "userdata: NULL") end
M.is_null = is_null

local function first_id(v)
  if type(v) == "table" then return v[1] end
  if is_null(v) then return nil end
  return v
end

-- RoPE settings from transformers 5 (rope_parameters) or earlier (rope_theta + rope_scaling).
function M.rope(hf)
  local rp = not is_null(hf.rope_parameters) and hf.rope_parameters or nil
  local rs = rp or (not is_null(hf.rope_scaling) and hf.rope_scaling) or {}
  local out = {
    rope_theta = (rp and rp.rope_theta) or hf.rope_theta or 10000.0,
    rope_scaling_type = "",
    rope_scaling_factor = 0,
  }
  local kind = rs.rope_type or rs.type or "default"
  if (tonumber(hf.partial_rotary_factor) or 1) ~= 1 then
    error("config.json: partial_rotary_factor other than 1 is not supported", 0)
  end
  if kind == "default" then return out end
  if kind ~= "linear" and kind ~= "dynamic" and kind ~= "llama3" then
    error(string.format("config.json: rope type %q is not supported (default, linear, dynamic, llama3)", kind), 0)
  end
  out.rope_scaling_type = kind
  out.rope_scaling_factor = tonumber(rs.factor) or error("config.json: rope scaling needs a factor", 0)
  if kind == "llama3" then
    out.rope_low_freq_factor = rs.low_freq_factor or 1.0
    out.rope_high_freq_factor = rs.high_freq_factor or 4.0
    out.original_max_position_embeddings = rs.original_max_position_embeddings
      or error("config.json: llama3 rope needs original_max_position_embeddings", 0)
  elseif kind == "dynamic" and rs.original_max_position_embeddings then
    out.original_max_position_embeddings = rs.original_max_position_embeddings
  end
  return out
end

-- Workspace [llama] keys for this HF config (model_name and the runtime keys come later).
function M.config(hf)
  if hf.hidden_act and hf.hidden_act ~= "silu" then
    error(string.format("config.json: hidden_act %q is not supported (silu)", tostring(hf.hidden_act)), 0)
  end
  if hf.mlp_bias == true then error("config.json: mlp_bias = true is not supported", 0) end
  local hidden = field(hf, "hidden_size", "int")
  local heads = field(hf, "num_attention_heads", "int")
  local kv = is_null(hf.num_key_value_heads) and heads or field(hf, "num_key_value_heads", "int")
  local head_dim = is_null(hf.head_dim) and math.floor(hidden / heads) or field(hf, "head_dim", "int")
  local cfg = {
    hidden_size = hidden,
    head_num = heads,
    kv_head_num = kv,
    size_per_head = head_dim,
    vocab_size = field(hf, "vocab_size", "int"),
    num_layer = field(hf, "num_hidden_layers", "int"),
    inter_size = field(hf, "intermediate_size", "int"),
    norm_eps = hf.rms_norm_eps or 1e-6,
    attn_bias = hf.attention_bias == true and 1 or 0,
    attn_out_bias = hf.attention_bias == true and 1 or 0,
    max_position_embeddings = hf.max_position_embeddings or 2048,
    start_id = first_id(hf.bos_token_id) or 1,
    end_id = first_id(hf.eos_token_id) or 2,
    tie_word_embeddings = hf.tie_word_embeddings == true and 1 or 0,
    sliding_window = 0,
  }
  for k, v in pairs(M.rope(hf)) do cfg[k] = v end
  cfg.rotary_embedding = head_dim
  return cfg
end

return M
