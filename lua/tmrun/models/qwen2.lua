-- tmrun.models.qwen2: Qwen2ForCausalLM: Llama with a bias on q, k, v (not o), often tied embeddings.
local llama = require("tmrun.models.llama")

local M = setmetatable({}, { __index = llama })

M.architectures = { "Qwen2ForCausalLM" }

function M.config(hf)
  local cfg = llama.config(hf)
  cfg.attn_bias = 1
  cfg.attn_out_bias = 0
  if hf.use_sliding_window == true then
    error("config.json: Qwen2 use_sliding_window = true is not supported", 0)
  end
  return cfg
end

return M
