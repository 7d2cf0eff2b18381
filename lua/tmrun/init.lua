-- tmrun: the Lua API.  local tm = require("tmrun")
--   tm.model(path, opts)    a model for single-sequence contexts (tmrun.model)
--   tm.engine(opts)         the continuous-batching engine (tmrun.engine)
--   tm.sampling             sampling policies (tmrun.sampling)
--   tm.tokenizer(path)      a tokenizer (tmrun.tokenizer)
--   tm.templates            chat templates (tmrun.templates)
local core = require("tmrun.core")

local M = {}

M.version = core.version

function M.model(path, opts) return require("tmrun.model").open(path, opts) end

function M.engine(opts) return require("tmrun.engine").new(opts) end

function M.tokenizer(path) return require("tmrun.tokenizer").load(path) end

M.sampling = require("tmrun.sampling")
M.models = require("tmrun.models")

setmetatable(M, { __index = function(t, k)
  if k == "templates" then
    local v = require("tmrun.templates")
    rawset(t, k, v)
    return v
  end
end })

return M
