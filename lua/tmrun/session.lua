-- tmrun.session: a stateful conversation kept on the engine (TurboMind's
-- interactive mode): each turn sends only the new turn's tokens; the history and
-- its KV stay in the engine between turns.
--
--   local s = engine:session{ template = "llama3", system = "You are terse." }
--   print(s:chat("Hello"))
--   for chunk in s:stream("And then?") do io.write(chunk.text) end
--   s:reset()       -- forget the history (a new session on the engine)
--   s:close()
--
-- Options: template (a name, a .lua file, "jinja", or a template object; default:
-- the model's own), system, and any request option (max_new_tokens, temperature ...)
-- as defaults for every turn.

local M = {}

local Session = {}
Session.__index = Session

local function pick_template(engine, spec)
  if type(spec) == "table" then return spec end
  local t, err = require("tmrun.chat_template").for_model(engine.model, spec)
  if not t then error(err, 3) end
  return t
end

function M.new(engine, opts)
  local tmpl = pick_template(engine, opts.template)
  local self = setmetatable({
    engine = engine,
    template = tmpl,
    id = opts.id or engine:new_session_id(),
    system = opts.system,
    defaults = opts,
    turns = 0,
    history_tokens = 0,
  }, Session)
  self.stop_ids, self.stop_strings = self:_stops()
  return self
end

-- Template stop words that are single tokens become stop ids; the rest stop strings.
function Session:_stops()
  local ids, strs = {}, {}
  local tok = self.engine.tokenizer
  for _, w in ipairs(self.template.stop_words or {}) do
    local id = tok and tok:token_id(w)
    if id then ids[#ids + 1] = id else strs[#strs + 1] = w end
  end
  return ids, strs
end

local function merge(defaults, opts)
  local out = {}
  for k, v in pairs(defaults) do
    if k ~= "template" and k ~= "system" and k ~= "id" then out[k] = v end
  end
  for k, v in pairs(opts or {}) do out[k] = v end
  return out
end

-- The tokens of the new turn: the whole rendered prompt on the first turn (with the
-- tokenizer's BOS), only the turn's text afterwards.
function Session:_turn_ids(text)
  local msgs = {}
  if self.turns == 0 and self.system then msgs[1] = { role = "system", content = self.system } end
  msgs[#msgs + 1] = { role = "user", content = text }
  local prompt, err = self.template:render_turn(msgs, { first_turn = self.turns == 0 })
  if not prompt then return nil, err end
  local tok = self.engine.tokenizer
  if not tok then error("sessions with text need an engine with a tokenizer", 3) end
  return tok:encode(prompt, { add_special = self.turns == 0 })
end

function Session:_submit(text, opts)
  local ids, err = self:_turn_ids(text)
  if not ids then return nil, err end
  local o = merge(self.defaults, opts)
  o.session_id = self.id
  o.interactive = true
  o.stop_ids = o.stop_ids or self.stop_ids
  if #self.stop_strings > 0 and o.stop == nil then o.stop = self.stop_strings end
  local r, serr = self.engine:submit(ids, o)
  if not r then return nil, serr end
  self.turns = self.turns + 1
  return r
end

-- One turn, blocking: returns the reply text and the result table.
function Session:chat(text, opts)
  local r, err = self:_submit(text, opts)
  if not r then return nil, err end
  local res = r:collect()
  self.history_tokens = res.usage.history_tokens + res.usage.prompt_tokens + res.usage.completion_tokens
  return res.text, res
end

-- One turn, streamed: an iterator of { text, token } chunks and a last { finish_reason }.
function Session:stream(text, opts)
  local r, err = self:_submit(text, opts)
  if not r then error(err, 2) end
  local it = self.engine:_stream(r)
  return function()
    local c = it()
    if c and c.usage then
      self.history_tokens = c.usage.history_tokens + c.usage.prompt_tokens + c.usage.completion_tokens
    end
    return c
  end
end

-- Forgets the history: the engine drops the old session, the next turn starts fresh.
function Session:reset()
  self.engine:end_session(self.id)
  self.id = self.engine:new_session_id()
  self.turns = 0
  self.history_tokens = 0
end

function Session:close()
  if self.engine and self.engine.handle then self.engine:end_session(self.id) end
  if self.ctx then
    self.ctx:close()
    self.ctx = nil
  end
  self.engine = nil
end

-- The slow path for research scripts: runs ids through the model in a private
-- context (outside the batching thread) and returns the logits of the last one
-- (float[vocab], valid until the next step).  Its KV is separate from the engine's.
function Session:step(ids)
  if not self.ctx then self.ctx = self.engine.model:context() end
  return self.ctx:eval(ids)
end

return M
