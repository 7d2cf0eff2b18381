-- json.lua: a JSON decoder that yields values.lua values and keeps the key
-- order of objects.
--
-- Why not cjson here: a chat template may `tojson` a tool definition or a
-- tool call's arguments, and Python prints the keys in the order the client
-- sent them; cjson's tables forget that order. Numbers written with a
-- fraction or exponent become floats (Python's json.loads does the same), so
-- 1.0 prints as "1.0". Returns value or nil, "message at offset N".

local V = require("tmrun.jinja.values")
local pystr = require("tmrun.jinja.pystr")

local M = {}

local sub, find, byte = string.sub, string.find, string.byte

local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function jerr(pos, msg) error({ json = true, msg = msg .. " at offset " .. pos }, 0) end

local function skip_ws(s, pos)
  local _, e = find(s, "^[ \t\r\n]*", pos)
  return e + 1
end

local decode_value

local function decode_string(s, pos)
  local out = {}
  local i = pos + 1
  while true do
    local a = find(s, '["\\%z\1-\31]', i)
    if not a then jerr(pos, "unterminated string") end
    out[#out + 1] = sub(s, i, a - 1)
    local c = sub(s, a, a)
    if c == '"' then return table.concat(out), a + 1 end
    if c ~= "\\" then jerr(a, "control character in string") end
    local e = sub(s, a + 1, a + 1)
    if ESC[e] then
      out[#out + 1] = ESC[e]
      i = a + 2
    elseif e == "u" then
      local hex = sub(s, a + 2, a + 5)
      if not hex:match("^%x%x%x%x$") then jerr(a, "bad \\u escape") end
      local cp = tonumber(hex, 16)
      i = a + 6
      if cp >= 0xD800 and cp <= 0xDBFF and sub(s, i, i + 1) == "\\u" then
        local lo = tonumber(sub(s, i + 2, i + 5), 16)
        if lo and lo >= 0xDC00 and lo <= 0xDFFF then
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
          i = i + 6
        end
      end
      out[#out + 1] = pystr.encode(cp)
    else
      jerr(a, "bad escape")
    end
  end
end

local function decode_number(s, pos)
  local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
  if not num or num == "" or num == "-" then jerr(pos, "bad number") end
  local x = tonumber(num)
  if not x then jerr(pos, "bad number") end
  if find(num, "[.eE]") then return V.float(x), pos + #num end
  return x, pos + #num
end

local function decode_array(s, pos, depth)
  local out = V.list({}, 0)
  pos = skip_ws(s, pos + 1)
  if sub(s, pos, pos) == "]" then return out, pos + 1 end
  while true do
    local v
    v, pos = decode_value(s, pos, depth + 1)
    out.n = out.n + 1
    out[out.n] = v
    pos = skip_ws(s, pos)
    local c = sub(s, pos, pos)
    if c == "]" then return out, pos + 1 end
    if c ~= "," then jerr(pos, "expected ',' or ']'") end
    pos = skip_ws(s, pos + 1)
  end
end

local function decode_object(s, pos, depth)
  local out = V.dict()
  pos = skip_ws(s, pos + 1)
  if sub(s, pos, pos) == "}" then return out, pos + 1 end
  while true do
    if sub(s, pos, pos) ~= '"' then jerr(pos, "expected a string key") end
    local k
    k, pos = decode_string(s, pos)
    pos = skip_ws(s, pos)
    if sub(s, pos, pos) ~= ":" then jerr(pos, "expected ':'") end
    local v
    v, pos = decode_value(s, skip_ws(s, pos + 1), depth + 1)
    V.dict_set(out, k, v)
    pos = skip_ws(s, pos)
    local c = sub(s, pos, pos)
    if c == "}" then return out, pos + 1 end
    if c ~= "," then jerr(pos, "expected ',' or '}'") end
    pos = skip_ws(s, pos + 1)
  end
end

decode_value = function(s, pos, depth)
  if depth > 500 then jerr(pos, "nesting too deep") end
  pos = skip_ws(s, pos)
  local c = byte(s, pos)
  if c == 34 then return decode_string(s, pos) end -- "
  if c == 123 then return decode_object(s, pos, depth) end -- {
  if c == 91 then return decode_array(s, pos, depth) end -- [
  if sub(s, pos, pos + 3) == "true" then return true, pos + 4 end
  if sub(s, pos, pos + 4) == "false" then return false, pos + 5 end
  if sub(s, pos, pos + 3) == "null" then return V.none, pos + 4 end
  if c == 45 or (c and c >= 48 and c <= 57) then return decode_number(s, pos) end
  jerr(pos, "unexpected character")
end

function M.decode(text)
  if type(text) ~= "string" then error("json.decode: text must be a string", 2) end
  local ok, v, pos = pcall(decode_value, text, 1, 0)
  if not ok then
    if type(v) == "table" and v.json then return nil, v.msg end
    error(v, 0)
  end
  pos = skip_ws(text, pos)
  if pos <= #text then return nil, "trailing characters at offset " .. pos end
  return v
end

return M
