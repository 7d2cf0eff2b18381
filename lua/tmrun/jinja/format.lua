-- format.lua: Python's two string-formatting mini-languages, as far as chat
-- templates use them: `"%s and %d" % (a, b)` and `"{} {name}".format(...)`.
-- Supported conversions: %s %r %d %i %f %F %e %g %x %X %o %c %% with flags,
-- width and precision; `%(key)s` against a dict. In str.format: automatic and
-- numbered fields, keyword fields, attribute/index chains are not supported,
-- and format specs are limited to the same printf-style subset.

local V = require("tmrun.jinja.values")

local M = {}

local fail, str, repr = V.fail, V.str, V.repr

local function to_number(v, conv)
  local x = V.num(v)
  if not x then fail("%%%s format: a real number is required, not %s", conv, V.type_name(v)) end
  return x
end

-- One printf-style conversion of value v.
local function convert(flags, width, prec, conv, v)
  local spec = "%" .. flags .. width .. (prec ~= "" and ("." .. prec) or "")
  if conv == "s" then return string.format(spec .. "s", str(v)) end
  if conv == "r" then return string.format(spec .. "s", repr(v)) end
  if conv == "c" then
    if type(v) == "string" then return string.format(spec .. "s", v) end
    return string.format(spec .. "s", require("tmrun.jinja.pystr").encode(to_number(v, conv)))
  end
  local x = to_number(v, conv)
  if conv == "d" or conv == "i" or conv == "x" or conv == "X" or conv == "o" then
    x = x >= 0 and math.floor(x) or math.ceil(x)
    return string.format(spec .. (conv == "i" and "d" or conv), x)
  end
  return string.format(spec .. conv, x)
end

local PATTERN = "%%(%b())([-+ #0]*)(%d*)%.?(%d*)([sridfFeEgGxXoc%%])"
local PATTERN_NOKEY = "%%([-+ #0]*)(%d*)%.?(%d*)([sridfFeEgGxXoc%%])"

-- `fmt % arg` (arg: a tuple for several values, a dict for %(key)s).
function M.percent(fmt, arg)
  if fmt:find("%%%(") then
    if not V.is_dict(arg) then fail("format requires a mapping") end
    return (fmt:gsub(PATTERN, function(key, flags, width, prec, conv)
      local v = arg.map[key:sub(2, -2)]
      if v == nil then fail("KeyError: %s", repr(key:sub(2, -2))) end
      return convert(flags, width, prec, conv, v)
    end))
  end
  local values
  if V.is_list(arg) and arg.tuple then
    values = { unpack(arg, 1, arg.n) }
  else
    values = { arg }
  end
  local used = 0
  local out = fmt:gsub(PATTERN_NOKEY, function(flags, width, prec, conv)
    if conv == "%" then return "%" end
    used = used + 1
    if used > #values then fail("not enough arguments for format string") end
    return convert(flags, width, prec, conv, values[used])
  end)
  if used < #values then fail("not all arguments converted during string formatting") end
  return out
end

-- str.format(*args, **kwargs).
function M.format(fmt, args, kwargs)
  local auto = 0
  local out = {}
  local i, n = 1, #fmt
  while i <= n do
    local c = fmt:sub(i, i)
    if c == "{" and fmt:sub(i + 1, i + 1) == "{" then
      out[#out + 1] = "{"
      i = i + 2
    elseif c == "}" and fmt:sub(i + 1, i + 1) == "}" then
      out[#out + 1] = "}"
      i = i + 2
    elseif c == "{" then
      local close = fmt:find("}", i, true)
      if not close then fail("Single '{' encountered in format string") end
      local field = fmt:sub(i + 1, close - 1)
      local name, spec = field:match("^([^:!]*)!?[rsa]?:?(.*)$")
      local v
      if name == "" then
        auto = auto + 1
        v = args[auto]
        if auto > args.n then fail("Replacement index %d out of range for positional args tuple", auto - 1) end
      elseif name:match("^%d+$") then
        local k = tonumber(name) + 1
        if k > args.n then fail("Replacement index %s out of range for positional args tuple", name) end
        v = args[k]
      else
        v = kwargs and kwargs.map[name]
        if v == nil then fail("KeyError: %s", repr(name)) end
      end
      if spec ~= "" then
        local flags, width, prec, conv = spec:match("^([-+ #0]*)(%d*)%.?(%d*)([sdfFeEgGxXo]?)$")
        if not flags then fail("unsupported format spec '%s'", spec) end
        if conv == "" then conv = type(v) == "string" and "s" or (V.is_float(v) and "g" or "s") end
        if flags:find("<") then flags = flags:gsub("<", "-") end
        out[#out + 1] = convert(flags, width, prec, conv, v)
      else
        out[#out + 1] = str(v)
      end
      i = close + 1
    elseif c == "}" then
      fail("Single '}' encountered in format string")
    else
      local j = fmt:find("[{}]", i) or n + 1
      out[#out + 1] = fmt:sub(i, j - 1)
      i = j
    end
  end
  return table.concat(out)
end

return M
