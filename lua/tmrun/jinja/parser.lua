-- parser.lua: token list -> AST, a recursive descent that follows Jinja2's own
-- parser (jinja2/parser.py) so precedence and the odd corners match Python:
--   condexpr (a if b else c) < or < and < not < compare (== != < > <= >= in,
--   not in; chained) < + - < ~ < * / // % < ** < unary - + < postfix (. [] ())
--   and filters/tests (| name, is name), which bind to the primary before them.
-- Nodes are tables {t = kind, pos = byte offset, ...}; see eval.lua for kinds.

local M = {}

local P = {}
P.__index = P

local function perr(pos, fmt, ...)
  error({ msg = string.format(fmt, ...), pos = pos }, 0)
end

local function describe(tok)
  if tok.type == "eof" then return "end of template" end
  if tok.type == "name" or tok.type == "op" then return "'" .. tostring(tok.value) .. "'" end
  if tok.type == "string" then return "string" end
  if tok.type == "int" or tok.type == "float" then return "number" end
  if tok.type == "block_end" then return "'%}'" end
  if tok.type == "var_end" then return "'}}'" end
  if tok.type == "block_begin" then return "'{%'" end
  if tok.type == "var_begin" then return "'{{'" end
  return tok.type
end

function P:peek(k) return self.toks[self.i + (k or 0)] end
function P:next()
  local t = self.toks[self.i]
  self.i = self.i + 1
  return t
end

function P:is_op(v, k)
  local t = self:peek(k)
  return t.type == "op" and t.value == v
end

function P:is_name(v, k)
  local t = self:peek(k)
  return t.type == "name" and t.value == v
end

function P:expect_op(v)
  local t = self:peek()
  if t.type ~= "op" or t.value ~= v then perr(t.pos, "expected '%s', got %s", v, describe(t)) end
  return self:next()
end

function P:expect_name(v)
  local t = self:peek()
  if t.type ~= "name" or (v and t.value ~= v) then
    perr(t.pos, "expected %s, got %s", v and ("'" .. v .. "'") or "a name", describe(t))
  end
  return self:next()
end

function P:expect_type(ty, what)
  local t = self:peek()
  if t.type ~= ty then perr(t.pos, "expected %s, got %s", what, describe(t)) end
  return self:next()
end

-- expressions ------------------------------------------------------------------

local CONSTANTS = { ["true"] = true, ["True"] = true, ["false"] = false, ["False"] = false }
local NONE_NAMES = { none = true, None = true }

function P:parse_expression(with_condexpr)
  if with_condexpr == false then return self:parse_or() end
  return self:parse_condexpr()
end

function P:parse_condexpr()
  local expr1 = self:parse_or()
  while self:is_name("if") do
    local pos = self:next().pos
    local test = self:parse_or()
    local no
    if self:is_name("else") then
      self:next()
      no = self:parse_condexpr()
    end
    expr1 = { t = "cond", pos = pos, test = test, yes = expr1, no = no }
  end
  return expr1
end

function P:parse_or()
  local left = self:parse_and()
  while self:is_name("or") do
    local pos = self:next().pos
    left = { t = "or", pos = pos, left = left, right = self:parse_and() }
  end
  return left
end

function P:parse_and()
  local left = self:parse_not()
  while self:is_name("and") do
    local pos = self:next().pos
    left = { t = "and", pos = pos, left = left, right = self:parse_not() }
  end
  return left
end

function P:parse_not()
  if self:is_name("not") then
    local pos = self:next().pos
    return { t = "not", pos = pos, expr = self:parse_not() }
  end
  return self:parse_compare()
end

local COMPARE_OPS = { ["=="] = true, ["!="] = true, ["<"] = true, [">"] = true,
  ["<="] = true, [">="] = true }

function P:parse_compare()
  local first = self:parse_math1()
  local ops = {}
  while true do
    local t = self:peek()
    if t.type == "op" and COMPARE_OPS[t.value] then
      self:next()
      ops[#ops + 1] = { op = t.value, pos = t.pos, expr = self:parse_math1() }
    elseif self:is_name("in") then
      self:next()
      ops[#ops + 1] = { op = "in", pos = t.pos, expr = self:parse_math1() }
    elseif self:is_name("not") and self:is_name("in", 1) then
      self:next(); self:next()
      ops[#ops + 1] = { op = "notin", pos = t.pos, expr = self:parse_math1() }
    else
      break
    end
  end
  if #ops == 0 then return first end
  return { t = "compare", pos = ops[1].pos, first = first, ops = ops }
end

function P:parse_binary(sub, ops)
  local left = self[sub](self)
  while true do
    local t = self:peek()
    if not (t.type == "op" and ops[t.value]) then return left end
    self:next()
    left = { t = "binop", op = t.value, pos = t.pos, left = left, right = self[sub](self) }
  end
end

function P:parse_math1() return self:parse_binary("parse_concat", { ["+"] = true, ["-"] = true }) end

function P:parse_concat()
  local first = self:parse_math2()
  if not self:is_op("~") then return first end
  local node = { t = "concat", pos = self:peek().pos, items = { first } }
  while self:is_op("~") do
    self:next()
    node.items[#node.items + 1] = self:parse_math2()
  end
  return node
end

function P:parse_math2()
  return self:parse_binary("parse_pow", { ["*"] = true, ["/"] = true, ["//"] = true, ["%"] = true })
end

function P:parse_pow() return self:parse_binary("parse_unary", { ["**"] = true }) end

function P:parse_unary(with_filter)
  local t = self:peek()
  local node
  if t.type == "op" and (t.value == "-" or t.value == "+") then
    self:next()
    node = { t = t.value == "-" and "neg" or "pos", pos = t.pos, expr = self:parse_unary(false) }
  else
    node = self:parse_primary()
  end
  node = self:parse_postfix(node)
  if with_filter ~= false then node = self:parse_filter_expr(node) end
  return node
end

function P:parse_primary()
  local t = self:next()
  if t.type == "name" then
    if CONSTANTS[t.value] ~= nil then return { t = "const", pos = t.pos, value = CONSTANTS[t.value] } end
    if NONE_NAMES[t.value] then return { t = "const", pos = t.pos, none = true } end
    return { t = "name", pos = t.pos, name = t.value }
  elseif t.type == "string" then
    local buf = { t.value }
    while self:peek().type == "string" do buf[#buf + 1] = self:next().value end
    return { t = "const", pos = t.pos, value = table.concat(buf) }
  elseif t.type == "int" then
    return { t = "const", pos = t.pos, value = t.value }
  elseif t.type == "float" then
    return { t = "const", pos = t.pos, float = t.value }
  elseif t.type == "op" and t.value == "(" then
    local node = self:parse_tuple({ explicit_parentheses = true })
    self:expect_op(")")
    return node
  elseif t.type == "op" and t.value == "[" then
    return self:parse_list(t)
  elseif t.type == "op" and t.value == "{" then
    return self:parse_dict(t)
  end
  perr(t.pos, "unexpected %s", describe(t))
end

function P:parse_list(open)
  local items = {}
  while not self:is_op("]") do
    if #items > 0 then
      self:expect_op(",")
      if self:is_op("]") then break end
    end
    items[#items + 1] = self:parse_expression()
  end
  self:expect_op("]")
  return { t = "list", pos = open.pos, items = items }
end

function P:parse_dict(open)
  local pairs_ = {}
  while not self:is_op("}") do
    if #pairs_ > 0 then
      self:expect_op(",")
      if self:is_op("}") then break end
    end
    local key = self:parse_expression()
    self:expect_op(":")
    pairs_[#pairs_ + 1] = { key = key, value = self:parse_expression() }
  end
  self:expect_op("}")
  return { t = "dict", pos = open.pos, pairs = pairs_ }
end

-- opts: simplified (primaries only), with_condexpr, extra_end (set of names),
-- explicit_parentheses (an empty "()" is an empty tuple).
function P:parse_tuple(opts)
  opts = opts or {}
  local pos = self:peek().pos
  local items, is_tuple = {}, false
  while true do
    if #items > 0 then self:expect_op(",") end
    local t = self:peek()
    if t.type == "var_end" or t.type == "block_end" or (t.type == "op" and t.value == ")")
        or (opts.extra_end and t.type == "name" and opts.extra_end[t.value]) then
      break
    end
    if opts.simplified then
      items[#items + 1] = self:parse_primary()
    else
      items[#items + 1] = self:parse_expression(opts.with_condexpr)
    end
    if self:is_op(",") then is_tuple = true else break end
  end
  if not is_tuple then
    if #items > 0 then return items[1] end
    if not opts.explicit_parentheses then
      perr(self:peek().pos, "expected an expression, got %s", describe(self:peek()))
    end
  end
  return { t = "tuple", pos = pos, items = items }
end

function P:parse_postfix(node)
  while true do
    local t = self:peek()
    if t.type == "op" and (t.value == "." or t.value == "[") then
      node = self:parse_subscript(node)
    elseif t.type == "op" and t.value == "(" then
      node = self:parse_call(node)
    else
      return node
    end
  end
end

function P:parse_filter_expr(node)
  while true do
    local t = self:peek()
    if t.type == "op" and t.value == "|" then
      node = self:parse_filter(node)
    elseif t.type == "name" and t.value == "is" then
      node = self:parse_test(node)
    elseif t.type == "op" and t.value == "(" then
      node = self:parse_call(node)
    else
      return node
    end
  end
end

function P:parse_subscript(node)
  local t = self:next()
  if t.value == "." then
    local attr = self:next()
    if attr.type == "name" then
      return { t = "getattr", pos = attr.pos, obj = node, attr = attr.value }
    elseif attr.type == "int" then
      return { t = "getitem", pos = attr.pos, obj = node, key = { t = "const", pos = attr.pos, value = attr.value } }
    end
    perr(attr.pos, "expected a name after '.', got %s", describe(attr))
  end
  local args = {}
  while not self:is_op("]") do
    if #args > 0 then self:expect_op(",") end
    args[#args + 1] = self:parse_subscribed()
  end
  self:expect_op("]")
  if #args == 0 then perr(t.pos, "expected a subscript inside '[]'") end
  local key = #args == 1 and args[1] or { t = "tuple", pos = t.pos, items = args }
  if key.t == "slice" then
    key.obj = node
    return key
  end
  return { t = "getitem", pos = t.pos, obj = node, key = key }
end

function P:parse_subscribed()
  local pos = self:peek().pos
  local start
  if not self:is_op(":") then
    start = self:parse_expression()
    if not self:is_op(":") then return start end
  end
  self:next()
  local stop, step
  if not (self:is_op("]") or self:is_op(",") or self:is_op(":")) then stop = self:parse_expression() end
  if self:is_op(":") then
    self:next()
    if not (self:is_op("]") or self:is_op(",")) then step = self:parse_expression() end
  end
  return { t = "slice", pos = pos, start = start, stop = stop, step = step }
end

-- Arguments of a call, filter or test: positional, name=value, *args, **kwargs.
function P:parse_call_args()
  local open = self:expect_op("(")
  local args, kwargs = {}, {}
  local dyn_args, dyn_kwargs
  while not self:is_op(")") do
    if #args + #kwargs > 0 or dyn_args or dyn_kwargs then
      self:expect_op(",")
      if self:is_op(")") then break end
    end
    local t = self:peek()
    if self:is_op("*") then
      self:next()
      dyn_args = self:parse_expression()
    elseif self:is_op("**") then
      self:next()
      dyn_kwargs = self:parse_expression()
    elseif t.type == "name" and self:is_op("=", 1) then
      self:next(); self:next()
      kwargs[#kwargs + 1] = { name = t.value, value = self:parse_expression() }
    else
      if #kwargs > 0 or dyn_args or dyn_kwargs then
        perr(t.pos, "positional argument follows keyword argument")
      end
      args[#args + 1] = self:parse_expression()
    end
  end
  self:expect_op(")")
  return { pos = open.pos, args = args, kwargs = kwargs, dyn_args = dyn_args, dyn_kwargs = dyn_kwargs }
end

function P:parse_call(node)
  local a = self:parse_call_args()
  return { t = "call", pos = a.pos, fn = node, args = a.args, kwargs = a.kwargs,
    dyn_args = a.dyn_args, dyn_kwargs = a.dyn_kwargs }
end

function P:parse_dotted_name()
  local t = self:expect_name()
  local name = t.value
  while self:is_op(".") and self:peek(1).type == "name" do
    self:next()
    name = name .. "." .. self:next().value
  end
  return name, t.pos
end

function P:parse_filter(node, start_inline)
  while self:is_op("|") or start_inline do
    if not start_inline then self:next() end
    start_inline = false
    local name, pos = self:parse_dotted_name()
    local a = self:is_op("(") and self:parse_call_args() or { args = {}, kwargs = {} }
    node = { t = "filter", pos = pos, expr = node, name = name, args = a.args, kwargs = a.kwargs,
      dyn_args = a.dyn_args, dyn_kwargs = a.dyn_kwargs }
  end
  return node
end

local TEST_ARG_START = { name = true, string = true, int = true, float = true }

function P:parse_test(node)
  local is_pos = self:next().pos
  local negate = false
  if self:is_name("not") then
    self:next()
    negate = true
  end
  local name = self:parse_dotted_name()
  local a = { args = {}, kwargs = {} }
  local t = self:peek()
  if self:is_op("(") then
    a = self:parse_call_args()
  elseif (TEST_ARG_START[t.type] or (t.type == "op" and (t.value == "[" or t.value == "{")))
      and not (t.type == "name" and (t.value == "else" or t.value == "or" or t.value == "and")) then
    if t.type == "name" and t.value == "is" then perr(t.pos, "you cannot chain multiple tests with is") end
    a.args[1] = self:parse_postfix(self:parse_primary())
  end
  node = { t = "test", pos = is_pos, expr = node, name = name, args = a.args, kwargs = a.kwargs,
    dyn_args = a.dyn_args, dyn_kwargs = a.dyn_kwargs }
  if negate then node = { t = "not", pos = is_pos, expr = node } end
  return node
end

-- statements -------------------------------------------------------------------

local statements = {}

-- Parses template nodes until a `{% name %}` with name in end_tags (the stream
-- is left at that name) or, when end_tags is nil, until the end of input.
function P:subparse(end_tags)
  local body = {}
  while true do
    local t = self:peek()
    if t.type == "eof" then
      if end_tags then
        local want = {}
        for k in pairs(end_tags) do want[#want + 1] = "'" .. k .. "'" end
        table.sort(want)
        perr(t.pos, "unexpected end of template, expected %s", table.concat(want, " or "))
      end
      return body
    elseif t.type == "data" then
      self:next()
      body[#body + 1] = { t = "data", pos = t.pos, value = t.value }
    elseif t.type == "var_begin" then
      self:next()
      local expr = self:parse_tuple({ with_condexpr = true })
      self:expect_type("var_end", "'}}'")
      body[#body + 1] = { t = "output", pos = t.pos, expr = expr }
    elseif t.type == "block_begin" then
      self:next()
      local name = self:peek()
      if name.type ~= "name" then perr(name.pos, "expected a tag name, got %s", describe(name)) end
      if end_tags and end_tags[name.value] then return body end
      local handler = statements[name.value]
      if not handler then
        if name.value:match("^end") or name.value == "else" or name.value == "elif" then
          perr(name.pos, "unexpected '%s'", name.value)
        end
        perr(name.pos, "unknown tag '%s'", name.value)
      end
      self:next()
      body[#body + 1] = handler(self, name.pos)
    else
      perr(t.pos, "unexpected %s", describe(t))
    end
  end
end

function P:end_block() self:expect_type("block_end", "'%}'") end

-- A set/for target: a name, a tuple of names, or (set only) namespace.attr.
function P:parse_assign_target(extra_end, with_namespace)
  local t = self:peek()
  if with_namespace and t.type == "name" and self:is_op(".", 1) and self:peek(2).type == "name" then
    self:next(); self:next()
    local attr = self:next()
    return { t = "nsref", pos = t.pos, name = t.value, attr = attr.value }
  end
  local target = self:parse_tuple({ simplified = true, extra_end = extra_end })
  local function check(n)
    if n.t ~= "name" then perr(n.pos, "can't assign to %s", n.t == "const" and "a literal" or "this expression") end
  end
  if target.t == "tuple" then
    for _, item in ipairs(target.items) do check(item) end
  else
    check(target)
  end
  return target
end

statements["for"] = function(self, pos)
  local target = self:parse_assign_target({ ["in"] = true })
  self:expect_name("in")
  local iter = self:parse_tuple({ with_condexpr = false, extra_end = { recursive = true } })
  local filter
  if self:is_name("if") then
    self:next()
    filter = self:parse_expression()
  end
  if self:is_name("recursive") then perr(self:peek().pos, "recursive loops are not supported") end
  self:end_block()
  local body = self:subparse({ endfor = true, ["else"] = true })
  local else_body
  if self:next().value == "else" then
    self:end_block()
    else_body = self:subparse({ endfor = true })
    self:next()
  end
  self:end_block()
  return { t = "for", pos = pos, target = target, iter = iter, filter = filter, body = body, else_body = else_body }
end

statements["if"] = function(self, pos)
  local node = { t = "if", pos = pos, tests = {}, bodies = {} }
  while true do
    node.tests[#node.tests + 1] = self:parse_tuple({ with_condexpr = false })
    self:end_block()
    node.bodies[#node.bodies + 1] = self:subparse({ elif = true, ["else"] = true, endif = true })
    local tag = self:next().value
    if tag == "else" then
      self:end_block()
      node.else_body = self:subparse({ endif = true })
      self:next()
      break
    elseif tag == "endif" then
      break
    end
  end
  self:end_block()
  return node
end

statements["set"] = function(self, pos)
  local target = self:parse_assign_target(nil, true)
  if self:is_op("=") then
    self:next()
    local expr = self:parse_tuple()
    self:end_block()
    return { t = "set", pos = pos, target = target, expr = expr }
  end
  local filter_node = self:is_op("|") and self:parse_filter({ t = "block_value", pos = pos }) or nil
  self:end_block()
  local body = self:subparse({ endset = true })
  self:next()
  self:end_block()
  return { t = "setblock", pos = pos, target = target, body = body, filter = filter_node }
end

function P:parse_signature()
  local params = {}
  self:expect_op("(")
  while not self:is_op(")") do
    if #params > 0 then self:expect_op(",") end
    local name = self:expect_name()
    local default
    if self:is_op("=") then
      self:next()
      default = self:parse_expression()
    elseif #params > 0 and params[#params].default then
      perr(name.pos, "non-default argument follows default argument")
    end
    params[#params + 1] = { name = name.value, default = default }
  end
  self:expect_op(")")
  return params
end

statements["macro"] = function(self, pos)
  local name = self:expect_name().value
  local params = self:parse_signature()
  self:end_block()
  local body = self:subparse({ endmacro = true })
  self:next()
  self:end_block()
  return { t = "macro", pos = pos, name = name, params = params, body = body }
end

statements["call"] = function(self, pos)
  local params = self:is_op("(") and self:parse_signature() or {}
  local call = self:parse_expression()
  if call.t ~= "call" then perr(call.pos, "expected a call after 'call'") end
  self:end_block()
  local body = self:subparse({ endcall = true })
  self:next()
  self:end_block()
  return { t = "callblock", pos = pos, call = call, params = params, body = body }
end

statements["filter"] = function(self, pos)
  local node = self:parse_filter({ t = "block_value", pos = pos }, true)
  self:end_block()
  local body = self:subparse({ endfilter = true })
  self:next()
  self:end_block()
  return { t = "filterblock", pos = pos, filter = node, body = body }
end

-- transformers' AssistantTracker tag: marks assistant text, renders its body.
statements["generation"] = function(self, pos)
  self:end_block()
  local body = self:subparse({ endgeneration = true })
  self:next()
  self:end_block()
  return { t = "block", pos = pos, body = body }
end

statements["break"] = function(self, pos)
  self:end_block()
  return { t = "break", pos = pos }
end

statements["continue"] = function(self, pos)
  self:end_block()
  return { t = "continue", pos = pos }
end

for _, tag in ipairs({ "include", "import", "from", "extends", "block", "with", "do", "autoescape" }) do
  statements[tag] = function(_, pos) perr(pos, "tag '%s' is not supported in chat templates", tag) end
end

-- Returns the body (a list of nodes) of the whole template.
function M.parse(toks)
  local self = setmetatable({ toks = toks, i = 1 }, P)
  local body = self:subparse(nil)
  return body
end

return M
