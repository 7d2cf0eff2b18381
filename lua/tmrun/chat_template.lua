-- tmrun.chat_template: the chat template of an opened model.  A name given by the
-- user wins (--chat-template: a built-in, a .lua file, or "jinja"); else the model's
-- own chat_template from tokenizer_config.json; else a built-in matched on the
-- model name (config.ini's model_name, else the path) and architecture.
local cjson = require("cjson")
local fs = require("tmrun.util.fs")
local templates = require("tmrun.templates")

local M = {}

function M.for_model(m, name)
  if name then return templates.get(name, { model_dir = m.tokenizer_dir }) end
  local tc
  local text = m.tokenizer_dir and fs.read(m.tokenizer_dir .. "/tokenizer_config.json")
  if text then
    local ok, v = pcall(cjson.decode, text)
    if ok and type(v) == "table" then tc = v end
  end
  local model_name = m.cfg.model_name
  if not model_name or model_name == "" then model_name = m.path end
  return templates.default_for({ model_name = model_name, architecture = m.cfg.architecture, tokenizer_config = tc })
end

return M
