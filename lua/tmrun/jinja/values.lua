-- values.lua: the Python value model the Jinja renderer works on.
--
-- Chat templates are written for Python's Jinja2, so the renderer keeps the
-- distinctions Python makes and Lua does not:
--   undefined   Undefined objects (a missing variable or key; prints as "")
--   None        the singleton `values.none` (JSON null, cjson.null)
--   bool        Lua booleans
--   int         plain Lua numbers with an integral value
--   float       Float boxes {v = number}; `/` and float literals make them
--   str         Lua strings holding UTF-8
--   list/tuple  List tables {n = count, [1..n] = value} (tuple = true for tuples)
--   dict        Dict tables keeping insertion order (Python dicts are ordered,
--               and tojson must reproduce the order the caller gave)
--   namespace   Namespace tables (mutable through `{% set ns.x = ... %}`)
--   callable    Func tables {fn = function(rt, args, kwargs), name = ...}
-- Errors raised here are tables {msg = ...}; the evaluator adds line/column.

local cjson_ok, cjson = pcall(require, "cjson")

local M = {}

local List = { __name = "list" }
local Dict = { __name = "dict" }
local Namespace = { __name = "namespace" }
local Float = { __name = "float" }
local Undefined = { __name = "undefined" }
local Func = { __name = "callable" }
local None = setmetatable({}, { __name = "none", __tostring = function() return "None" end })

M.List, M.Dict, M.Namespace, M.Float, M.Undefined, M.Func = List, Dict, Namespace, Float, Undefined, Func
M.none = None

local floor, huge = math.floor, math.huge
local sformat, concat = string.format, table.concat

function M.fail(fmt, ...)
  error({ msg = select("#", ...) > 0 and sformat(fmt, ...) or fmt }, 0)
end
local fail = M.fail

-- constructors ---------------------------------------------------------------

function M.list(items, n)
  items = items or {}
  items.n = n or items.n or #items
  return setmetatable(items, List)
end

function M.tuple(items, n)
  local l = M.list(items, n)
  l.tuple = true
  return l
end

function M.dict() return setmetatable({ keys = {}, map = {}, size = 0 }, Dict) end

-- Dict keys are Lua strings/numbers/booleans; the map is keyed by them directly.
function M.dict_set(d, k, v)
  if d.map[k] == nil then
    d.size = d.size + 1
    d.keys[d.size] = k
  end
  d.map[k] = v
end

function M.dict_get(d, k) return d.map[k] end

function M.namespace() return setmetatable({ keys = {}, map = {}, size = 0 }, Namespace) end

function M.float(x) return setmetatable({ v = x }, Float) end

function M.undefined(hint) return setmetatable({ hint = hint }, Undefined) end

function M.func(name, fn) return setmetatable({ name = name, fn = fn }, Func) end

-- type queries ---------------------------------------------------------------

function M.is_undef(v) return getmetatable(v) == Undefined end
function M.is_float(v) return getmetatable(v) == Float end
function M.is_list(v) return getmetatable(v) == List end
function M.is_dict(v) return getmetatable(v) == Dict end
function M.is_ns(v) return getmetatable(v) == Namespace end
function M.is_func(v) return getmetatable(v) == Func end
function M.is_int(v) return type(v) == "number" end
function M.is_number(v)
  local t = type(v)
  return t == "number" or t == "boolean" or getmetatable(v) == Float
end

-- Python's type names, for error messages that read like Python's.
function M.type_name(v)
  local t = type(v)
  if t == "string" then return "str" end
  if t == "number" then return "int" end
  if t == "boolean" then return "bool" end
  if v == None then return "NoneType" end
  local mt = getmetatable(v)
  if mt == List then return v.tuple and "tuple" or "list" end
  if mt and mt.__name then return mt.__name end
  return t
end

-- The numeric value of an int, float or bool (Python treats bool as int).
function M.num(v)
  local t = type(v)
  if t == "number" then return v end
  if t == "boolean" then return v and 1 or 0 end
  if getmetatable(v) == Float then return v.v end
  return nil
end

-- An arithmetic result: a float box when either operand was a float.
function M.make_num(x, as_float)
  if as_float then return M.float(x) end
  return x
end

-- undefined ------------------------------------------------------------------

-- Most operations on an undefined value are errors in Jinja2 (default
-- Undefined): printing, iterating, testing and `~` are the exceptions.
function M.undef_fail(u)
  fail(u.hint or "value is undefined")
end

-- truthiness -----------------------------------------------------------------

function M.truthy(v)
  local t = type(v)
  if t == "boolean" then return v end
  if t == "string" then return v ~= "" end
  if t == "number" then return v ~= 0 end
  if v == None then return false end
  local mt = getmetatable(v)
  if mt == Undefined then return false end
  if mt == List then return v.n > 0 end
  if mt == Dict then return v.size > 0 end
  if mt == Float then return v.v ~= 0 end
  return true
end

-- conversion from plain Lua data ----------------------------------------------

local function is_sequence(t)
  local n = #t
  local count = 0
  for _ in pairs(t) do
    count = count + 1
    if count > n then return false end
  end
  return count == n
end

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "boolean" then return (not a) and b end
  return a < b
end

-- Lua tables carry no key order, so a plain table becomes a dict with sorted
-- keys (deterministic); callers who need an order pass values.dict() objects.
-- A non-empty sequence becomes a list; an empty table becomes an empty list.
function M.from_lua(x, depth)
  depth = depth or 0
  if depth > 100 then fail("input nests deeper than 100 levels") end
  local t = type(x)
  if t == "string" or t == "boolean" then return x end
  if t == "number" then
    if x ~= x or x == huge or x == -huge or x ~= floor(x) then return M.float(x) end
    return x
  end
  if t == "nil" then return M.undefined() end
  if cjson_ok and x == cjson.null then return None end
  if t == "function" then
    return M.func("function", function(_, args) return M.from_lua(x(unpack(args, 1, args.n))) end)
  end
  if t ~= "table" then fail("cannot pass a Lua %s to a template", t) end
  local mt = getmetatable(x)
  if mt == List then
    local out = M.list({}, x.n)
    out.tuple = x.tuple
    for i = 1, x.n do out[i] = M.from_lua(x[i], depth + 1) end
    return out
  end
  if mt == Dict or mt == Namespace then
    local out = setmetatable({ keys = {}, map = {}, size = 0 }, mt)
    for i = 1, x.size do
      local k = x.keys[i]
      M.dict_set(out, k, M.from_lua(x.map[k], depth + 1))
    end
    return out
  end
  if mt ~= nil then return x end -- None, Float, Func, Undefined: already values
  if is_sequence(x) then
    local out = M.list({}, #x)
    for i = 1, #x do out[i] = M.from_lua(x[i], depth + 1) end
    return out
  end
  local keys = {}
  for k in pairs(x) do keys[#keys + 1] = k end
  table.sort(keys, key_less)
  local out = M.dict()
  for _, k in ipairs(keys) do M.dict_set(out, k, M.from_lua(x[k], depth + 1)) end
  return out
end

-- Back to plain Lua (lists as sequences, dicts as tables, None as nil).
function M.to_lua(v)
  local mt = getmetatable(v)
  if mt == List then
    local out = {}
    for i = 1, v.n do out[i] = M.to_lua(v[i]) end
    return out
  elseif mt == Dict or mt == Namespace then
    local out = {}
    for i = 1, v.size do out[v.keys[i]] = M.to_lua(v.map[v.keys[i]]) end
    return out
  elseif mt == Float then
    return v.v
  elseif v == None or mt == Undefined then
    return nil
  end
  return v
end

-- number formatting ----------------------------------------------------------

local format_int
M.format_int = function(x) return format_int(x) end

-- Python's repr(float): the shortest digits that round-trip, fixed notation
-- for exponents in [-4, 16), scientific (two-digit exponent) outside.
function M.format_float(x)
  if x ~= x then return "nan" end
  if x == huge then return "inf" end
  if x == -huge then return "-inf" end
  if x == 0 then return (1 / x < 0) and "-0.0" or "0.0" end
  local s
  for p = 0, 16 do
    s = sformat("%." .. p .. "e", x)
    if tonumber(s) == x then break end
  end
  local sign, int, frac, exp = s:match("^(-?)(%d)%.?(%d*)e([-+]%d+)$")
  exp = tonumber(exp)
  local digits = (int .. frac):gsub("0+$", "")
  if digits == "" then digits = "0" end
  if exp >= 16 or exp < -4 then
    local mant = digits:sub(1, 1)
    if #digits > 1 then mant = mant .. "." .. digits:sub(2) end
    return sformat("%s%se%s%02d", sign, mant, exp < 0 and "-" or "+", math.abs(exp))
  end
  if exp < 0 then
    return sign .. "0." .. string.rep("0", -exp - 1) .. digits
  end
  local ip, fp
  if #digits > exp + 1 then
    ip, fp = digits:sub(1, exp + 1), digits:sub(exp + 2)
  else
    ip, fp = digits .. string.rep("0", exp + 1 - #digits), "0"
  end
  return sign .. ip .. "." .. fp
end

-- Plain Lua numbers are ints; one that is not integral (a float used as a
-- dict key) still prints as a float rather than being truncated.
format_int = function(x)
  if x ~= floor(x) or x ~= x or x == huge or x == -huge then return M.format_float(x) end
  if x > -2 ^ 63 and x < 2 ^ 63 then return sformat("%d", x) end
  return sformat("%.0f", x)
end

-- str() and repr() -------------------------------------------------------------

local repr

-- Python's repr of a str: single quotes unless the text holds ' and no ".
local function repr_str(s)
  local q = "'"
  if s:find("'", 1, true) and not s:find('"', 1, true) then q = '"' end
  local out = s:gsub("[%z\1-\31\\'\"\127]", function(c)
    if c == "\\" then return "\\\\" end
    if c == q then return "\\" .. c end
    if c == "'" or c == '"' then return c end
    if c == "\n" then return "\\n" end
    if c == "\r" then return "\\r" end
    if c == "\t" then return "\\t" end
    return sformat("\\x%02x", c:byte())
  end)
  return q .. out .. q
end

local function repr_items(v, open, close)
  local parts = {}
  for i = 1, v.n do parts[i] = repr(v[i]) end
  if v.tuple and v.n == 1 then return "(" .. parts[1] .. ",)" end
  return open .. concat(parts, ", ") .. close
end

local function repr_mapping(v)
  local parts = {}
  for i = 1, v.size do
    local k = v.keys[i]
    parts[i] = repr(k) .. ": " .. repr(v.map[k])
  end
  return "{" .. concat(parts, ", ") .. "}"
end

function M.str(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return format_int(v) end
  if t == "boolean" then return v and "True" or "False" end
  if v == None then return "None" end
  local mt = getmetatable(v)
  if mt == Undefined then return "" end
  if mt == Float then return M.format_float(v.v) end
  if mt == List then return v.tuple and repr_items(v, "(", ")") or repr_items(v, "[", "]") end
  if mt == Dict then return repr_mapping(v) end
  if mt == Namespace then return "<Namespace " .. repr_mapping(v) .. ">" end
  if mt == Func then return "<function " .. tostring(v.name) .. ">" end
  if mt and mt.__jinja_str then return mt.__jinja_str(v) end
  return tostring(v)
end

repr = function(v)
  if type(v) == "string" then return repr_str(v) end
  if M.is_undef(v) then return "Undefined" end
  return M.str(v)
end
M.repr = repr

-- equality and ordering ------------------------------------------------------

local function equal(a, b)
  if a == b then return true end
  local na, nb = M.num(a), M.num(b)
  if na and nb then return na == nb end
  local ta, tb = type(a), type(b)
  if ta ~= "table" or tb ~= "table" then return false end
  local ma, mb = getmetatable(a), getmetatable(b)
  if ma ~= mb then return false end
  if ma == List then
    if a.n ~= b.n or (a.tuple or false) ~= (b.tuple or false) then return false end
    for i = 1, a.n do
      if not equal(a[i], b[i]) then return false end
    end
    return true
  end
  if ma == Dict or ma == Namespace then
    if a.size ~= b.size then return false end
    for i = 1, a.size do
      local k = a.keys[i]
      local bv = b.map[k]
      if bv == nil or not equal(a.map[k], bv) then return false end
    end
    return true
  end
  if ma == Undefined then return true end
  return false
end
M.equal = equal

-- Python's `<`: numbers with numbers, str with str, sequences element-wise.
local function less(a, b)
  local na, nb = M.num(a), M.num(b)
  if na and nb then return na < nb end
  if type(a) == "string" and type(b) == "string" then return a < b end
  if M.is_list(a) and M.is_list(b) then
    for i = 1, math.min(a.n, b.n) do
      if not equal(a[i], b[i]) then return less(a[i], b[i]) end
    end
    return a.n < b.n
  end
  fail("'<' not supported between instances of '%s' and '%s'", M.type_name(a), M.type_name(b))
end
M.less = less

function M.compare(a, b)
  if less(a, b) then return -1 end
  if less(b, a) then return 1 end
  return 0
end

-- JSON (the `tojson` transformers installs: json.dumps, ensure_ascii=False) --

local json_escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function json_string(s, ensure_ascii)
  local out = s:gsub('[%z\1-\31"\\]', function(c)
    return json_escapes[c] or sformat("\\u%04x", c:byte())
  end)
  if ensure_ascii then
    local pystr = require("tmrun.jinja.pystr")
    out = out:gsub("[\192-\247][\128-\191]*", function(ch)
      local cp = pystr.codepoint(ch)
      if cp >= 0x10000 then
        cp = cp - 0x10000
        return sformat("\\u%04x\\u%04x", 0xD800 + floor(cp / 0x400), 0xDC00 + cp % 0x400)
      end
      return sformat("\\u%04x", cp)
    end)
  end
  return '"' .. out .. '"'
end

local function json_key(k, opts)
  local t = type(k)
  if t == "string" then return json_string(k, opts.ensure_ascii) end
  if t == "number" then return '"' .. format_int(k) .. '"' end
  if t == "boolean" then return k and '"true"' or '"false"' end
  fail("keys must be str, int, float, bool or None, not %s", M.type_name(k))
end

local function json_encode(v, opts, depth)
  if depth > 200 then fail("tojson: value nests deeper than 200 levels") end
  local t = type(v)
  if t == "string" then return json_string(v, opts.ensure_ascii) end
  if t == "number" then return format_int(v) end
  if t == "boolean" then return v and "true" or "false" end
  if v == None then return "null" end
  local mt = getmetatable(v)
  if mt == Float then
    local x = v.v
    if x ~= x then return "NaN" end
    if x == huge then return "Infinity" end
    if x == -huge then return "-Infinity" end
    return M.format_float(x)
  end
  local pad, inner = "", ""
  if opts.indent then
    pad = "\n" .. string.rep(opts.indent, depth)
    inner = "\n" .. string.rep(opts.indent, depth + 1)
  end
  local parts = {}
  if mt == List then
    if v.n == 0 then return "[]" end
    for i = 1, v.n do parts[i] = json_encode(v[i], opts, depth + 1) end
    return "[" .. inner .. concat(parts, opts.item_sep .. inner) .. pad .. "]"
  end
  if mt == Dict or mt == Namespace then
    if v.size == 0 then return "{}" end
    local keys = { unpack(v.keys, 1, v.size) }
    if opts.sort_keys then table.sort(keys, key_less) end
    for i, k in ipairs(keys) do
      parts[i] = json_key(k, opts) .. opts.key_sep .. json_encode(v.map[k], opts, depth + 1)
    end
    return "{" .. inner .. concat(parts, opts.item_sep .. inner) .. pad .. "}"
  end
  fail("Object of type %s is not JSON serializable", M.type_name(v))
end

-- opts: indent (int or str), ensure_ascii, sort_keys, separators {item, key}.
function M.to_json(v, opts)
  opts = opts or {}
  local o = { ensure_ascii = opts.ensure_ascii, sort_keys = opts.sort_keys }
  if type(opts.indent) == "number" then
    o.indent = string.rep(" ", opts.indent)
  elseif type(opts.indent) == "string" then
    o.indent = opts.indent
  end
  if opts.separators then
    o.item_sep, o.key_sep = opts.separators[1], opts.separators[2]
  elseif o.indent then
    o.item_sep, o.key_sep = ",", ": "
  else
    o.item_sep, o.key_sep = ", ", ": "
  end
  return json_encode(v, o, 0)
end

return M
