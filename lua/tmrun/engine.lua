-- tmrun.engine: the continuous-batching engine from Lua.
--
--   local tm = require("tmrun")
--   local eng = assert(tm.engine{ model = "path", max_batch_size = 64 })
--   local out = eng:generate("Once upon a time", { max_new_tokens = 32 })     -- blocking
--   local outs = eng:generate({ "a", "b", { 1, 2, 3 } }, { max_new_tokens = 8 }) -- batched, in order
--   for chunk in eng:stream("Hello", { max_new_tokens = 16 }) do io.write(chunk.text) end
--   local s = eng:session{ template = "llama3" }; print(s:chat("Hi"))
--   eng:close()
--
-- Request options: max_new_tokens, ignore_eos, stop (strings), stop_ids, n, logprobs,
-- top_logprobs, add_special, policy (see tmrun.sampling) and any sampling field
-- (temperature, top_p, top_k, min_p, repetition_penalty, presence_penalty,
-- frequency_penalty, logit_bias, seed), session_id, interactive.
local tmffi = require("tmrun.ffi")
local core = require("tmrun.core")
local model_mod = require("tmrun.model")
local sampling = require("tmrun.sampling")
local fs = require("tmrun.util.fs")
local stop_text = require("tmrun.stop_text")

local ffi, C = tmffi.ffi, tmffi.C

local M = {}

local Engine = {}
Engine.__index = Engine
local Request = {}
Request.__index = Request

M.FINISH = { [0] = nil, "stop", "length", "cancelled", "error" }

local function load_tokenizer(dir)
  if not dir then return nil end
  if not (fs.is_file(dir .. "/tokenizer.json") or fs.is_file(dir .. "/tokenizer.model")) then return nil end
  local tokenizer = require("tmrun.tokenizer")
  return tokenizer.load(dir)
end

-- opts: model (path or a tmrun.model object), backend, threads, max_batch_size,
-- session_len, cache_max_entry_count, cache_block_seq_len, max_prefill_token_num,
-- tokenizer (false: none), profile (true: per-op timing, Engine:profile()).  Returns an
-- engine, or nil, err.
function M.new(opts)
  if type(opts) ~= "table" then error("tmrun.engine needs a table of options", 2) end
  local m, err = opts.model, nil
  local owns_model = false
  if type(m) == "string" then
    local overrides = {}
    for k, v in pairs(opts.overrides or {}) do overrides[k] = v end
    for _, k in ipairs({ "session_len", "max_batch_size", "cache_max_entry_count", "cache_block_seq_len",
      "quant_policy", "kv_cache_dtype", "kv_qparams" }) do
      if opts[k] ~= nil then overrides[k] = opts[k] end
    end
    m, err = model_mod.open(m, { backend = opts.backend, threads = opts.threads, overrides = overrides })
    if not m then return nil, err end
    owns_model = true
  elseif type(m) ~= "table" or not m.handle then
    error("tmrun.engine: model must be a path or an opened model", 2)
  end
  local tok = opts.tokenizer
  if tok == nil then
    local terr
    tok, terr = load_tokenizer(m.tokenizer_dir)
    if tok == nil and terr then
      if owns_model then m:close() end
      return nil, terr
    end
  elseif tok == false then
    tok = nil
  end
  local cfg = m.cfg
  local p = C.tm_engine_default_params()
  p.max_batch_size = opts.max_batch_size or cfg.max_batch_size
  p.max_prefill_token_num = opts.max_prefill_token_num or 8192
  p.session_len = opts.session_len or cfg.session_len
  p.cache_block_seq_len = opts.cache_block_seq_len or cfg.cache_block_seq_len
  p.cache_max_entry_count = opts.cache_max_entry_count or cfg.cache_max_entry_count
  if tok then p.tokenizer = tok._h end
  p.profile = opts.profile and 1 or 0
  local eos = m.stop_ids or {}
  if #eos > 8 then return nil, "a model may have at most 8 end ids" end
  for i, id in ipairs(eos) do p.eos_ids[i - 1] = id end
  p.n_eos_ids = #eos
  local box = ffi.new("tm_engine *[1]")
  local s = C.tm_engine_create(m.handle, p, box)
  if s ~= 0 then
    if owns_model then m:close() end
    return nil, core.last_error(s)
  end
  return setmetatable({
    handle = ffi.gc(box[0], C.tm_engine_destroy),
    model = m,
    owns_model = owns_model,
    tokenizer = tok,
    session_len = p.session_len,
    vocab_size = m.vocab_size,
    events = ffi.new("tm_event[64]"),
    next_session = 0x100000000 + os.time() % 0x10000000 * 16,
  }, Engine)
end

function Engine:_h()
  if not self.handle then error("engine is closed", 3) end
  return self.handle
end

-- Prompt ids for a string (through the tokenizer) or a table of ids.
function Engine:encode(prompt, add_special)
  if type(prompt) == "table" then return prompt end
  if type(prompt) ~= "string" then error("a prompt is a string or a table of token ids", 3) end
  if not self.tokenizer then error("this engine has no tokenizer: pass token ids", 3) end
  return self.tokenizer:encode(prompt, { add_special = add_special ~= false })
end

-- Queues one request; returns a Request, or nil, err (a bad parameter, a prompt
-- longer than session_len).
function Engine:submit(prompt, opts)
  opts = opts or {}
  local ids = self:encode(prompt, opts.add_special)
  local h = self:_h()
  local n = #ids
  local cids = ffi.new("int32_t[?]", math.max(n, 1))
  for i = 1, n do cids[i - 1] = ids[i] end
  local p = C.tm_request_default_params()
  p.session_id = opts.session_id or 0
  p.interactive = opts.interactive and 1 or 0
  p.max_new_tokens = opts.max_new_tokens or 16
  p.ignore_eos = opts.ignore_eos and 1 or 0
  p.n = opts.n or 1
  p.logprobs = (opts.logprobs or (opts.top_logprobs or 0) > 0) and 1 or 0
  local keep = {}
  local fields = {}
  for k, v in pairs(opts.policy and (type(opts.policy) == "function" and opts.policy(opts) or opts.policy) or {}) do
    fields[k] = v
  end
  for _, k in ipairs({ "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty",
    "frequency_penalty", "logit_bias", "seed" }) do
    if opts[k] ~= nil then fields[k] = opts[k] end
  end
  keep.bias = sampling.fill(p, fields)
  p.sampling.top_logprobs = opts.top_logprobs or 0
  local stop_ids = opts.stop_ids or {}
  if #stop_ids > 0 then
    keep.stop_ids = ffi.new("int32_t[?]", #stop_ids, stop_ids)
    p.stop_ids, p.n_stop_ids = keep.stop_ids, #stop_ids
  end
  local stops = opts.stop
  if type(stops) == "string" then stops = { stops } end
  if stops and #stops > 0 then
    keep.stop_strings = ffi.new("const char *[?]", #stops)
    keep.strs = {}
    for i, sstr in ipairs(stops) do
      keep.strs[i] = sstr
      keep.stop_strings[i - 1] = sstr
    end
    p.stop_strings, p.n_stop_strings = keep.stop_strings, #stops
  end
  local box = ffi.new("tm_request *[1]")
  local s = C.tm_engine_submit(h, cids, n, p, box)
  if s ~= 0 then return nil, core.last_error(s) end
  return setmetatable({
    handle = ffi.gc(box[0], C.tm_request_destroy),
    engine = self,
    n = p.n,
    prompt_ids = ids,
    stops = stops,
  }, Request)
end

-- Waits up to timeout_ms (-1 or nil: no limit; 0: not at all) and returns the new events as tables
-- { kind = "token"|"finish", sample, token, logprob, top = {{id, logprob}...},
--   finish_reason, stop_string, prompt_tokens, history_tokens, completion_tokens,
--   time = when the engine pushed it, in seconds of uv.hrtime()'s monotonic clock }.
function Request:events(timeout_ms)
  local h = self.handle
  if not h then error("request is closed", 2) end
  if timeout_ms ~= 0 then C.tm_request_wait(h, timeout_ms or -1) end
  local buf = self.engine.events
  local out = {}
  while true do
    local n = C.tm_request_poll(h, buf, 64)
    for i = 0, n - 1 do
      local e = buf[i]
      local ev = { sample = e.sample, token = e.token, time = e.time }
      if e.kind == C.TM_EVENT_TOKEN then
        ev.kind = "token"
        if e.n_top > 0 or e.logprob ~= 0 then
          ev.logprob = e.logprob
          local top = {}
          for k = 0, e.n_top - 1 do top[k + 1] = { id = e.top_ids[k], logprob = e.top_logprobs[k] } end
          ev.top = top
        end
      else
        ev.kind = "finish"
        ev.finish_reason = M.FINISH[e.finish_reason]
        ev.stop_string = e.stop_string >= 0 and e.stop_string + 1 or nil
        ev.stop_token = e.token >= 0 and e.token or nil
        ev.prompt_tokens = e.prompt_tokens
        ev.history_tokens = e.history_tokens
        ev.completion_tokens = e.completion_tokens
        if ev.finish_reason == "error" then ev.error = ffi.string(C.tm_request_error(h)) end
      end
      out[#out + 1] = ev
    end
    if n < 64 then break end
  end
  return out
end

function Request:finished() return C.tm_request_finished(self.handle) == 1 end

function Request:cancel() if self.handle then C.tm_request_cancel(self.handle) end end

function Request:close()
  if self.handle then
    C.tm_request_destroy(ffi.gc(self.handle, nil))
    self.handle = nil
  end
end

-- Blocks until every sample finished; returns { outputs = { {ids, text, finish_reason,
-- logprobs, ...} per sample }, usage = {...} } with text when there is a tokenizer.
function Request:collect()
  local outs = {}
  for k = 1, self.n do outs[k] = { ids = {}, logprobs = nil } end
  local usage = { prompt_tokens = 0, completion_tokens = 0, history_tokens = 0 }
  local done = 0
  while done < self.n do
    for _, ev in ipairs(self:events(-1)) do
      local o = outs[ev.sample + 1]
      if ev.kind == "token" then
        o.ids[#o.ids + 1] = ev.token
        if ev.logprob then
          o.logprobs = o.logprobs or {}
          o.logprobs[#o.ids] = { logprob = ev.logprob, top = ev.top }
        end
      else
        done = done + 1
        o.finish_reason, o.stop_string, o.stop_token, o.error = ev.finish_reason, ev.stop_string, ev.stop_token, ev.error
        usage.prompt_tokens = ev.prompt_tokens
        usage.history_tokens = ev.history_tokens
        usage.completion_tokens = usage.completion_tokens + ev.completion_tokens
      end
    end
  end
  local tok = self.engine.tokenizer
  for _, o in ipairs(outs) do
    if tok then
      o.text = tok:decode(o.ids, { skip_special = true })
      if o.stop_string and self.stops then o.text = stop_text.cut(o.text, self.stops[o.stop_string]) end
    end
  end
  self:close()
  local res = { outputs = outs, usage = usage, prompt_ids = self.prompt_ids }
  res.ids, res.text, res.finish_reason = outs[1].ids, outs[1].text, outs[1].finish_reason
  return res
end

local function is_batch(prompt)
  return type(prompt) == "table" and (type(prompt[1]) == "table" or type(prompt[1]) == "string")
end

-- Blocking generation.  A list of prompts is submitted at once (so they batch) and
-- the results come back in order.  nil, err when a prompt is refused.
function Engine:generate(prompt, opts)
  if not is_batch(prompt) then
    local r, err = self:submit(prompt, opts)
    if not r then return nil, err end
    return r:collect()
  end
  local reqs = {}
  for i, p in ipairs(prompt) do
    local r, err = self:submit(p, opts)
    if not r then
      for _, q in ipairs(reqs) do q:close() end
      return nil, string.format("prompt %d: %s", i, err)
    end
    reqs[i] = r
  end
  local outs = {}
  for i, r in ipairs(reqs) do outs[i] = r:collect() end
  return outs
end

-- An iterator over the generated text: each step yields { token, text, sample },
-- and a last { finish_reason, usage } chunk.  Text is held back while it could be
-- the start of a stop string, and cut at the stop string.
function Engine:stream(prompt, opts)
  local r, err = self:submit(prompt, opts)
  if not r then error(err, 2) end
  return self:_stream(r)
end

function Engine:_stream(r)
  local detok = self.tokenizer and self.tokenizer:stream({ skip_special = true })
  local hold = stop_text.holder(r.stops)
  local queue, qi, finished = {}, 1, false
  return function()
    while qi > #queue do
      if finished then
        if detok then detok:close() end
        return nil
      end
      queue, qi = {}, 1
      for _, ev in ipairs(r:events(-1)) do
        if ev.kind == "token" then
          local text = detok and detok:feed(ev.token) or ""
          queue[#queue + 1] = { token = ev.token, text = hold:push(text), sample = ev.sample, logprob = ev.logprob }
        else
          local tail = detok and detok:flush() or ""
          local rest = ev.stop_string and hold:finish_at(tail, r.stops[ev.stop_string]) or hold:flush(tail)
          queue[#queue + 1] = { text = rest, finish_reason = ev.finish_reason, error = ev.error, usage = {
            prompt_tokens = ev.prompt_tokens, completion_tokens = ev.completion_tokens,
            history_tokens = ev.history_tokens }, sample = ev.sample, stop_token = ev.stop_token }
          if r.n == 1 then finished = true end
        end
      end
      if r:finished() then finished = true end
    end
    local c = queue[qi]
    qi = qi + 1
    return c
  end, r
end

function Engine:new_session_id()
  self.next_session = self.next_session + 1
  return self.next_session
end

function Engine:end_session(id) core.check(C.tm_engine_end_session(self:_h(), id), 2) end

function Engine:stats()
  local s = ffi.new("tm_engine_stats")
  C.tm_engine_get_stats(self:_h(), s)
  local out = {}
  for _, k in ipairs({ "queued", "running", "sessions", "blocks_total", "blocks_used", "blocks_free", "steps",
    "tokens_prefilled", "tokens_generated", "preemptions", "evictions", "schedule_seconds", "forward_seconds",
    "sample_seconds" }) do
    out[k] = tonumber(s[k])
  end
  return out
end

-- The per-op time table of an engine made with profile = true (markdown), or nil.
function Engine:profile()
  local n = C.tm_engine_profile(self:_h(), nil, 0)
  if n == 0 then return nil end
  local buf = ffi.new("char[?]", n + 1)
  C.tm_engine_profile(self:_h(), buf, n + 1)
  return ffi.string(buf)
end

function Engine:event_fd() return C.tm_engine_event_fd(self:_h()) end

-- Re-arms the event fd after it was readable (a libuv poll callback calls this first).
function Engine:event_drain() C.tm_engine_event_drain(self:_h()) end

function Engine:session(opts) return require("tmrun.session").new(self, opts or {}) end

function Engine:close()
  if self.handle then
    C.tm_engine_destroy(ffi.gc(self.handle, nil))
    self.handle = nil
  end
  if self.tokenizer then self.tokenizer:close() end
  if self.owns_model and self.model then self.model:close() end
  self.model = nil
end

return M
