-- tmrun.server.app: the API server: routes, API keys, limits on work, the engine's
-- event fd on a luv poll handle, metrics.  HTTP itself is tmrun.server.http.
local cjson = require("cjson")
local json = require("tmrun.util.json")
local uv = require("luv")
local errors = require("tmrun.server.errors")
local metrics_mod = require("tmrun.server.metrics")

local M = {}

local App = {}
App.__index = App

cjson.decode_invalid_numbers(false)
cjson.decode_max_depth(64)
if cjson.encode_escape_forward_slash then cjson.encode_escape_forward_slash(false) end
cjson.encode_invalid_numbers(false)

local function now() return uv.hrtime() / 1e9 end

-- opts: engine, model_name, api_keys (list), chat_template, max_queue, web_root.
function M.new(opts)
  local eng = opts.engine
  if not eng.tokenizer then return nil, "the model has no tokenizer: the server needs one" end
  local self = setmetatable({
    engine = eng,
    model_name = opts.model_name,
    api_keys = {},
    max_queue = opts.max_queue or 1024,
    sessions = {},
    active = {},     -- request -> { consume = fn, res = res, t0 = start, first = time of first token }
    n_active = 0,
    metrics = metrics_mod.new(),
    started = os.time(),
    next_session = 0x40000000 + math.random(0, 0x3fffffff),
  }, App)
  for _, k in ipairs(opts.api_keys or {}) do self.api_keys[k] = true end
  self.require_key = next(self.api_keys) ~= nil
  local m = eng.model
  local ok, tmpl, terr = pcall(require("tmrun.chat_template").for_model, m, opts.chat_template)
  if not ok or not tmpl then return nil, "chat template: " .. tostring(ok and terr or tmpl) end
  self.template = tmpl
  self.stop_ids, self.stop_strings = {}, {}
  for _, w in ipairs(tmpl.stop_words or {}) do
    local id = eng.tokenizer:token_id(w)
    if id then self.stop_ids[#self.stop_ids + 1] = id else self.stop_strings[#self.stop_strings + 1] = w end
  end
  local bos = eng.tokenizer:bos_id()
  self.bos_text = bos and eng.tokenizer:token_text(bos) or nil
  self.routes = require("tmrun.server.routes").table(self, opts)
  self.poll = uv.new_poll(eng:event_fd())
  self.poll:start("r", function() self:drain() end)
  return self
end

function App:new_session_id()
  self.next_session = self.next_session + 1
  return self.next_session
end

-- Prompt text -> ids with exactly one BOS: none added when the text starts with it.
function App:encode_prompt(text, force_special)
  local tok = self.engine.tokenizer
  local add = force_special or not (self.bos_text and text:sub(1, #self.bos_text) == self.bos_text)
  return tok:encode(text, { add_special = add })
end

-- The template's stop words join the request's.
function App:add_template_stops(o)
  local ids = {}
  for _, id in ipairs(self.stop_ids) do ids[#ids + 1] = id end
  o.stop_ids = ids
  if #self.stop_strings > 0 then
    local s = {}
    for _, w in ipairs(o.stop or {}) do s[#s + 1] = w end
    for _, w in ipairs(self.stop_strings) do s[#s + 1] = w end
    o.stop = s
  end
end

function App:json(res, status, obj)
  res:send(status, { ["content-type"] = "application/json" }, json.encode(obj))
end

-- Submits to the engine, refusing with 503 when the queue is full.
function App:submit(ids, o)
  local st = self.engine:stats()
  if st.queued >= self.max_queue then
    error(errors.new(503, string.format("the server is busy: %d requests queued; retry later", st.queued), nil,
      "server_busy"), 0)
  end
  local r, err = self.engine:submit(ids, o)
  if not r then
    local code = err:find("context_length_exceeded", 1, true) and "context_length_exceeded" or nil
    error(errors.new(400, err:gsub("^TM_ERR_[%u_]+: ", ""), nil, code), 0)
  end
  return r
end

-- Routes a request's events to consume(events) until it returns true; a client
-- that goes away cancels the request (its KV blocks return to the pool).
function App:track(r, res, consume, on_gone)
  self.active[r] = { consume = consume, res = res, t0 = now() }
  self.n_active = self.n_active + 1
  res:on_close(function()
    if self.active[r] then
      r:cancel()
      self.active[r].gone = true
      if on_gone then on_gone() end
    end
  end)
  self:deliver(r) -- events may already be waiting
end

function App:finished(r, usage)
  local a = self.active[r]
  if not a then return end
  self.active[r] = nil
  self.n_active = self.n_active - 1
  local m = self.metrics
  m.prompt_tokens = m.prompt_tokens + (usage.prompt_tokens or 0)
  m.generation_tokens = m.generation_tokens + (usage.completion_tokens or 0)
  local t = now()
  m:observe("latency", t - a.t0)
  if a.first and (usage.completion_tokens or 0) > 1 then
    m:observe("tpot", (t - a.first) / (usage.completion_tokens - 1))
  end
  r:close()
end

function App:deliver(r)
  local a = self.active[r]
  local evs = r:events(0)
  if #evs == 0 then return end
  if not a.first then
    for _, ev in ipairs(evs) do
      if ev.kind == "token" then
        a.first = now()
        self.metrics:observe("ttft", a.first - a.t0)
        break
      end
    end
  end
  if a.gone then -- nobody to tell: drop the events until the cancel lands
    for _, ev in ipairs(evs) do
      if ev.kind == "finish" then
        self.active[r] = nil
        self.n_active = self.n_active - 1
        r:close()
        return
      end
    end
    return
  end
  local ok, err = xpcall(a.consume, debug.traceback, evs)
  if not ok then
    io.stderr:write("tmrun serve: delivering a response failed: ", tostring(err), "\n")
    r:cancel()
    self.active[r] = nil
    self.n_active = self.n_active - 1
  end
end

-- The engine's event fd became readable: hand each tracked request its events.
function App:drain()
  self.engine:event_drain()
  local list = {}
  for r in pairs(self.active) do list[#list + 1] = r end
  for _, r in ipairs(list) do
    if self.active[r] then self:deliver(r) end
  end
end

function App:authorized(req)
  if not self.require_key then return true end
  local h = req.headers["authorization"] or ""
  local key = h:match("^[Bb]earer%s+(.+)$")
  return key ~= nil and self.api_keys[key] == true
end

-- The HTTP handler.
function App:handle(req, res)
  local route = self.routes[req.method .. " " .. req.path]
  local endpoint = route and req.path or "other"
  local function respond_error(status, msg, param, code, headers)
    self.metrics:count_request(endpoint, status)
    errors.send(res, status, msg, param, code, nil, headers)
  end
  if not route then
    local static = self.routes.static
    if static and (req.method == "GET" or req.method == "HEAD") and static(req, res) then return end
    for _, m in ipairs({ "GET", "POST" }) do
      if self.routes[m .. " " .. req.path] then
        return respond_error(405, string.format("%s is not allowed on %s", req.method, req.path), nil, nil,
          { allow = m })
      end
    end
    return respond_error(404, "no route " .. req.method .. " " .. req.path, nil, "not_found")
  end
  if route.auth ~= false and not self:authorized(req) then
    return respond_error(401, "invalid or missing API key (send Authorization: Bearer KEY)", nil, "invalid_api_key")
  end
  local ok, err = pcall(route.fn, self, req, res)
  if ok then
    self.metrics:count_request(endpoint, 200)
    return
  end
  if errors.is(err) then return respond_error(err.status, err.message, err.param, err.code) end
  io.stderr:write("tmrun serve: ", req.method, " ", req.path, ": ", tostring(err), "\n")
  respond_error(500, "internal error")
end

function App:close()
  if self.poll then
    self.poll:stop()
    self.poll:close()
    self.poll = nil
  end
  for r in pairs(self.active) do r:cancel() end
end

return M
