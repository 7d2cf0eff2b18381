-- tmrun.models.mistral: MistralForCausalLM: Llama with sliding-window attention.
local llama = require("tmrun.models.llama")

local M = setmetatable({}, { __index = llama })

M.architectures = { "MistralForCausalLM" }

function M.config(hf)
  local cfg = llama.config(hf)
  if not llama.is_null(hf.sliding_window) then cfg.sliding_window = hf.sliding_window end
  return cfg
end

return M
