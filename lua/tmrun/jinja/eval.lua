-- eval.lua: walks the AST from parser.lua and renders it to a string.
--
-- Scopes are Lua tables chained with __index: globals <- caller's variables
-- <- template root <- one scope per loop iteration, macro call, block set and
-- filter block. `{% if %}` opens no scope, so a set inside it leaks, as in
-- Jinja2; a set inside a loop body does not survive the iteration (Jinja2
-- re-resolves loop-body names each iteration; @huggingface/jinja differs).
-- rt (the per-render state) remembers the node being evaluated so an error
-- raised anywhere below can be reported with its line and column.

local V = require("tmrun.jinja.values")
local B = require("tmrun.jinja.builtins")

local M = {}

local fail, str, truthy = V.fail, V.str, V.truthy
local none = V.none
local is_undef = V.is_undef

local MAX_DEPTH = 200

local ev -- ev(rt, node, scope) -> value
local exec_body -- exec_body(rt, body, scope, out) -> nil | "break" | "continue"

local function child(scope) return setmetatable({}, { __index = scope }) end

local function lookup(scope, name)
  local v = scope[name]
  if v == nil then return V.undefined("'" .. name .. "' is undefined") end
  return v
end

local function render_body(rt, body, scope)
  local out = { n = 0 }
  exec_body(rt, body, scope, out)
  return table.concat(out, "", 1, out.n)
end

-- expressions ------------------------------------------------------------------

local E = {}

E.const = function(_, node)
  if node.none then return none end
  if node.float then return V.float(node.float) end
  return node.value
end

E.name = function(_, node, scope) return lookup(scope, node.name) end

E.block_value = function(_, _, scope) return scope["\0block"] end

E.list = function(rt, node, scope)
  local out = V.list({}, #node.items)
  for i, item in ipairs(node.items) do out[i] = ev(rt, item, scope) end
  return out
end

E.tuple = function(rt, node, scope)
  local out = E.list(rt, node, scope)
  out.tuple = true
  return out
end

E.dict = function(rt, node, scope)
  local out = V.dict()
  for _, p in ipairs(node.pairs) do
    local k = ev(rt, p.key, scope)
    rt.pos = p.key.pos
    V.dict_set(out, B.dict_key(k), ev(rt, p.value, scope))
  end
  return out
end

E.getattr = function(rt, node, scope)
  local obj = ev(rt, node.obj, scope)
  rt.pos = node.pos
  return B.getattr(obj, node.attr)
end

E.getitem = function(rt, node, scope)
  local obj = ev(rt, node.obj, scope)
  local key = ev(rt, node.key, scope)
  rt.pos = node.pos
  return B.getitem(obj, key)
end

E.slice = function(rt, node, scope)
  local obj = ev(rt, node.obj, scope)
  local function bound(n)
    if not n then return nil end
    local v = ev(rt, n, scope)
    if v == none then return nil end
    if type(v) == "boolean" then return v and 1 or 0 end
    if type(v) ~= "number" then
      rt.pos = n.pos
      fail("slice indices must be integers or None, not %s", V.type_name(v))
    end
    return v
  end
  local start, stop, step = bound(node.start), bound(node.stop), bound(node.step)
  rt.pos = node.pos
  return B.slice(obj, start, stop, step)
end

-- Evaluates positional and keyword arguments (including *args and **kwargs).
local function eval_args(rt, node, scope)
  local args = V.list({}, 0)
  for i, a in ipairs(node.args) do args[i] = ev(rt, a, scope) end
  args.n = #node.args
  local kwargs = V.dict()
  for _, kw in ipairs(node.kwargs) do V.dict_set(kwargs, kw.name, ev(rt, kw.value, scope)) end
  if node.dyn_args then
    local extra = ev(rt, node.dyn_args, scope)
    rt.pos = node.dyn_args.pos
    for _, v in ipairs(B.iterate(extra)) do
      args.n = args.n + 1
      args[args.n] = v
    end
  end
  if node.dyn_kwargs then
    local extra = ev(rt, node.dyn_kwargs, scope)
    rt.pos = node.dyn_kwargs.pos
    if not V.is_dict(extra) then fail("argument after ** must be a mapping, not %s", V.type_name(extra)) end
    for i = 1, extra.size do
      local k = extra.keys[i]
      if type(k) ~= "string" then fail("keywords must be strings") end
      V.dict_set(kwargs, k, extra.map[k])
    end
  end
  return args, kwargs
end

function M.call_value(rt, fn, args, kwargs)
  kwargs = kwargs or V.dict()
  if is_undef(fn) then V.undef_fail(fn) end
  if not V.is_func(fn) then fail("'%s' object is not callable", V.type_name(fn)) end
  local result = fn.fn(rt, args, kwargs)
  if result == nil then return none end
  return result
end

E.call = function(rt, node, scope)
  local fn = ev(rt, node.fn, scope)
  local args, kwargs = eval_args(rt, node, scope)
  rt.pos = node.pos
  return M.call_value(rt, fn, args, kwargs)
end

E.filter = function(rt, node, scope)
  local value = ev(rt, node.expr, scope)
  local args, kwargs = eval_args(rt, node, scope)
  rt.pos = node.pos
  local f = B.filters[node.name]
  if not f then fail("no filter named '%s'", node.name) end
  return f(rt, value, args, kwargs)
end

E.test = function(rt, node, scope)
  local value = ev(rt, node.expr, scope)
  local args, kwargs = eval_args(rt, node, scope)
  rt.pos = node.pos
  local t = B.tests[node.name]
  if not t then fail("no test named '%s'", node.name) end
  return t(rt, value, args, kwargs) and true or false
end

E["and"] = function(rt, node, scope)
  local left = ev(rt, node.left, scope)
  if not truthy(left) then return left end
  return ev(rt, node.right, scope)
end

E["or"] = function(rt, node, scope)
  local left = ev(rt, node.left, scope)
  if truthy(left) then return left end
  return ev(rt, node.right, scope)
end

E["not"] = function(rt, node, scope) return not truthy(ev(rt, node.expr, scope)) end

E.neg = function(rt, node, scope)
  local v = ev(rt, node.expr, scope)
  rt.pos = node.pos
  return B.unary("-", v)
end

E.pos = function(rt, node, scope)
  local v = ev(rt, node.expr, scope)
  rt.pos = node.pos
  return B.unary("+", v)
end

E.binop = function(rt, node, scope)
  local a = ev(rt, node.left, scope)
  local b = ev(rt, node.right, scope)
  rt.pos = node.pos
  return B.binop(node.op, a, b)
end

E.concat = function(rt, node, scope)
  local parts = {}
  for i, item in ipairs(node.items) do parts[i] = str(ev(rt, item, scope)) end
  return table.concat(parts)
end

E.compare = function(rt, node, scope)
  local left = ev(rt, node.first, scope)
  for _, op in ipairs(node.ops) do
    local right = ev(rt, op.expr, scope)
    rt.pos = op.pos
    if not B.compare(op.op, left, right) then return false end
    left = right
  end
  return true
end

E.cond = function(rt, node, scope)
  if truthy(ev(rt, node.test, scope)) then return ev(rt, node.yes, scope) end
  if node.no then return ev(rt, node.no, scope) end
  return V.undefined("the inline if-expression evaluated to false and no else section was defined")
end

ev = function(rt, node, scope)
  local h = E[node.t]
  if not h then
    rt.pos = node.pos
    fail("cannot evaluate a '%s' node here", node.t)
  end
  return h(rt, node, scope)
end
M.eval = ev

-- statements -------------------------------------------------------------------

local S = {}

local function emit(out, s)
  if s ~= "" then
    out.n = out.n + 1
    out[out.n] = s
  end
end

S.data = function(_, node, _, out) emit(out, node.value) end

S.output = function(rt, node, scope, out) emit(out, str(ev(rt, node.expr, scope))) end

S.block = function(rt, node, scope, out) return exec_body(rt, node.body, scope, out) end

S["if"] = function(rt, node, scope, out)
  for i, test in ipairs(node.tests) do
    if truthy(ev(rt, test, scope)) then return exec_body(rt, node.bodies[i], scope, out) end
  end
  if node.else_body then return exec_body(rt, node.else_body, scope, out) end
end

-- Binds a set/for target (a name or a tuple of names) to a value.
local function assign(rt, target, value, scope)
  if target.t == "name" then
    rawset(scope, target.name, value)
    return
  end
  rt.pos = target.pos
  local items = B.iterate(value)
  local want = #target.items
  if #items > want then fail("too many values to unpack (expected %d)", want) end
  if #items < want then fail("not enough values to unpack (expected %d, got %d)", want, #items) end
  for i, name in ipairs(target.items) do rawset(scope, name.name, items[i]) end
end

S.set = function(rt, node, scope)
  local value = ev(rt, node.expr, scope)
  local target = node.target
  if target.t == "nsref" then
    rt.pos = target.pos
    local ns = lookup(scope, target.name)
    if not V.is_ns(ns) then fail("cannot assign attribute on non-namespace object") end
    V.dict_set(ns, target.attr, value)
    return
  end
  assign(rt, target, value, scope)
end

S.setblock = function(rt, node, scope)
  local inner = child(scope)
  local value = render_body(rt, node.body, inner)
  if node.filter then
    rawset(inner, "\0block", value)
    value = ev(rt, node.filter, inner)
  end
  S.set(rt, { target = node.target, expr = { t = "const", value = value } }, scope)
end

S.filterblock = function(rt, node, scope, out)
  local inner = child(scope)
  rawset(inner, "\0block", render_body(rt, node.body, inner))
  emit(out, str(ev(rt, node.filter, inner)))
end

S["break"] = function() return "break" end
S["continue"] = function() return "continue" end

-- The `loop` variable of a for loop.
local Loop = {}
local function loop_cycle(loop)
  return V.func("cycle", function(_, args)
    if args.n == 0 then fail("no items for cycling given") end
    return args[loop.index0 % args.n + 1]
  end)
end

local LOOP_ATTRS = {
  index = function(l) return l.index0 + 1 end,
  index0 = function(l) return l.index0 end,
  revindex = function(l) return l.length - l.index0 end,
  revindex0 = function(l) return l.length - l.index0 - 1 end,
  first = function(l) return l.index0 == 0 end,
  last = function(l) return l.index0 == l.length - 1 end,
  length = function(l) return l.length end,
  depth = function() return 1 end,
  depth0 = function() return 0 end,
  previtem = function(l)
    if l.index0 == 0 then return V.undefined("there is no previous item") end
    return l.items[l.index0]
  end,
  nextitem = function(l)
    if l.index0 == l.length - 1 then return V.undefined("there is no next item") end
    return l.items[l.index0 + 2]
  end,
  cycle = loop_cycle,
}
Loop.__name = "LoopContext"
Loop.__jinja_getattr = function(l, name)
  local f = LOOP_ATTRS[name]
  if f then return f(l) end
  return V.undefined("'LoopContext' object has no attribute '" .. name .. "'")
end
Loop.__jinja_str = function(l) return "<LoopContext " .. (l.index0 + 1) .. "/" .. l.length .. ">" end

S["for"] = function(rt, node, scope, out)
  local iterable = ev(rt, node.iter, scope)
  rt.pos = node.iter.pos
  local items = B.iterate(iterable)
  if node.filter then
    local kept = {}
    for _, item in ipairs(items) do
      local s = child(scope)
      assign(rt, node.target, item, s)
      if truthy(ev(rt, node.filter, s)) then kept[#kept + 1] = item end
    end
    items = kept
  end
  if #items == 0 then
    if node.else_body then return exec_body(rt, node.else_body, child(scope), out) end
    return
  end
  local loop = setmetatable({ index0 = 0, length = #items, items = items }, Loop)
  for i, item in ipairs(items) do
    local s = child(scope)
    loop.index0 = i - 1
    rawset(s, "loop", loop)
    assign(rt, node.target, item, s)
    if exec_body(rt, node.body, s, out) == "break" then break end
  end
end

-- Does any node under `node` read the variable `name`? (Jinja2 lets a macro
-- take extra arguments only when its body reads varargs / kwargs.)
local function reads_name(node, name)
  if type(node) ~= "table" then return false end
  if node.t == "name" and node.name == name then return true end
  for k, v in pairs(node) do
    if k ~= "pos" and type(v) == "table" and reads_name(v, name) then return true end
  end
  return false
end

local function bind_params(rt, macro, args, kwargs, scope)
  local params = macro.params
  local kw = kwargs.map
  local consumed = {}
  for i, p in ipairs(params) do
    local v
    if i <= args.n then
      v = args[i]
      if kw[p.name] ~= nil then fail("macro '%s' got multiple values for argument '%s'", macro.name, p.name) end
    elseif kw[p.name] ~= nil then
      v = kw[p.name]
    end
    consumed[p.name] = true
    if v == nil and p.default then
      v = ev(rt, p.default, scope)
    elseif v == nil then
      v = V.undefined("parameter '" .. p.name .. "' was not provided")
    end
    rawset(scope, p.name, v)
  end
  local varargs = V.list({}, 0)
  for i = #params + 1, args.n do
    varargs.n = varargs.n + 1
    varargs[varargs.n] = args[i]
  end
  local extra = V.dict()
  for i = 1, kwargs.size do
    local k = kwargs.keys[i]
    if not consumed[k] and k ~= "caller" then V.dict_set(extra, k, kw[k]) end
  end
  if varargs.n > 0 and not macro.uses_varargs then
    fail("macro '%s' takes not more than %d argument(s)", macro.name, #params)
  end
  if extra.size > 0 and not macro.uses_kwargs then
    fail("macro '%s' takes no keyword argument '%s'", macro.name, extra.keys[1])
  end
  rawset(scope, "varargs", varargs)
  rawset(scope, "kwargs", extra)
  if kw.caller ~= nil then rawset(scope, "caller", kw.caller) end
end

local function make_macro(node, def_scope)
  local macro = { name = node.name, params = node.params,
    uses_varargs = reads_name(node.body, "varargs"), uses_kwargs = reads_name(node.body, "kwargs") }
  return V.func(node.name, function(rt, args, kwargs)
    rt.depth = rt.depth + 1
    if rt.depth > MAX_DEPTH then fail("maximum macro recursion depth (%d) exceeded", MAX_DEPTH) end
    local scope = child(def_scope)
    bind_params(rt, macro, args, kwargs, scope)
    local s = render_body(rt, node.body, scope)
    rt.depth = rt.depth - 1
    return s
  end)
end

S.macro = function(_, node, scope)
  rawset(scope, node.name, make_macro(node, scope))
end

S.callblock = function(rt, node, scope, out)
  local caller = make_macro({ name = "caller", params = node.params, body = node.body }, scope)
  local fn = ev(rt, node.call.fn, scope)
  local args, kwargs = eval_args(rt, node.call, scope)
  V.dict_set(kwargs, "caller", caller)
  rt.pos = node.pos
  emit(out, str(M.call_value(rt, fn, args, kwargs)))
end

exec_body = function(rt, body, scope, out)
  for i = 1, #body do
    local node = body[i]
    local h = S[node.t]
    local signal = h(rt, node, scope, out)
    if signal then return signal end
  end
end

-- Renders a parsed body with `vars` (already converted with values.from_lua)
-- layered over the globals. Raises what the template raised; see init.lua.
function M.render(body, vars, rt)
  local globals = B.make_globals()
  local context = setmetatable(vars, { __index = globals })
  local root = child(context)
  rt.depth = 0
  return render_body(rt, body, root)
end

M.Loop = Loop

return M
