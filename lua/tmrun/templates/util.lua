-- util.lua: helpers the template kinds share (message checks, content text,
-- file reading).

local V = require("tmrun.jinja.values")
local cjson = require("cjson")

local M = {}

-- Messages as plain Lua: accepts a Lua array or a jinja List (what the
-- order-keeping JSON decoder returns). A malformed list is misuse, raised at
-- the level of whoever called t:render.
function M.check_messages(messages, level)
  level = (level or 2) + 1
  if V.is_list(messages) then messages = V.to_lua(messages) end
  if type(messages) ~= "table" then
    error("messages must be an array of {role=, content=} tables, got " .. type(messages), level)
  end
  for i, m in ipairs(messages) do
    if type(m) ~= "table" then
      error(string.format("messages[%d] must be a table, got %s", i, type(m)), level)
    end
    if type(m.role) ~= "string" then
      error(string.format("messages[%d].role must be a string, got %s", i, type(m.role)), level)
    end
  end
  return messages
end

-- The text of a message's content: a string, nothing (JSON null), or the
-- OpenAI list of parts ({type = "text", text = ...}; other parts are skipped).
function M.content_text(content)
  if type(content) == "string" then return content end
  if content == nil or content == cjson.null or content == V.none then return "" end
  if type(content) == "table" then
    local out = {}
    for _, part in ipairs(content) do
      if type(part) == "string" then
        out[#out + 1] = part
      elseif type(part) == "table" and (part.type == nil or part.type == "text") and type(part.text) == "string" then
        out[#out + 1] = part.text
      end
    end
    return table.concat(out)
  end
  return tostring(content)
end

function M.string_list(list, name, field)
  if list == nil then return {} end
  if type(list) ~= "table" then
    error(string.format("template '%s': %s must be an array of strings", name, field), 0)
  end
  local out = {}
  for i, s in ipairs(list) do
    if type(s) ~= "string" then
      error(string.format("template '%s': %s[%d] must be a string", name, field, i), 0)
    end
    out[i] = s
  end
  return out
end

function M.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local data = f:read("*a")
  f:close()
  return data
end

function M.is_dir(path)
  local f = io.open(path .. "/.", "rb")
  if f then f:close() return true end
  return false
end

function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

function M.basename(path)
  return (path:gsub("/+$", ""):match("([^/]+)$")) or path
end

return M
