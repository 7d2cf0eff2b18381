-- pystr.lua: Python str semantics over UTF-8 Lua strings.
--
-- Python counts, indexes and slices strings by code point and strips Unicode
-- whitespace; Lua works on bytes. These helpers bridge the two. Case mapping
-- (upper/lower/title/capitalize) is ASCII-only: non-ASCII letters pass through
-- unchanged (documented in docs/TEMPLATES.md).

local M = {}

local byte, sub, find, concat = string.byte, string.sub, string.find, table.concat

-- Code points Python's str.isspace() accepts, as UTF-8 strings.
local WHITESPACE = {}
for _, cp in ipairs({ 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0,
  0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009,
  0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000 }) do
  WHITESPACE[cp] = true
end

function M.encode(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40) end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40,
      0x80 + cp % 0x40)
  end
  return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
    0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

-- Length in bytes of the UTF-8 sequence starting with byte b (1 for a stray
-- continuation byte, so malformed input still advances).
local function seq_len(b)
  if b < 0xC0 then return 1 end
  if b < 0xE0 then return 2 end
  if b < 0xF0 then return 3 end
  return 4
end

function M.codepoint(ch)
  local b = byte(ch, 1)
  local n = seq_len(b)
  if n == 1 or #ch < n then return b end
  local cp = b % (2 ^ (7 - n))
  for i = 2, n do cp = cp * 64 + byte(ch, i) % 64 end
  return cp
end

-- The string split into code points (each a UTF-8 string).
function M.chars(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local len = seq_len(byte(s, i))
    out[#out + 1] = sub(s, i, i + len - 1)
    i = i + len
  end
  return out
end

function M.len(s)
  if not find(s, "[\128-\255]") then return #s end
  local _, count = s:gsub("[^\128-\191]", "")
  return count
end

local function is_space_char(ch)
  return WHITESPACE[M.codepoint(ch)] == true
end

function M.isspace(s)
  if s == "" then return false end
  for _, ch in ipairs(M.chars(s)) do
    if not is_space_char(ch) then return false end
  end
  return true
end

-- strip family: chars == nil strips whitespace, else any code point in chars.
local function char_set(chars)
  local set = {}
  for _, ch in ipairs(M.chars(chars)) do set[ch] = true end
  return set
end

local function make_pred(chars)
  if chars == nil then return is_space_char end
  local set = char_set(chars)
  return function(ch) return set[ch] == true end
end

function M.lstrip(s, chars)
  local pred = make_pred(chars)
  local list = M.chars(s)
  local i = 1
  while i <= #list and pred(list[i]) do i = i + 1 end
  return concat(list, "", i, #list)
end

function M.rstrip(s, chars)
  local pred = make_pred(chars)
  local list = M.chars(s)
  local j = #list
  while j >= 1 and pred(list[j]) do j = j - 1 end
  return concat(list, "", 1, j)
end

function M.strip(s, chars)
  return M.rstrip(M.lstrip(s, chars), chars)
end

-- Python's str.split(sep=None, maxsplit=-1).
function M.split(s, sep, maxsplit)
  maxsplit = maxsplit or -1
  local out = {}
  if sep == nil then
    local list = M.chars(s)
    local i, n = 1, #list
    while true do
      while i <= n and is_space_char(list[i]) do i = i + 1 end
      if i > n then break end
      if maxsplit >= 0 and #out >= maxsplit then
        out[#out + 1] = M.rstrip(concat(list, "", i, n))
        break
      end
      local j = i
      while j <= n and not is_space_char(list[j]) do j = j + 1 end
      out[#out + 1] = concat(list, "", i, j - 1)
      i = j
    end
    return out
  end
  if sep == "" then error({ msg = "empty separator" }, 0) end
  local pos = 1
  while maxsplit < 0 or #out < maxsplit do
    local a, b = find(s, sep, pos, true)
    if not a then break end
    out[#out + 1] = sub(s, pos, a - 1)
    pos = b + 1
  end
  out[#out + 1] = sub(s, pos)
  return out
end

-- Python's str.rsplit with a separator (whitespace rsplit falls back to split
-- when maxsplit is unlimited, where the two agree).
function M.rsplit(s, sep, maxsplit)
  maxsplit = maxsplit or -1
  if maxsplit < 0 then return M.split(s, sep, -1) end
  if sep == nil then
    local parts = M.split(s, nil, -1)
    if #parts <= maxsplit + 1 then return parts end
    -- keep the last maxsplit words, the rest joined back as in the source
    local out = {}
    local rest = M.rstrip(s)
    for k = 1, maxsplit do
      local word = parts[#parts - k + 1]
      table.insert(out, 1, word)
      rest = M.rstrip(sub(rest, 1, #rest - #word))
    end
    table.insert(out, 1, rest)
    return out
  end
  if sep == "" then error({ msg = "empty separator" }, 0) end
  local out = {}
  local stop = #s
  while #out < maxsplit do
    local found
    local pos = 1
    while true do
      local a = find(s, sep, pos, true)
      if not a or a + #sep - 1 > stop then break end
      found, pos = a, a + 1
    end
    if not found then break end
    table.insert(out, 1, sub(s, found + #sep, stop))
    stop = found - 1
  end
  table.insert(out, 1, sub(s, 1, stop))
  return out
end

function M.replace(s, old, new, count)
  count = count or -1
  if count == 0 then return s end
  if old == "" then
    local list = M.chars(s)
    local out = {}
    local done = 0
    for i = 1, #list + 1 do
      if count < 0 or done < count then
        out[#out + 1] = new
        done = done + 1
      end
      out[#out + 1] = list[i]
    end
    return concat(out)
  end
  local out, pos, done = {}, 1, 0
  while count < 0 or done < count do
    local a, b = find(s, old, pos, true)
    if not a then break end
    out[#out + 1] = sub(s, pos, a - 1)
    out[#out + 1] = new
    pos = b + 1
    done = done + 1
  end
  out[#out + 1] = sub(s, pos)
  return concat(out)
end

-- Code-point index of the first (or last) occurrence, -1 when absent.
function M.find(s, needle, last)
  local a
  if last then
    local pos = 1
    while true do
      local hit = find(s, needle, pos, true)
      if not hit then break end
      a, pos = hit, hit + 1
    end
  else
    a = find(s, needle, 1, true)
  end
  if not a then return -1 end
  return M.len(sub(s, 1, a - 1))
end

function M.count(s, needle)
  if needle == "" then return M.len(s) + 1 end
  local n, pos = 0, 1
  while true do
    local a, b = find(s, needle, pos, true)
    if not a then return n end
    n, pos = n + 1, b + 1
  end
end

function M.upper(s) return (s:gsub("%l", string.upper)) end
function M.lower(s) return (s:gsub("%u", string.lower)) end

function M.capitalize(s)
  local first, rest = s:match("^([^\128-\191][\128-\191]*)(.*)$")
  if not first then return s end
  return M.upper(first) .. M.lower(rest)
end

-- Python's str.title(): a cased run starts upper and continues lower. Bytes
-- above 0x7F count as letters so words with accents are not split.
function M.title(s)
  local prev_letter = false
  return (s:gsub(".", function(c)
    local b = byte(c)
    local letter = (b >= 65 and b <= 90) or (b >= 97 and b <= 122) or b >= 128
    local out = c
    if b < 128 and letter then
      out = prev_letter and c:lower() or c:upper()
    end
    prev_letter = letter
    return out
  end))
end

function M.splitlines(s)
  local out = {}
  for line in (s .. "\n"):gmatch("(.-)\r?\n") do out[#out + 1] = line end
  if s == "" or s:sub(-1) == "\n" then out[#out] = nil end
  return out
end

return M
