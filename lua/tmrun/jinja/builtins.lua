-- builtins.lua: what a template can reach by name: the tests of `x is name`
-- (jinja2/tests.py), the globals transformers gives chat templates
-- (raise_exception, strftime_now, range, namespace, dict, joiner), and, re-
-- exported for eval.lua, the filters and the operations of ops.lua.

local V = require("tmrun.jinja.values")
local ops = require("tmrun.jinja.ops")

local M = {}

for k, v in pairs(ops) do M[k] = v end
M.filters = require("tmrun.jinja.filters")

local fail, none, truthy, str = V.fail, V.none, V.truthy, V.str
local arg = ops.arg

-- tests ------------------------------------------------------------------------

local T = {}
M.tests = T

local function other(args, kwargs)
  local v = arg(args, kwargs, 1, "other")
  if v == nil then fail("test requires an argument to compare with") end
  return v
end

T.defined = function(_, v) return not V.is_undef(v) end
T.undefined = function(_, v) return V.is_undef(v) end
T.none = function(_, v) return v == none end
T.boolean = function(_, v) return type(v) == "boolean" end
T["true"] = function(_, v) return v == true end
T["false"] = function(_, v) return v == false end
T.string = function(_, v) return type(v) == "string" end
T.number = function(_, v) return V.is_number(v) end
T.integer = function(_, v) return type(v) == "number" end
T.float = function(_, v) return V.is_float(v) end
T.mapping = function(_, v) return V.is_dict(v) end
T.callable = function(_, v) return V.is_func(v) end
T.iterable = function(_, v)
  return type(v) == "string" or V.is_list(v) or V.is_dict(v) or V.is_undef(v)
end
T.sequence = function(_, v)
  return type(v) == "string" or V.is_list(v) or V.is_dict(v) or V.is_undef(v)
end
T.escaped = function() return false end

local function int_test(name, f)
  T[name] = function(_, v)
    if type(v) ~= "number" and type(v) ~= "boolean" then
      fail("test '%s' needs an integer, got %s", name, V.type_name(v))
    end
    return f(V.num(v))
  end
end
int_test("odd", function(x) return x % 2 == 1 end)
int_test("even", function(x) return x % 2 == 0 end)

T.divisibleby = function(_, v, args, kwargs)
  local n = V.num(arg(args, kwargs, 1, "num"))
  local x = V.num(v)
  if not (x and n) then fail("divisibleby needs numbers") end
  if n == 0 then fail("integer division or modulo by zero") end
  return x % n == 0
end

T.lower = function(_, v)
  local s = str(v)
  return s:find("%l") ~= nil and not s:find("%u")
end
T.upper = function(_, v)
  local s = str(v)
  return s:find("%u") ~= nil and not s:find("%l")
end

T.sameas = function(_, v, args, kwargs)
  local o = other(args, kwargs)
  if type(v) == "table" or type(o) == "table" then return rawequal(v, o) end
  return v == o and type(v) == type(o)
end

local function compare_test(op)
  return function(_, v, args, kwargs) return ops.compare(op, v, other(args, kwargs)) end
end
for names, op in pairs({ ["eq equalto =="] = "==", ["ne !="] = "!=", ["lt lessthan <"] = "<",
  ["le <="] = "<=", ["gt greaterthan >"] = ">", ["ge >="] = ">=" }) do
  for name in names:gmatch("%S+") do T[name] = compare_test(op) end
end

T["in"] = function(_, v, args, kwargs)
  return ops.contains(arg(args, kwargs, 1, "seq", V.list({}, 0)), v)
end

T.filter = function(_, v) return M.filters[v] ~= nil end
T.test = function(_, v) return T[v] ~= nil end

-- globals ----------------------------------------------------------------------

-- Jinja2's sandbox refuses ranges longer than this (MAX_RANGE).
local MAX_RANGE = 100000

local function int_arg(v, what)
  local x = V.num(v)
  if not x or V.is_float(v) then fail("%s must be an integer, not %s", what, V.type_name(v)) end
  return x
end

local function range(_, args)
  local start, stop, step = 0, nil, 1
  if args.n == 1 then
    stop = int_arg(args[1], "range() argument")
  elseif args.n >= 2 then
    start, stop = int_arg(args[1], "range() start"), int_arg(args[2], "range() stop")
    if args.n >= 3 then step = int_arg(args[3], "range() step") end
  else
    fail("range expected at least 1 argument, got 0")
  end
  if step == 0 then fail("range() arg 3 must not be zero") end
  local count = math.max(0, math.ceil((stop - start) / step))
  if count > MAX_RANGE then fail("range too big, maximum size for range is %d", MAX_RANGE) end
  local out = V.list({}, count)
  for i = 1, count do out[i] = start + (i - 1) * step end
  return out
end

-- namespace(mapping_or_pairs?, **kwargs) and dict(...): Python's dict().
local function fill_mapping(out, args, kwargs, what)
  if args.n > 1 then fail("%s expected at most 1 argument, got %d", what, args.n) end
  if args.n == 1 then
    local src = args[1]
    if V.is_dict(src) then
      for i = 1, src.size do V.dict_set(out, src.keys[i], src.map[src.keys[i]]) end
    else
      for _, pair in ipairs(ops.iterate(src)) do
        local kv = ops.iterate(pair)
        if #kv ~= 2 then fail("%s: sequence element has length %d; 2 is required", what, #kv) end
        V.dict_set(out, ops.dict_key(kv[1]), kv[2])
      end
    end
  end
  for i = 1, kwargs.size do V.dict_set(out, kwargs.keys[i], kwargs.map[kwargs.keys[i]]) end
  return out
end

local function raise_exception(_, args)
  error({ raise = true, msg = str(args.n > 0 and args[1] or "") }, 0)
end

local function strftime_now(_, args)
  local fmt = args[1]
  if type(fmt) ~= "string" then fail("strftime_now() needs a format string") end
  return os.date(fmt)
end

local function joiner(_, args, kwargs)
  local sep = str(arg(args, kwargs, 1, "sep", ", "))
  local used = false
  return V.func("joiner", function()
    if used then return sep end
    used = true
    return ""
  end)
end

-- A fresh table of globals for one render (namespaces created by a render
-- must not leak into the next one).
function M.make_globals()
  return {
    range = V.func("range", range),
    namespace = V.func("namespace", function(_, args, kwargs)
      return fill_mapping(V.namespace(), args, kwargs, "namespace")
    end),
    dict = V.func("dict", function(_, args, kwargs) return fill_mapping(V.dict(), args, kwargs, "dict") end),
    raise_exception = V.func("raise_exception", raise_exception),
    strftime_now = V.func("strftime_now", strftime_now),
    joiner = V.func("joiner", joiner),
  }
end

M.truthy = truthy

return M
