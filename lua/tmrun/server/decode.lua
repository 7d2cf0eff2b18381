-- tmrun.server.decode: engine events of one request -> text deltas per sample, with
-- stop strings held back and cut, and logprobs with token texts.  Shared by the
-- OpenAI endpoints and the interactive API.
local stop_text = require("tmrun.stop_text")

local M = {}

local Decoder = {}
Decoder.__index = Decoder

-- tok: the tokenizer; n: samples; stops: the user's stop strings (or nil).
function M.new(tok, n, stops, skip_special)
  local self = setmetatable({ tok = tok, n = n, stops = stops, samples = {}, done = 0 }, Decoder)
  for k = 1, n do
    self.samples[k] = {
      detok = tok:stream({ skip_special = skip_special ~= false }),
      hold = stop_text.holder(stops),
      text = {}, ids = {}, logprobs = {}, finished = false,
    }
  end
  return self
end

function Decoder:token_text(id)
  return self.tok:decode({ id }, { skip_special = false })
end

-- Turns events into deltas: { sample = k (1-based), text = "...", token = id,
-- logprob = x, top = {{id, logprob}} } and, at the end of a sample,
-- { sample = k, text = rest, finish_reason, usage = {...}, error }.
function Decoder:feed(events)
  local out = {}
  for _, ev in ipairs(events) do
    local k = ev.sample + 1
    local s = self.samples[k]
    if ev.kind == "token" then
      local text = s.hold:push(s.detok:feed(ev.token))
      s.ids[#s.ids + 1] = ev.token
      s.text[#s.text + 1] = text
      out[#out + 1] = { sample = k, text = text, token = ev.token, logprob = ev.logprob, top = ev.top }
    else
      local tail = s.detok:flush()
      local rest = ev.stop_string and s.hold:finish_at(tail, self.stops[ev.stop_string]) or s.hold:flush(tail)
      s.text[#s.text + 1] = rest
      s.finished = true
      s.finish_reason = ev.finish_reason
      s.usage = { prompt_tokens = ev.prompt_tokens, completion_tokens = ev.completion_tokens,
        history_tokens = ev.history_tokens }
      s.detok:close()
      self.done = self.done + 1
      out[#out + 1] = { sample = k, text = rest, finish_reason = ev.finish_reason, usage = s.usage, error = ev.error,
        final = true }
    end
  end
  return out
end

function Decoder:all_done() return self.done >= self.n end

function Decoder:text(k) return table.concat(self.samples[k].text) end

function Decoder:close()
  for _, s in ipairs(self.samples) do
    if not s.finished then s.detok:close() end
  end
end

-- Usage summed over samples (prompt counted once); OpenAI's three fields.
function Decoder:usage()
  local u = self:usage_all()
  return { prompt_tokens = u.prompt_tokens, completion_tokens = u.completion_tokens, total_tokens = u.total_tokens }
end

-- The same with history_tokens (the session's tokens before the request).
function Decoder:usage_all()
  local u = { prompt_tokens = 0, completion_tokens = 0, history_tokens = 0 }
  for _, s in ipairs(self.samples) do
    if s.usage then
      u.prompt_tokens = s.usage.prompt_tokens
      u.history_tokens = s.usage.history_tokens
      u.completion_tokens = u.completion_tokens + s.usage.completion_tokens
    end
  end
  u.total_tokens = u.prompt_tokens + u.completion_tokens
  return u
end

return M
