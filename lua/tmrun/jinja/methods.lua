-- methods.lua: the Python methods a template may call on str, dict and list
-- values (`message.content.strip()`, `d.items()`, `x.split(",")`).
--
-- Like transformers' ImmutableSandboxedEnvironment, methods that mutate a
-- list or dict (append, pop, update, ...) exist but fail when called.
-- Each method is impl(rt, self, args, kwargs); args is a List, kwargs a Dict.

local V = require("tmrun.jinja.values")
local pystr = require("tmrun.jinja.pystr")

local M = { str = {}, dict = {}, list = {} }

local fail, none = V.fail, V.none

local function arg(args, kwargs, i, name, default)
  if i <= args.n then return args[i] end
  local v = kwargs and kwargs.map[name]
  if v ~= nil then return v end
  return default
end

local function want_str(v, what)
  if type(v) ~= "string" then fail("%s must be str, not %s", what, V.type_name(v)) end
  return v
end

local function opt_str(v, what)
  if v == nil or v == none then return nil end
  return want_str(v, what)
end

local function opt_int(v, default)
  if v == nil or v == none then return default end
  local x = V.num(v)
  if not x or V.is_float(v) then fail("an integer is required, got %s", V.type_name(v)) end
  return x
end

local function str_list(items)
  local out = V.list({}, #items)
  for i, s in ipairs(items) do out[i] = s end
  return out
end

-- str ------------------------------------------------------------------------

local S = M.str

S.upper = function(_, s) return pystr.upper(s) end
S.lower = function(_, s) return pystr.lower(s) end
S.title = function(_, s) return pystr.title(s) end
S.capitalize = function(_, s) return pystr.capitalize(s) end

for _, name in ipairs({ "strip", "lstrip", "rstrip" }) do
  S[name] = function(_, s, args, kwargs)
    return pystr[name](s, opt_str(arg(args, kwargs, 1, "chars"), name .. " arg"))
  end
end

local function affix_test(name, test)
  S[name] = function(_, s, args, kwargs)
    local affix = arg(args, kwargs, 1, "prefix")
    if affix == nil then fail("%s() takes at least 1 argument (0 given)", name) end
    local start = opt_int(arg(args, kwargs, 2, "start"), nil)
    local stop = opt_int(arg(args, kwargs, 3, "end"), nil)
    if start or stop then
      local ops = require("tmrun.jinja.ops")
      s = ops.slice(s, start, stop, nil)
    end
    if V.is_list(affix) and affix.tuple then
      for i = 1, affix.n do
        if test(s, want_str(affix[i], name .. " tuple item")) then return true end
      end
      return false
    end
    if type(affix) ~= "string" then
      fail("%s first arg must be str or a tuple of str, not %s", name, V.type_name(affix))
    end
    return test(s, affix)
  end
end
affix_test("startswith", function(s, p) return s:sub(1, #p) == p end)
affix_test("endswith", function(s, p) return p == "" or s:sub(-#p) == p end)

S.split = function(_, s, args, kwargs)
  local sep = opt_str(arg(args, kwargs, 1, "sep"), "separator")
  return str_list(pystr.split(s, sep, opt_int(arg(args, kwargs, 2, "maxsplit"), -1)))
end

S.rsplit = function(_, s, args, kwargs)
  local sep = opt_str(arg(args, kwargs, 1, "sep"), "separator")
  return str_list(pystr.rsplit(s, sep, opt_int(arg(args, kwargs, 2, "maxsplit"), -1)))
end

S.splitlines = function(_, s) return str_list(pystr.splitlines(s)) end

S.replace = function(_, s, args, kwargs)
  local old = want_str(arg(args, kwargs, 1, "old"), "replace() argument 1")
  local new = want_str(arg(args, kwargs, 2, "new"), "replace() argument 2")
  return pystr.replace(s, old, new, opt_int(arg(args, kwargs, 3, "count"), -1))
end

S.find = function(_, s, args, kwargs)
  return pystr.find(s, want_str(arg(args, kwargs, 1, "sub"), "find() argument"), false)
end

S.rfind = function(_, s, args, kwargs)
  return pystr.find(s, want_str(arg(args, kwargs, 1, "sub"), "rfind() argument"), true)
end

S.index = function(_, s, args, kwargs)
  local i = pystr.find(s, want_str(arg(args, kwargs, 1, "sub"), "index() argument"), false)
  if i < 0 then fail("substring not found") end
  return i
end

S.count = function(_, s, args, kwargs)
  return pystr.count(s, want_str(arg(args, kwargs, 1, "sub"), "count() argument"))
end

S.join = function(_, s, args, kwargs)
  local ops = require("tmrun.jinja.ops")
  local items = ops.iterate(arg(args, kwargs, 1, "iterable", V.list({}, 0)))
  for i, item in ipairs(items) do
    if type(item) ~= "string" then
      fail("sequence item %d: expected str instance, %s found", i - 1, V.type_name(item))
    end
  end
  return table.concat(items, s)
end

S.format = function(_, s, args, kwargs) return require("tmrun.jinja.format").format(s, args, kwargs) end

local function char_class(pattern)
  return function(_, s)
    if s == "" then return false end
    return not s:find(pattern)
  end
end
S.isdigit = char_class("[^%d]")
S.isalpha = char_class("[^%a\128-\255]")
S.isalnum = char_class("[^%w\128-\255]")
S.isspace = function(_, s) return pystr.isspace(s) end
S.islower = function(_, s) return s:find("%l") ~= nil and not s:find("%u") end
S.isupper = function(_, s) return s:find("%u") ~= nil and not s:find("%l") end

S.zfill = function(_, s, args, kwargs)
  local width = opt_int(arg(args, kwargs, 1, "width"), 0)
  local sign, rest = s:match("^([-+]?)(.*)$")
  local pad = width - pystr.len(s)
  if pad <= 0 then return s end
  return sign .. string.rep("0", pad) .. rest
end

-- dict -----------------------------------------------------------------------

local D = M.dict

D.get = function(_, d, args, kwargs)
  local ops = require("tmrun.jinja.ops")
  local key = arg(args, kwargs, 1, "key")
  if key == nil then fail("get expected at least 1 argument, got 0") end
  local v = d.map[ops.dict_key(key)]
  if v ~= nil then return v end
  return arg(args, kwargs, 2, "default", none)
end

D.items = function(_, d)
  local out = V.list({}, d.size)
  for i = 1, d.size do
    local k = d.keys[i]
    out[i] = V.tuple({ k, d.map[k] }, 2)
  end
  return out
end

D.keys = function(_, d) return V.list({ unpack(d.keys, 1, d.size) }, d.size) end

D.values = function(_, d)
  local out = V.list({}, d.size)
  for i = 1, d.size do out[i] = d.map[d.keys[i]] end
  return out
end

D.copy = function(_, d) return V.from_lua(d) end

-- list -----------------------------------------------------------------------

local L = M.list

L.index = function(_, l, args, kwargs)
  local x = arg(args, kwargs, 1, "value")
  for i = 1, l.n do
    if V.equal(l[i], x) then return i - 1 end
  end
  fail("%s is not in list", V.repr(x))
end

L.count = function(_, l, args, kwargs)
  local x, n = arg(args, kwargs, 1, "value"), 0
  for i = 1, l.n do
    if V.equal(l[i], x) then n = n + 1 end
  end
  return n
end

L.copy = function(_, l) return V.from_lua(l) end

-- The sandbox transformers renders with forbids mutation.
local function unsafe(kind, name)
  return function() fail("access to attribute '%s' of '%s' object is unsafe", name, kind) end
end
for _, name in ipairs({ "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse" }) do
  L[name] = unsafe("list", name)
end
for _, name in ipairs({ "pop", "popitem", "update", "setdefault", "clear" }) do
  D[name] = unsafe("dict", name)
end

return M
