-- tmrun.jinja: a Jinja2-subset renderer for HuggingFace chat templates.
--
--   local jinja = require("tmrun.jinja")
--   local t = jinja.compile(source, { name = "tokenizer_config.json" })
--   local text = t:render({ messages = {...}, add_generation_prompt = true })
--
-- Semantics are Python Jinja2's as transformers configures it (trim_blocks,
-- lstrip_blocks, its tojson, raise_exception, strftime_now, loop controls);
-- docs/TEMPLATES.md lists what is supported and what is not.
--
-- Errors: compile() and render() raise a Lua error string
-- "NAME:LINE:COL: message" for a syntax or runtime error in the template; a
-- template's raise_exception("msg") raises exactly "msg". Passing something
-- that is not a template source or a table of variables is misuse, raised at
-- the caller's level.

local lexer = require("tmrun.jinja.lexer")
local parser = require("tmrun.jinja.parser")
local eval = require("tmrun.jinja.eval")
local V = require("tmrun.jinja.values")

local jinja = {}

jinja.values = V
jinja.none = V.none

local Template = {}
Template.__index = Template

local function located(name, src, pos, msg)
  if not pos then return string.format("%s: %s", name, msg) end
  local line, col = lexer.where(src, pos)
  return string.format("%s:%d:%d: %s", name, line, col, msg)
end

-- Compiles source; opts.name names the template in error messages.
function jinja.compile(source, opts)
  if type(source) ~= "string" then
    error("jinja.compile: source must be a string, got " .. type(source), 2)
  end
  opts = opts or {}
  local name = opts.name or "template"
  local ok, toks, src = pcall(lexer.tokenize, source)
  if not ok then
    if type(toks) == "table" then error(located(name, toks.src, toks.pos, toks.msg), 0) end
    error(toks, 0)
  end
  local ok2, body = pcall(parser.parse, toks)
  if not ok2 then
    if type(body) == "table" then error(located(name, src, body.pos, body.msg), 0) end
    error(body, 0)
  end
  return setmetatable({ name = name, src = src, body = body }, Template)
end

-- vars: a table of template variables (plain Lua data or values.lua values;
-- JSON null may be cjson.null or jinja.none). Returns the rendered string.
function Template:render(vars)
  if vars ~= nil and type(vars) ~= "table" then
    error("template:render: vars must be a table, got " .. type(vars), 2)
  end
  local rt = { pos = nil, depth = 0 }
  local ok, result = pcall(function()
    local converted = {}
    for k, v in pairs(vars or {}) do
      if type(k) ~= "string" then V.fail("template variable names must be strings, got %s", type(k)) end
      converted[k] = V.from_lua(v)
    end
    return eval.render(self.body, converted, rt)
  end)
  if ok then return result end
  if type(result) == "table" then
    if result.raise then error(result.msg, 0) end
    error(located(self.name, self.src, rt.pos, result.msg), 0)
  end
  error(located(self.name, self.src, rt.pos, "internal error: " .. tostring(result)), 0)
end

function jinja.render(source, vars, opts)
  return jinja.compile(source, opts):render(vars)
end

-- JSON decoding that keeps object key order (see json.lua).
function jinja.decode_json(text)
  return require("tmrun.jinja.json").decode(text)
end

return jinja
