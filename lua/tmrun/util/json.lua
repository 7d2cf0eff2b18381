-- tmrun.util.json: cjson with what Debian's lua-cjson 2.1.0 lacks: an empty-array
-- value (an empty Lua table encodes as {}), and no escaped forward slashes.
local cjson = require("cjson")

local M = {}

local SENTINEL = "\0tmrun-empty-array\0"
local ENCODED = '"\\u0000tmrun-empty-array\\u0000"'

M.null = cjson.null
M.empty_array = cjson.empty_array or SENTINEL
M.decode = cjson.decode

-- An array that is [] when empty.
function M.array(t)
  if t == nil or #t == 0 then return M.empty_array end
  return t
end

function M.encode(v)
  local s = cjson.encode(v)
  if M.empty_array == SENTINEL and s:find(ENCODED, 1, true) then
    s = s:gsub(ENCODED:gsub("%p", "%%%0"), "[]")
  end
  if s:find("\\/", 1, true) then
    -- "\/" is an escaped slash only after an even run of backslashes
    s = s:gsub("(\\+)/", function(bs)
      if #bs % 2 == 1 then return bs:sub(2) .. "/" end
      return bs .. "/"
    end)
  end
  return s
end

return M
