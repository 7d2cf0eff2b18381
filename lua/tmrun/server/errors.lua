-- tmrun.server.errors: OpenAI-shaped error responses.
--   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
local cjson = require("tmrun.util.json")

local M = {}

local TYPES = {
  [400] = "invalid_request_error", [401] = "invalid_request_error", [403] = "invalid_request_error",
  [404] = "invalid_request_error", [405] = "invalid_request_error", [408] = "invalid_request_error",
  [409] = "invalid_request_error", [413] = "invalid_request_error", [429] = "rate_limit_error",
  [500] = "internal_error", [503] = "server_error",
}

-- Replaces bytes that are not valid UTF-8, so a message quoting user input stays
-- valid JSON text.
function M.clean_utf8(s)
  s = tostring(s)
  if not s:find("[\128-\255]") then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or (c >= 0xC2 and c <= 0xDF) and 2 or (c >= 0xE0 and c <= 0xEF) and 3
      or (c >= 0xF0 and c <= 0xF4) and 4 or 0
    local ok = len > 0 and i + len - 1 <= n
    for k = 1, len - 1 do
      local b = ok and s:byte(i + k)
      if not b or b < 0x80 or b > 0xBF then ok = false end
    end
    if ok and len == 3 then
      local b = s:byte(i + 1)
      if (c == 0xE0 and b < 0xA0) or (c == 0xED and b > 0x9F) then ok = false end
    elseif ok and len == 4 then
      local b = s:byte(i + 1)
      if (c == 0xF0 and b < 0x90) or (c == 0xF4 and b > 0x8F) then ok = false end
    end
    if ok then
      out[#out + 1] = s:sub(i, i + len - 1)
      i = i + len
    else
      out[#out + 1] = "\239\191\189"
      i = i + 1
    end
  end
  return table.concat(out)
end

function M.body(status, message, param, code, kind)
  return cjson.encode({ error = {
    message = M.clean_utf8(message),
    type = kind or TYPES[status] or "invalid_request_error",
    param = param or cjson.null,
    code = code or cjson.null,
  } })
end

function M.send(res, status, message, param, code, kind, headers)
  local h = { ["content-type"] = "application/json" }
  for k, v in pairs(headers or {}) do h[k] = v end
  res:send(status, h, M.body(status, message, param, code, kind))
end

-- An error value handlers raise with error(errors.new(...)) and the app turns into a response.
local Err = {}
Err.__index = Err
Err.__tostring = function(e) return e.message end

function M.new(status, message, param, code)
  return setmetatable({ status = status, message = message, param = param, code = code }, Err)
end

function M.is(v) return getmetatable(v) == Err end

return M
