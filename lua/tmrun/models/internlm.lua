-- tmrun.models.internlm: InternLM v1 (InternLMForCausalLM): Llama whose q, k, v and o
-- projections carry a bias, switched by the config key `bias` (default true).
local llama = require("tmrun.models.llama")

local M = setmetatable({}, { __index = llama })

M.architectures = { "InternLMForCausalLM" }

function M.config(hf)
  local cfg = llama.config(hf)
  local bias = hf.bias
  if bias == nil then bias = true end
  cfg.attn_bias = bias and 1 or 0
  cfg.attn_out_bias = bias and 1 or 0
  return cfg
end

return M
