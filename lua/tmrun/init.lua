-- tmrun: the Lua API.  local tm = require("tmrun")
local core = require("tmrun.core")

local M = {}

M.version = core.version

-- Opens a model folder (HF or workspace); see tmrun.model.
function M.model(path, opts) return require("tmrun.model").open(path, opts) end

M.models = require("tmrun.models")

return M
