-- ops.lua: Python/Jinja2 semantics of attribute access, subscripts, slices,
-- iteration, arithmetic and comparison on values.lua values.
--
-- Lookups follow Jinja2's environment.getattr/getitem: `a.b` tries the
-- attribute (a method such as dict.items) before the item, `a["b"]` the item
-- before the attribute, and a miss is an Undefined that only fails when used.

local V = require("tmrun.jinja.values")
local pystr = require("tmrun.jinja.pystr")
local methods = require("tmrun.jinja.methods")

local M = {}

local fail, none, tname = V.fail, V.none, V.type_name
local is_undef = V.is_undef
local floor = math.floor

-- A dict key the way Python hashes it: 1.0 and 1 are the same key.
function M.dict_key(k)
  local t = type(k)
  if t == "string" or t == "number" or t == "boolean" or k == none then return k end
  if V.is_float(k) then return k.v end
  fail("unhashable type: '%s'", tname(k))
end

local function bound(kind, obj, name)
  local impl = methods[kind][name]
  if not impl then return nil end
  return V.func(name, function(rt, args, kwargs) return impl(rt, obj, args, kwargs) end)
end

local function no_attr(obj, name)
  return V.undefined(string.format("'%s object' has no attribute '%s'", tname(obj), tostring(name)))
end

function M.getattr(obj, name)
  if is_undef(obj) then V.undef_fail(obj) end
  local t = type(obj)
  if t == "string" then return bound("str", obj, name) or no_attr(obj, name) end
  if obj == none then return V.undefined("'None' has no attribute '" .. name .. "'") end
  local mt = getmetatable(obj)
  if mt == V.Dict then
    local m = bound("dict", obj, name)
    if m then return m end
    local v = obj.map[name]
    if v ~= nil then return v end
    return no_attr(obj, name)
  elseif mt == V.Namespace then
    local v = obj.map[name]
    if v ~= nil then return v end
    return V.undefined("'Namespace' object has no attribute '" .. name .. "'")
  elseif mt == V.List then
    return bound("list", obj, name) or no_attr(obj, name)
  elseif mt and mt.__jinja_getattr then
    return mt.__jinja_getattr(obj, name)
  end
  return no_attr(obj, name)
end

local function index_of(n, key)
  local i = V.num(key)
  if not i or V.is_float(key) then return nil end
  if i < 0 then i = i + n end
  if i < 0 or i >= n then return nil end
  return i + 1
end

function M.getitem(obj, key)
  if is_undef(obj) then V.undef_fail(obj) end
  local mt = getmetatable(obj)
  if mt == V.Dict or mt == V.Namespace then
    local ok, k = pcall(M.dict_key, key)
    local v
    if ok then v = obj.map[k] end
    if v ~= nil then return v end
    if type(key) == "string" and mt == V.Dict then return bound("dict", obj, key) or no_attr(obj, key) end
    return no_attr(obj, V.str(key))
  elseif mt == V.List then
    if type(key) == "string" then return bound("list", obj, key) or no_attr(obj, key) end
    local i = index_of(obj.n, key)
    if i then return obj[i] end
    return V.undefined(string.format("%s object has no element %s", tname(obj), V.repr(key)))
  elseif type(obj) == "string" then
    if type(key) == "string" then return bound("str", obj, key) or no_attr(obj, key) end
    local chars = pystr.chars(obj)
    local i = index_of(#chars, key)
    if i then return chars[i] end
    return V.undefined("str object has no element " .. V.repr(key))
  elseif mt and mt.__jinja_getattr and type(key) == "string" then
    return mt.__jinja_getattr(obj, key)
  end
  return V.undefined(string.format("'%s' object is not subscriptable", tname(obj)))
end

-- Python's slice index adjustment (PySlice_AdjustIndices).
local function slice_range(n, start, stop, step)
  step = step or 1
  if step == 0 then fail("slice step cannot be zero") end
  local function adjust(i, default, lo, hi)
    if i == nil then return default end
    if i < 0 then
      i = i + n
      if i < 0 then i = lo end
    elseif i > hi then
      i = hi
    end
    return i
  end
  if step > 0 then
    return adjust(start, 0, 0, n), adjust(stop, n, 0, n), step
  end
  return adjust(start, n - 1, -1, n - 1), adjust(stop, -1, -1, n - 1), step
end

function M.slice(obj, start, stop, step)
  if is_undef(obj) then V.undef_fail(obj) end
  local items, is_str
  if type(obj) == "string" then
    items, is_str = pystr.chars(obj), true
  elseif V.is_list(obj) then
    items = obj
  else
    return V.undefined(string.format("'%s' object is not subscriptable", tname(obj)))
  end
  local n = is_str and #items or obj.n
  local i, j, s = slice_range(n, start, stop, step)
  local out = {}
  while (s > 0 and i < j) or (s < 0 and i > j) do
    out[#out + 1] = items[i + 1]
    i = i + s
  end
  if is_str then return table.concat(out) end
  local l = V.list(out, #out)
  l.tuple = obj.tuple
  return l
end

-- Items of an iterable as a Lua array: list items, dict keys, characters.
function M.iterate(v)
  if type(v) == "string" then return pystr.chars(v) end
  local mt = getmetatable(v)
  if mt == V.List then return { unpack(v, 1, v.n) } end
  if mt == V.Dict then return { unpack(v.keys, 1, v.size) } end
  if mt == V.Undefined then return {} end
  fail("'%s' object is not iterable", tname(v))
end

-- Python's len().
function M.len(v)
  if type(v) == "string" then return pystr.len(v) end
  local mt = getmetatable(v)
  if mt == V.List then return v.n end
  if mt == V.Dict then return v.size end
  if mt == V.Undefined then return 0 end
  fail("object of type '%s' has no len()", tname(v))
end

-- arithmetic -------------------------------------------------------------------

local function check_defined(a, b)
  if is_undef(a) then V.undef_fail(a) end
  if is_undef(b) then V.undef_fail(b) end
end

local function unsupported(op, a, b)
  fail("unsupported operand type(s) for %s: '%s' and '%s'", op, tname(a), tname(b))
end

local function repeat_seq(seq, times)
  times = math.max(0, times)
  if type(seq) == "string" then return string.rep(seq, times) end
  local out = V.list({}, 0)
  out.tuple = seq.tuple
  for _ = 1, times do
    for i = 1, seq.n do
      out.n = out.n + 1
      out[out.n] = seq[i]
    end
  end
  return out
end

local function add(a, b)
  if type(a) == "string" and type(b) == "string" then return a .. b end
  if V.is_list(a) and V.is_list(b) and (a.tuple or false) == (b.tuple or false) then
    local out = V.list({ unpack(a, 1, a.n) }, a.n)
    out.tuple = a.tuple
    for i = 1, b.n do out[a.n + i] = b[i] end
    out.n = a.n + b.n
    return out
  end
  unsupported("+", a, b)
end

function M.binop(op, a, b)
  check_defined(a, b)
  if op == "%" and type(a) == "string" then return require("tmrun.jinja.format").percent(a, b) end
  local x, y = V.num(a), V.num(b)
  if not (x and y) then
    if op == "+" then return add(a, b) end
    if op == "*" then
      if (type(a) == "string" or V.is_list(a)) and type(b) ~= "table" and y and not V.is_float(b) then
        return repeat_seq(a, y)
      end
      if (type(b) == "string" or V.is_list(b)) and x and not V.is_float(a) then return repeat_seq(b, x) end
    end
    unsupported(op, a, b)
  end
  local as_float = V.is_float(a) or V.is_float(b)
  if op == "+" then return V.make_num(x + y, as_float) end
  if op == "-" then return V.make_num(x - y, as_float) end
  if op == "*" then return V.make_num(x * y, as_float) end
  if op == "/" then
    if y == 0 then fail("division by zero") end
    return V.float(x / y)
  end
  if op == "//" then
    if y == 0 then fail("integer division or modulo by zero") end
    return V.make_num(floor(x / y), as_float)
  end
  if op == "%" then
    if y == 0 then fail("integer modulo by zero") end
    return V.make_num(x - floor(x / y) * y, as_float)
  end
  if op == "**" then
    if x == 0 and y < 0 then fail("0.0 cannot be raised to a negative power") end
    return V.make_num(x ^ y, as_float or y < 0)
  end
  fail("unknown operator '%s'", op)
end

function M.unary(op, v)
  if is_undef(v) then V.undef_fail(v) end
  local x = V.num(v)
  if not x then fail("bad operand type for unary %s: '%s'", op, tname(v)) end
  if op == "-" then x = -x end
  return V.make_num(x, V.is_float(v))
end

-- comparison -------------------------------------------------------------------

function M.contains(container, item)
  if type(container) == "string" then
    if type(item) ~= "string" then
      fail("'in <string>' requires string as left operand, not %s", tname(item))
    end
    return string.find(container, item, 1, true) ~= nil
  end
  local mt = getmetatable(container)
  if mt == V.List then
    for i = 1, container.n do
      if V.equal(container[i], item) then return true end
    end
    return false
  end
  if mt == V.Dict then return container.map[M.dict_key(item)] ~= nil end
  if mt == V.Undefined then return false end
  fail("argument of type '%s' is not iterable", tname(container))
end

function M.compare(op, a, b)
  if op == "==" then return V.equal(a, b) end
  if op == "!=" then return not V.equal(a, b) end
  if op == "in" then return M.contains(b, a) end
  if op == "notin" then return not M.contains(b, a) end
  check_defined(a, b)
  if op == "<" then return V.less(a, b) end
  if op == ">" then return V.less(b, a) end
  if op == "<=" then return V.less(a, b) or V.equal(a, b) end
  if op == ">=" then return V.less(b, a) or V.equal(a, b) end
  fail("unknown comparison '%s'", op)
end

-- The i-th positional or the named keyword argument of a builtin call.
function M.arg(args, kwargs, i, name, default)
  if args and i and i <= args.n then return args[i] end
  local v = kwargs and kwargs.map[name]
  if v ~= nil then return v end
  return default
end

return M
