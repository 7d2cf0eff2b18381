-- tmrun.models: architecture maps, looked up by the HF `architectures` name.
-- Adding an architecture is adding a map (see llama.lua) and calling register().
local M = {}

local by_arch = {}

function M.register(map)
  for _, arch in ipairs(map.architectures) do by_arch[arch] = map end
end

for _, name in ipairs({ "llama", "qwen2", "mistral", "internlm" }) do
  M.register(require("tmrun.models." .. name))
end

function M.supported()
  local out = {}
  for arch in pairs(by_arch) do out[#out + 1] = arch end
  table.sort(out)
  return out
end

-- The map for an HF config table; errors name the architecture and list the known ones.
function M.for_config(hf)
  local archs = hf.architectures
  if type(archs) ~= "table" or type(archs[1]) ~= "string" then
    error("config.json: architectures must be a list of names", 0)
  end
  local map = by_arch[archs[1]]
  if not map then
    error(string.format("config.json: architecture %q is not supported (supported: %s)", archs[1],
      table.concat(M.supported(), ", ")), 0)
  end
  return map, archs[1]
end

return M
