-- tmrun.default_model: the model tmrun ships (models/tmrun-demo, trained by the project on
-- the Brown corpus; models/README.md is its card), used when a script is given no model.
--
--   local default = require("tmrun.default_model")
--   local dir, err = default.resolve(opts.model)   -- opts.model, else the shipped model
local fs = require("tmrun.util.fs")

local M = {}

M.name = "tmrun-demo"

-- The folder of the shipped model: $TMRUN_HOME/models/tmrun-demo.
function M.path()
  if type(TMRUN_HOME) ~= "string" then error("TMRUN_HOME is not set: run inside the tmrun host", 2) end
  return TMRUN_HOME .. "/models/" .. M.name
end

-- true, path when the shipped model is there (config.json and model.safetensors), else nil, err.
function M.exists()
  local dir = M.path()
  for _, f in ipairs({ "config.json", "model.safetensors", "tokenizer.json" }) do
    if not fs.is_file(dir .. "/" .. f) then
      return nil, string.format("the default model is missing %s/%s (a source checkout has it under models/)", dir, f)
    end
  end
  return true, dir
end

-- The model folder to use: given when it is a non-empty string, else the shipped model's
-- path (or nil, err when it is absent).
function M.resolve(given)
  if given ~= nil and given ~= "" then
    if type(given) ~= "string" then error("model must be a path string", 2) end
    return given
  end
  local ok, dir_or_err = M.exists()
  if not ok then return nil, dir_or_err end
  return dir_or_err
end

return M
