-- lexer.lua: Jinja template source -> token list.
--
-- Whitespace rules are those transformers renders chat templates with
-- (Jinja2 with trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
--   * newlines are normalized to "\n" and one trailing newline is dropped;
--   * `{%-`, `{{-`, `{#-` strip all whitespace before the tag, `-%}`, `-}}`,
--     `-#}` all whitespace after it;
--   * lstrip_blocks: spaces/tabs between a line start and `{%` / `{#` go,
--     unless the tag opens with `{%+`;
--   * trim_blocks: the first newline after `%}` / `#}` goes, unless `+%}`.
-- Tokens: {type, value, pos}; types: data, block_begin, block_end, var_begin,
-- var_end, name, string, int, float, op, eof. pos is a byte offset; where()
-- turns it into line and column for messages.

local pystr = require("tmrun.jinja.pystr")

local M = {}

local sub, find, match = string.sub, string.find, string.match

local function new_error(src, pos, msg)
  return { msg = msg, pos = pos, src = src }
end

-- 1-based line and column (in code points) of byte offset pos in src.
function M.where(src, pos)
  local line, line_start = 1, 1
  local i = 1
  while true do
    local nl = find(src, "\n", i, true)
    if not nl or nl >= pos then break end
    line, line_start, i = line + 1, nl + 1, nl + 1
  end
  return line, pystr.len(sub(src, line_start, pos - 1)) + 1
end

local SIMPLE_ESCAPES = { n = "\n", t = "\t", r = "\r", a = "\a", b = "\b", f = "\f", v = "\v",
  ["\\"] = "\\", ["'"] = "'", ['"'] = '"', ["\n"] = "" }

-- Python's unicode-escape decoding of a string literal's body; unknown
-- escapes stay as written, like Python's.
local function unescape(body, src, pos)
  if not find(body, "\\", 1, true) then return body end
  local out, i, n = {}, 1, #body
  while i <= n do
    local c = sub(body, i, i)
    if c ~= "\\" then
      out[#out + 1] = c
      i = i + 1
    else
      local e = sub(body, i + 1, i + 1)
      if SIMPLE_ESCAPES[e] then
        out[#out + 1] = SIMPLE_ESCAPES[e]
        i = i + 2
      elseif e == "x" or e == "u" or e == "U" then
        local len = (e == "x" and 2) or (e == "u" and 4) or 8
        local hex = sub(body, i + 2, i + 1 + len)
        if #hex ~= len or find(hex, "[^%x]") then
          error(new_error(src, pos, "truncated \\" .. e .. " escape in string literal"), 0)
        end
        out[#out + 1] = pystr.encode(tonumber(hex, 16))
        i = i + 2 + len
      elseif match(e, "[0-7]") then
        local oct = match(body, "^[0-7][0-7]?[0-7]?", i + 1)
        out[#out + 1] = pystr.encode(tonumber(oct, 8))
        i = i + 1 + #oct
      else
        out[#out + 1] = "\\"
        i = i + 1
      end
    end
  end
  return table.concat(out)
end

local TWO_CHAR_OPS = { ["//"] = true, ["**"] = true, ["=="] = true, ["!="] = true,
  [">="] = true, ["<="] = true }
local ONE_CHAR_OPS = "^[%+%-%*/%%~<>=%.,:|%(%)%[%]{}]"
local CLOSERS = { [")"] = "(", ["]"] = "[", ["}"] = "{" }

-- Scans the inside of a `{% %}` or `{{ }}` tag from pos; appends tokens and
-- returns the position after the closing tag plus its strip modifier.
local function lex_tag(src, pos, toks, closing)
  local stack = {}
  local n = #src
  while true do
    local ws_end = match(src, "^%s*()", pos)
    pos = ws_end
    if pos > n then
      error(new_error(src, pos, "unexpected end of template, expected '" .. closing .. "'"), 0)
    end
    if #stack == 0 then
      local m = sub(src, pos, pos)
      local rest2, rest3 = sub(src, pos, pos + 1), sub(src, pos + 1, pos + 2)
      if rest2 == closing then
        toks[#toks + 1] = { type = closing == "%}" and "block_end" or "var_end", pos = pos }
        return pos + 2, ""
      elseif (m == "-" or m == "+") and rest3 == closing then
        toks[#toks + 1] = { type = closing == "%}" and "block_end" or "var_end", pos = pos }
        return pos + 3, m
      end
    end
    local c = sub(src, pos, pos)
    local tok
    if match(c, "[%a_]") then
      local word = match(src, "^[%w_]+", pos)
      tok = { type = "name", value = word, pos = pos }
      pos = pos + #word
    elseif match(c, "%d") then
      local prev = toks[#toks]
      local after_dot = prev and prev.type == "op" and prev.value == "."
      local num = not after_dot and (match(src, "^%d[%d_]*%.%d[%d_]*[eE][%+%-]?%d[%d_]*", pos)
        or match(src, "^%d[%d_]*%.%d[%d_]*", pos) or match(src, "^%d[%d_]*[eE][%+%-]?%d[%d_]*", pos))
      if num then
        tok = { type = "float", value = tonumber((num:gsub("_", ""))), pos = pos }
      else
        num = match(src, "^%d[%d_]*", pos)
        tok = { type = "int", value = tonumber((num:gsub("_", ""))), pos = pos }
      end
      pos = pos + #num
    elseif c == "'" or c == '"' then
      local i = pos + 1
      while true do
        local hit = find(src, "[\\" .. c .. "]", i)
        if not hit then error(new_error(src, pos, "unterminated string literal"), 0) end
        if sub(src, hit, hit) == "\\" then
          i = hit + 2
        else
          tok = { type = "string", value = unescape(sub(src, pos + 1, hit - 1), src, pos), pos = pos }
          pos = hit + 1
          break
        end
      end
    else
      local two = sub(src, pos, pos + 1)
      local op = TWO_CHAR_OPS[two] and two or match(src, ONE_CHAR_OPS, pos)
      if not op then
        error(new_error(src, pos, string.format("unexpected character %q", c)), 0)
      end
      if op == "(" or op == "[" or op == "{" then
        stack[#stack + 1] = op
      elseif CLOSERS[op] then
        if stack[#stack] ~= CLOSERS[op] then
          error(new_error(src, pos, "unexpected '" .. op .. "'"), 0)
        end
        stack[#stack] = nil
      end
      tok = { type = "op", value = op, pos = pos }
      pos = pos + #op
    end
    toks[#toks + 1] = tok
  end
end

-- Text before a tag, with the tag's leading modifier applied.
local function trim_text(text, text_pos, src, kind, modifier)
  if modifier == "-" then
    return pystr.rstrip(text)
  end
  if kind ~= "var" and modifier ~= "+" then
    local last_nl = text:match(".*()\n")
    local l_pos = last_nl and last_nl + 1 or 1
    local line_starting = text_pos == 1 or sub(src, text_pos - 1, text_pos - 1) == "\n"
    if (last_nl or line_starting) and not find(text, "[^ \t]", l_pos) then
      return sub(text, 1, l_pos - 1)
    end
  end
  return text
end

-- Position after a closing tag once its trailing modifier has been applied.
local function skip_after(src, pos, modifier, kind)
  if modifier == "-" then
    -- Python's \s is Unicode whitespace; step code point by code point.
    while pos <= #src do
      local ch = match(src, "^[^\128-\191][\128-\191]*", pos)
      if not ch or not pystr.isspace(ch) then break end
      pos = pos + #ch
    end
    return pos
  end
  if kind ~= "var" and modifier ~= "+" and sub(src, pos, pos) == "\n" then
    return pos + 1
  end
  return pos
end

local function lex_raw(src, pos, toks, raw_start)
  local a, b, lead = find(src, "{%%([-+]?)%s*endraw%s*[-+]?%%}", pos)
  if not a then error(new_error(src, raw_start, "missing {% endraw %}"), 0) end
  local body = sub(src, pos, a - 1)
  if lead == "-" then body = pystr.rstrip(body) end
  if body ~= "" then toks[#toks + 1] = { type = "data", value = body, pos = pos } end
  local close_mod = match(sub(src, a, b), "([-+]?)%%}$")
  return skip_after(src, b + 1, close_mod, "block")
end

-- Returns the token list (ending with an eof token) and the normalized
-- source the positions refer to. Raises {msg, pos, src} on a lexical error.
function M.tokenize(source)
  local src = source:gsub("\r\n", "\n"):gsub("\r", "\n")
  if sub(src, -1) == "\n" then src = sub(src, 1, -2) end
  local toks, pos, n = {}, 1, #src
  while pos <= n do
    local a = find(src, "{[{%%#]", pos)
    local text = sub(src, pos, (a or n + 1) - 1)
    if not a then
      if text ~= "" then toks[#toks + 1] = { type = "data", value = text, pos = pos } end
      break
    end
    local open = sub(src, a + 1, a + 1)
    local kind = (open == "{" and "var") or (open == "%" and "block") or "comment"
    local modifier = match(sub(src, a + 2, a + 2), "[-+]") or ""
    text = trim_text(text, pos, src, kind, modifier)
    if text ~= "" then toks[#toks + 1] = { type = "data", value = text, pos = pos } end
    local inner = a + 2 + #modifier
    if kind == "comment" then
      local c = find(src, "#}", inner, true)
      if not c then error(new_error(src, a, "missing end of comment tag '#}'"), 0) end
      local close_mod = c > inner and match(sub(src, c - 1, c - 1), "[-+]") or ""
      pos = skip_after(src, c + 2, close_mod, "comment")
    elseif kind == "block" and find(src, "^%s*raw%s*[-+]?%%}", inner) then
      local _, raw_end = find(src, "^%s*raw%s*[-+]?%%}", inner)
      local close_mod = match(sub(src, raw_end - 2, raw_end - 2), "[-+]") or ""
      pos = lex_raw(src, skip_after(src, raw_end + 1, close_mod, "block"), toks, a)
    else
      toks[#toks + 1] = { type = kind == "var" and "var_begin" or "block_begin", pos = a }
      local close_mod
      pos, close_mod = lex_tag(src, inner, toks, kind == "var" and "}}" or "%}")
      pos = skip_after(src, pos, close_mod, kind)
    end
  end
  toks[#toks + 1] = { type = "eof", pos = n + 1 }
  return toks, src
end

M.unescape = unescape

return M
