-- filters.lua: Jinja2's builtin filters (jinja2/filters.py) plus the
-- `tojson` transformers installs for chat templates. Each filter is
-- f(rt, value, args, kwargs) with args a List and kwargs a Dict; names and
-- argument orders follow Python's, so `x|indent(2, first=true)` works.

local V = require("tmrun.jinja.values")
local ops = require("tmrun.jinja.ops")
local pystr = require("tmrun.jinja.pystr")

local F = {}

local fail, str, none, truthy = V.fail, V.str, V.none, V.truthy
local arg, iterate = ops.arg, ops.iterate

local function to_list(items)
  return V.list(items, #items)
end

local function soft_str(v) return str(v) end

-- attribute="a.b" / attribute=0: Jinja's make_attrgetter.
local function attr_getter(attribute, default)
  if attribute == nil or attribute == none then return function(x) return x end end
  local parts = {}
  if type(attribute) == "number" then
    parts[1] = attribute
  else
    for p in tostring(attribute):gmatch("[^%.]+") do parts[#parts + 1] = tonumber(p) or p end
  end
  return function(x)
    for _, p in ipairs(parts) do x = ops.getitem(x, p) end
    if default ~= nil and V.is_undef(x) then return default end
    return x
  end
end

local function sort_key(case_sensitive, get)
  return function(x)
    local k = get(x)
    if not case_sensitive and type(k) == "string" then return pystr.lower(k) end
    return k
  end
end

-- Stable sort (Python's sorted is stable; table.sort is not).
local function stable_sort(items, key, reverse)
  local decorated = {}
  for i, x in ipairs(items) do decorated[i] = { k = key(x), i = i, v = x } end
  table.sort(decorated, function(a, b)
    local c = V.compare(a.k, b.k)
    if c ~= 0 then
      if reverse then return c > 0 end
      return c < 0
    end
    return a.i < b.i
  end)
  local out = {}
  for i, d in ipairs(decorated) do out[i] = d.v end
  return out
end

F.abs = function(_, v)
  local x = V.num(v)
  if not x then fail("bad operand type for abs(): '%s'", V.type_name(v)) end
  return V.make_num(math.abs(x), V.is_float(v))
end

F.attr = function(_, v, args, kwargs) return ops.getattr(v, str(arg(args, kwargs, 1, "name"))) end

F.batch = function(_, v, args, kwargs)
  local size = V.num(arg(args, kwargs, 1, "linecount"))
  if not size or size < 1 then fail("batch size must be a positive integer") end
  local fill = arg(args, kwargs, 2, "fill_with")
  local out, cur = {}, {}
  for _, x in ipairs(iterate(v)) do
    cur[#cur + 1] = x
    if #cur == size then
      out[#out + 1] = to_list(cur)
      cur = {}
    end
  end
  if #cur > 0 then
    if fill ~= nil and fill ~= none then
      while #cur < size do cur[#cur + 1] = fill end
    end
    out[#out + 1] = to_list(cur)
  end
  return to_list(out)
end

F.capitalize = function(_, v) return pystr.capitalize(soft_str(v)) end
F.lower = function(_, v) return pystr.lower(soft_str(v)) end
F.upper = function(_, v) return pystr.upper(soft_str(v)) end
F.title = function(_, v) return pystr.title(soft_str(v)) end

F.center = function(_, v, args, kwargs)
  local s = soft_str(v)
  local width = V.num(arg(args, kwargs, 1, "width", 80))
  local pad = width - pystr.len(s)
  if pad <= 0 then return s end
  -- CPython puts the odd space on the right unless the width is odd.
  local left = math.floor(pad / 2) + ((pad % 2 == 1 and width % 2 == 1) and 1 or 0)
  return string.rep(" ", left) .. s .. string.rep(" ", pad - left)
end

F.length = function(_, v) return ops.len(v) end
F.count = F.length

F.default = function(_, v, args, kwargs)
  local default_value = arg(args, kwargs, 1, "default_value", "")
  local boolean = truthy(arg(args, kwargs, 2, "boolean", false))
  if V.is_undef(v) or (boolean and not truthy(v)) then return default_value end
  return v
end
F.d = F.default

F.dictsort = function(_, v, args, kwargs)
  if not V.is_dict(v) then fail("dictsort requires a mapping, got %s", V.type_name(v)) end
  local case_sensitive = truthy(arg(args, kwargs, 1, "case_sensitive", false))
  local by = arg(args, kwargs, 2, "by", "key")
  local reverse = truthy(arg(args, kwargs, 3, "reverse", false))
  if by ~= "key" and by ~= "value" then fail("You can only sort by either 'key' or 'value'") end
  local pos = by == "key" and 1 or 2
  local items = iterate(require("tmrun.jinja.methods").dict.items(nil, v))
  return to_list(stable_sort(items, sort_key(case_sensitive, function(p) return p[pos] end), reverse))
end

local HTML = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&#34;", ["'"] = "&#39;" }
F.escape = function(_, v) return (soft_str(v):gsub("[&<>\"']", HTML)) end
F.e = F.escape
F.forceescape = F.escape

F.first = function(_, v)
  local items = iterate(v)
  if #items == 0 then return V.undefined("No first item, sequence was empty.") end
  return items[1]
end

F.last = function(_, v)
  local items = iterate(v)
  if #items == 0 then return V.undefined("No last item, sequence was empty.") end
  return items[#items]
end

F.float = function(_, v, args, kwargs)
  local default = arg(args, kwargs, 1, "default", V.float(0))
  local x = V.num(v)
  if x then return V.float(x) end
  if type(v) == "string" then
    local parsed = tonumber(pystr.strip(v))
    if parsed then return V.float(parsed) end
  end
  return default
end

F.int = function(_, v, args, kwargs)
  local default = arg(args, kwargs, 1, "default", 0)
  local base = V.num(arg(args, kwargs, 2, "base", 10))
  local x = V.num(v)
  if not x and type(v) == "string" then
    local s = pystr.strip(v):gsub("_", "")
    x = tonumber(s, base)
    if not x and base == 10 then x = tonumber(s) end
  end
  if not x or x ~= x then return default end
  return x >= 0 and math.floor(x) or math.ceil(x)
end

F.format = function(_, v, args, kwargs)
  local fmt = require("tmrun.jinja.format")
  if kwargs.size > 0 then return fmt.percent(soft_str(v), kwargs) end
  return fmt.percent(soft_str(v), V.tuple({ unpack(args, 1, args.n) }, args.n))
end

-- Jinja2's do_indent, including its quirk of keeping a trailing newline.
F.indent = function(_, v, args, kwargs)
  local width = arg(args, kwargs, 1, "width", 4)
  local first = truthy(arg(args, kwargs, 2, "first", false))
  local blank = truthy(arg(args, kwargs, 3, "blank", false))
  local ind = type(width) == "string" and width or string.rep(" ", V.num(width) or 4)
  local lines = pystr.splitlines(soft_str(v) .. "\n")
  local rv
  if blank then
    rv = table.concat(lines, "\n" .. ind)
  else
    rv = table.remove(lines, 1) or ""
    if #lines > 0 then
      for i, line in ipairs(lines) do
        if line ~= "" then lines[i] = ind .. line end
      end
      rv = rv .. "\n" .. table.concat(lines, "\n")
    end
  end
  if first then rv = ind .. rv end
  return rv
end

F.items = function(_, v)
  if V.is_undef(v) then return V.list({}, 0) end
  if not V.is_dict(v) then fail("can only get item pairs from a mapping, not %s", V.type_name(v)) end
  return require("tmrun.jinja.methods").dict.items(nil, v)
end

F.join = function(_, v, args, kwargs)
  local sep = soft_str(arg(args, kwargs, 1, "d", ""))
  local get = attr_getter(arg(args, kwargs, 2, "attribute"))
  local parts = {}
  for i, x in ipairs(iterate(v)) do parts[i] = str(get(x)) end
  return table.concat(parts, sep)
end

F.list = function(_, v) return to_list(iterate(v)) end

-- The test or filter a select/map call names, applied to one item.
local function item_predicate(rt, args, kwargs, first_arg)
  local name = arg(args, nil, first_arg)
  if name == nil then return truthy end
  local test = require("tmrun.jinja.builtins").tests[name]
  if not test then fail("no test named '%s'", tostring(name)) end
  local rest = V.list({ unpack(args, first_arg + 1, args.n) }, math.max(0, args.n - first_arg))
  return function(x) return test(rt, x, rest, kwargs) end
end

local function select_items(rt, v, args, kwargs, want, with_attr)
  local get = function(x) return x end
  local first_arg = 1
  if with_attr then
    get = attr_getter(arg(args, nil, 1))
    first_arg = 2
  end
  local pred = item_predicate(rt, args, kwargs, first_arg)
  local out = {}
  for _, x in ipairs(iterate(v)) do
    if (pred(get(x)) and true or false) == want then out[#out + 1] = x end
  end
  return to_list(out)
end

F.select = function(rt, v, args, kwargs) return select_items(rt, v, args, kwargs, true, false) end
F.reject = function(rt, v, args, kwargs) return select_items(rt, v, args, kwargs, false, false) end
F.selectattr = function(rt, v, args, kwargs) return select_items(rt, v, args, kwargs, true, true) end
F.rejectattr = function(rt, v, args, kwargs) return select_items(rt, v, args, kwargs, false, true) end

F.map = function(rt, v, args, kwargs)
  local items = iterate(v)
  local out = {}
  local attribute = kwargs.map.attribute
  if attribute ~= nil then
    local get = attr_getter(attribute, kwargs.map.default)
    for i, x in ipairs(items) do out[i] = get(x) end
    return to_list(out)
  end
  local name = arg(args, nil, 1)
  local f = F[name]
  if not f then fail("no filter named '%s'", tostring(name)) end
  local rest = V.list({ unpack(args, 2, args.n) }, math.max(0, args.n - 1))
  for i, x in ipairs(items) do out[i] = f(rt, x, rest, kwargs) end
  return to_list(out)
end

local function min_max(v, args, kwargs, want)
  local case_sensitive = truthy(arg(args, kwargs, 1, "case_sensitive", false))
  local key = sort_key(case_sensitive, attr_getter(arg(args, kwargs, 2, "attribute")))
  local items = iterate(v)
  if #items == 0 then return V.undefined("No aggregated item, sequence was empty.") end
  local best = items[1]
  for i = 2, #items do
    if V.compare(key(items[i]), key(best)) == want then best = items[i] end
  end
  return best
end

F.max = function(_, v, args, kwargs) return min_max(v, args, kwargs, 1) end
F.min = function(_, v, args, kwargs) return min_max(v, args, kwargs, -1) end

F.pprint = function(_, v) return V.repr(v) end

F.replace = function(rt, v, args, kwargs)
  return require("tmrun.jinja.methods").str.replace(rt, soft_str(v), args, kwargs)
end

F.reverse = function(_, v)
  if type(v) == "string" then
    local chars = pystr.chars(v)
    local out = {}
    for i = #chars, 1, -1 do out[#out + 1] = chars[i] end
    return table.concat(out)
  end
  local items = iterate(v)
  local out = {}
  for i = #items, 1, -1 do out[#out + 1] = items[i] end
  return to_list(out)
end

F.round = function(_, v, args, kwargs)
  local x = V.num(v)
  if not x then fail("round requires a number, got %s", V.type_name(v)) end
  local precision = V.num(arg(args, kwargs, 1, "precision", 0)) or 0
  local method = arg(args, kwargs, 2, "method", "common")
  local m = 10 ^ precision
  local r
  if method == "common" then
    r = x >= 0 and math.floor(x * m + 0.5) / m or -math.floor(-x * m + 0.5) / m
  elseif method == "ceil" then
    r = math.ceil(x * m) / m
  elseif method == "floor" then
    r = math.floor(x * m) / m
  else
    fail("method must be 'common', 'ceil' or 'floor'")
  end
  return V.float(r)
end

F.safe = function(_, v) return v end

F.sort = function(_, v, args, kwargs)
  local reverse = truthy(arg(args, kwargs, 1, "reverse", false))
  local case_sensitive = truthy(arg(args, kwargs, 2, "case_sensitive", false))
  local get = attr_getter(arg(args, kwargs, 3, "attribute"))
  return to_list(stable_sort(iterate(v), sort_key(case_sensitive, get), reverse))
end

F.string = function(_, v) return str(v) end

F.striptags = function(_, v)
  local s = soft_str(v):gsub("<!%-%-.-%-%->", ""):gsub("<[^>]*>", "")
  return table.concat(pystr.split(s), " ")
end

F.sum = function(_, v, args, kwargs)
  local get = attr_getter(arg(args, kwargs, 1, "attribute"))
  local total = arg(args, kwargs, 2, "start", 0)
  for _, x in ipairs(iterate(v)) do total = ops.binop("+", total, get(x)) end
  return total
end

-- transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
F.tojson = function(_, v, args, kwargs)
  local indent = arg(args, kwargs, 2, "indent", none)
  local separators = arg(args, kwargs, 3, "separators", none)
  local opts = {
    ensure_ascii = truthy(arg(args, kwargs, 1, "ensure_ascii", false)),
    sort_keys = truthy(arg(args, kwargs, 4, "sort_keys", false)),
  }
  if indent ~= none then opts.indent = type(indent) == "string" and indent or V.num(indent) end
  if separators ~= none then
    if not (V.is_list(separators) and separators.n == 2) then fail("separators must be a pair of strings") end
    opts.separators = { str(separators[1]), str(separators[2]) }
  end
  return V.to_json(v, opts)
end

F.trim = function(_, v, args, kwargs)
  local chars = arg(args, kwargs, 1, "chars", none)
  return pystr.strip(soft_str(v), chars ~= none and str(chars) or nil)
end

F.truncate = function(_, v, args, kwargs)
  local s = soft_str(v)
  local length = V.num(arg(args, kwargs, 1, "length", 255))
  local killwords = truthy(arg(args, kwargs, 2, "killwords", false))
  local ending = str(arg(args, kwargs, 3, "end", "..."))
  local leeway = V.num(arg(args, kwargs, 4, "leeway", 5))
  local chars = pystr.chars(s)
  if #chars <= length + leeway then return s end
  local cut = table.concat(chars, "", 1, math.max(0, length - pystr.len(ending)))
  if killwords then return cut .. ending end
  local head = cut:match("^(.*) ") or cut
  return head .. ending
end

F.unique = function(_, v, args, kwargs)
  local case_sensitive = truthy(arg(args, kwargs, 1, "case_sensitive", false))
  local key = sort_key(case_sensitive, attr_getter(arg(args, kwargs, 2, "attribute")))
  local out, seen = {}, {}
  for _, x in ipairs(iterate(v)) do
    local k = key(x)
    local dup = false
    for _, s in ipairs(seen) do
      if V.equal(s, k) then dup = true break end
    end
    if not dup then
      seen[#seen + 1] = k
      out[#out + 1] = x
    end
  end
  return to_list(out)
end

F.wordcount = function(_, v)
  local n = 0
  for _ in soft_str(v):gmatch("[%w_\128-\255]+") do n = n + 1 end
  return n
end

return F
