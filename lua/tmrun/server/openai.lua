-- tmrun.server.openai: /v1/models, /v1/chat/completions, /v1/completions in the
-- OpenAI request and response shapes (streams as Server-Sent Events).
local cjson = require("tmrun.util.json")
local errors = require("tmrun.server.errors")
local params = require("tmrun.server.params")
local decode = require("tmrun.server.decode")

local M = {}

local MAX_N = 16

local COMMON = {
  model = true, temperature = true, top_p = true, n = true, stream = true, stream_options = true, stop = true,
  max_tokens = true, presence_penalty = true, frequency_penalty = true, logit_bias = true, user = true, seed = true,
  top_k = true, min_p = true, repetition_penalty = true, ignore_eos = true, skip_special_tokens = true,
}
local CHAT = { messages = true, logprobs = true, top_logprobs = true, max_completion_tokens = true,
  response_format = true, tools = true, tool_choice = true, parallel_tool_calls = true, store = true,
  metadata = true, service_tier = true }
local COMPLETION = { prompt = true, logprobs = true, echo = true, best_of = true, suffix = true }
for k in pairs(COMMON) do CHAT[k], COMPLETION[k] = true, true end

local function new_id(prefix)
  return string.format("%s-%08x%08x", prefix, math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

function M.models(app, req, res)
  app:json(res, 200, { object = "list", data = { {
    id = app.model_name, object = "model", created = app.started, owned_by = "tmrun",
    root = app.model_name, max_model_len = app.engine.session_len,
  } } })
end

-- The request fields every generation endpoint shares -> engine options.
local function sampling_options(app, body)
  local vocab = app.engine.vocab_size
  local o = {
    temperature = params.number(body, "temperature", 0, 2, 1.0),
    top_p = params.number(body, "top_p", 1e-9, 1, 1.0),
    top_k = params.int(body, "top_k", -1, vocab, 0),
    min_p = params.number(body, "min_p", 0, 1, 0),
    repetition_penalty = params.number(body, "repetition_penalty", 0.01, 10, 1.0),
    presence_penalty = params.number(body, "presence_penalty", -2, 2, 0),
    frequency_penalty = params.number(body, "frequency_penalty", -2, 2, 0),
    n = params.int(body, "n", 1, MAX_N, 1),
    ignore_eos = params.bool(body, "ignore_eos", false),
    logit_bias = params.logit_bias(body, vocab),
    stop = params.stop(body),
  }
  if o.top_k == -1 then o.top_k = 0 end
  local seed = params.int(body, "seed", -2 ^ 63, 2 ^ 63, nil)
  o.seed = seed and (seed % 2 ^ 53) or math.random(0, 2 ^ 31)
  params.string(body, "user")
  return o
end

local function check_model(app, body)
  local m = params.string(body, "model")
  if m and m ~= app.model_name then
    error(errors.new(404, string.format("the model `%s` does not exist (this server serves `%s`)",
      errors.clean_utf8(m), app.model_name), "model", "model_not_found"), 0)
  end
end

-- max_tokens within what the session can still hold.
local function output_budget(app, body, n_prompt, key)
  local limit = app.engine.session_len
  if n_prompt >= limit then
    error(errors.new(400, string.format("This model's maximum context length is %d tokens; the prompt has %d",
      limit, n_prompt), "messages", "context_length_exceeded"), 0)
  end
  local max = params.int(body, key, 1, 2 ^ 31, nil)
  if max and n_prompt + max > limit then
    error(errors.new(400, string.format("This model's maximum context length is %d tokens; the prompt has %d and max_tokens asks for %d",
      limit, n_prompt, max), key, "context_length_exceeded"), 0)
  end
  return max or (limit - n_prompt)
end

-- Message content: a string, or a list of {type = "text", text = ...} parts.
local function content_text(m, i)
  local c = m.content
  if type(c) == "string" then return c end
  if params.is_null(c) and m.role == "assistant" then return "" end
  if type(c) == "table" and c[1] ~= nil then
    local parts = {}
    for j, p in ipairs(c) do
      if type(p) ~= "table" or p.type ~= "text" or type(p.text) ~= "string" then
        params.fail("messages", "messages[%d].content[%d] must be a text part {\"type\": \"text\", \"text\": ...}", i - 1, j - 1)
      end
      parts[#parts + 1] = p.text
    end
    return table.concat(parts)
  end
  params.fail("messages", "messages[%d].content must be a string or a list of text parts", i - 1)
end

local ROLES = { system = true, user = true, assistant = true, tool = true, developer = true }

function M.check_messages(v, key)
  key = key or "messages"
  if type(v) ~= "table" or v[1] == nil then params.fail(key, "%s must be a non-empty list of messages", key) end
  local out = {}
  for i, m in ipairs(v) do
    if type(m) ~= "table" or m[1] ~= nil then params.fail(key, "%s[%d] must be an object", key, i - 1) end
    if type(m.role) ~= "string" or not ROLES[m.role] then
      params.fail(key, "%s[%d].role must be one of system, user, assistant, tool", key, i - 1)
    end
    out[i] = { role = m.role == "developer" and "system" or m.role, content = content_text(m, i) }
  end
  return out
end

local function chat_logprobs(dec, s_logprobs)
  local content = {}
  for _, lp in ipairs(s_logprobs) do
    local top = {}
    for _, t in ipairs(lp.top or {}) do
      local text = dec:token_text(t.id)
      top[#top + 1] = { token = text, logprob = t.logprob, bytes = { text:byte(1, -1) } }
    end
    local text = dec:token_text(lp.token)
    content[#content + 1] = { token = text, logprob = lp.logprob, bytes = { text:byte(1, -1) },
      top_logprobs = #top > 0 and top or cjson.empty_array }
  end
  return { content = #content > 0 and content or cjson.empty_array }
end

-- Runs one engine request for an endpoint; kind "chat" or "completion".
local function run(app, req, res, ids, o, body, kind, prompt_text)
  local stream = params.bool(body, "stream", false)
  local include_usage = type(body.stream_options) == "table" and body.stream_options.include_usage == true
  local r = app:submit(ids, o)
  local dec = decode.new(app.engine.tokenizer, o.n, o.stop, body.skip_special_tokens ~= false)
  local id, created = new_id(kind == "chat" and "chatcmpl" or "cmpl"), os.time()
  local object = kind == "chat" and "chat.completion" or "text_completion"
  local logprobs = {}
  for k = 1, o.n do logprobs[k] = {} end
  local echo = kind == "completion" and body.echo == true and prompt_text or nil

  local function chunk(choices, usage)
    return { id = id, object = object .. (kind == "chat" and ".chunk" or ""), created = created,
      model = app.model_name, choices = choices, usage = usage }
  end

  if stream then
    res:start(200, { ["content-type"] = "text/event-stream", ["cache-control"] = "no-cache" })
    local function sse(t) res:write("data: " .. cjson.encode(t) .. "\n\n") end
    local started = {}
    app:track(r, res, function(evs)
      for _, d in ipairs(dec:feed(evs)) do
        local idx = d.sample - 1
        local choice
        if kind == "chat" then
          local delta = {}
          if not started[d.sample] then delta.role = "assistant" started[d.sample] = true end
          if d.text ~= "" or not d.final then delta.content = d.text end
          choice = { index = idx, delta = delta, finish_reason = d.finish_reason or cjson.null }
          if o.logprobs and d.token then
            choice.logprobs = chat_logprobs(dec, { { token = d.token, logprob = d.logprob, top = d.top } })
          end
        else
          local text = d.text
          if echo and not started[d.sample] then text, started[d.sample] = echo .. text, true end
          choice = { index = idx, text = text, finish_reason = d.finish_reason or cjson.null, logprobs = cjson.null }
        end
        if d.text ~= "" or d.final or (kind == "chat" and choice.delta.role) then sse(chunk({ choice })) end
      end
      if dec:all_done() then
        if include_usage then sse(chunk(cjson.empty_array, dec:usage())) end
        res:write("data: [DONE]\n\n")
        res:finish()
        app:finished(r, dec:usage())
        return true
      end
    end)
    return
  end

  app:track(r, res, function(evs)
    for _, d in ipairs(dec:feed(evs)) do
      if d.token and d.logprob then
        local lp = logprobs[d.sample]
        lp[#lp + 1] = { token = d.token, logprob = d.logprob, top = d.top }
      end
    end
    if not dec:all_done() then return end
    local choices = {}
    for k = 1, o.n do
      local s = dec.samples[k]
      if s.finish_reason == "error" then
        app:json(res, 500, cjson.decode(errors.body(500, "generation failed")))
        app:finished(r, dec:usage())
        return true
      end
      if kind == "chat" then
        choices[k] = { index = k - 1, message = { role = "assistant", content = dec:text(k) },
          finish_reason = s.finish_reason, logprobs = o.logprobs and chat_logprobs(dec, logprobs[k]) or cjson.null }
      else
        choices[k] = { index = k - 1, text = (echo or "") .. dec:text(k), finish_reason = s.finish_reason,
          logprobs = o.logprobs and M.completion_logprobs(dec, logprobs[k]) or cjson.null }
      end
    end
    local body_out = chunk(choices, dec:usage())
    body_out.object = object
    app:json(res, 200, body_out)
    app:finished(r, dec:usage())
    return true
  end)
end

function M.completion_logprobs(dec, lps)
  local tokens, token_lps, tops, offsets, off = {}, {}, {}, {}, 0
  for i, lp in ipairs(lps) do
    local text = dec:token_text(lp.token)
    tokens[i], token_lps[i], offsets[i] = text, lp.logprob, off
    off = off + #text
    local top = {}
    for _, t in ipairs(lp.top or {}) do top[dec:token_text(t.id)] = t.logprob end
    tops[i] = top
  end
  local e = cjson.empty_array
  return { tokens = #tokens > 0 and tokens or e, token_logprobs = #token_lps > 0 and token_lps or e,
    top_logprobs = #tops > 0 and tops or e, text_offset = #offsets > 0 and offsets or e }
end

function M.chat(app, req, res)
  local body = params.json_body(req)
  params.known_fields(body, CHAT, "chat.completions")
  check_model(app, body)
  if not params.is_null(body.tools) and type(body.tools) == "table" and #body.tools > 0 then
    params.fail("tools", "tools are not supported by this server")
  end
  if type(body.response_format) == "table" and body.response_format.type ~= "text" then
    params.fail("response_format", "only response_format {\"type\": \"text\"} is supported")
  end
  local messages = M.check_messages(body.messages)
  local o = sampling_options(app, body)
  o.logprobs = params.bool(body, "logprobs", false)
  o.top_logprobs = params.int(body, "top_logprobs", 0, 20, 0)
  if o.top_logprobs > 0 and not o.logprobs then params.fail("top_logprobs", "top_logprobs needs logprobs: true") end
  local text, err = app.template:render(messages, { add_generation_prompt = true })
  if not text then params.fail("messages", "%s", err) end
  local ids = app:encode_prompt(text)
  local key = params.is_null(body.max_completion_tokens) and "max_tokens" or "max_completion_tokens"
  o.max_new_tokens = output_budget(app, body, #ids, key)
  app:add_template_stops(o)
  run(app, req, res, ids, o, body, "chat")
end

-- prompt: a string, a list of token ids, or a one-element list of either.
local function completion_prompt(app, body)
  local p = body.prompt
  if type(p) == "table" and #p == 1 and type(p[1]) ~= "number" then p = p[1] end
  if p == "" then params.fail("prompt", "the prompt is empty") end
  if type(p) == "string" then return app:encode_prompt(p, true), p end
  if type(p) == "table" and #p > 0 and next(p, #p) == nil then
    local vocab = app.engine.vocab_size
    for i, id in ipairs(p) do
      if type(id) ~= "number" or id ~= math.floor(id) or id < 0 or id >= vocab then
        params.fail("prompt", "prompt[%d] must be a token id in [0, %d)", i - 1, vocab)
      end
    end
    return p, app.engine.tokenizer:decode(p, { skip_special = false })
  end
  params.fail("prompt", "prompt must be a non-empty string, a list of token ids, or a one-element list of either")
end

function M.completions(app, req, res)
  local body = params.json_body(req)
  params.known_fields(body, COMPLETION, "completions")
  check_model(app, body)
  if not params.is_null(body.suffix) then params.fail("suffix", "suffix is not supported") end
  local o = sampling_options(app, body)
  local best_of = params.int(body, "best_of", 1, MAX_N, o.n)
  if best_of ~= o.n then params.fail("best_of", "best_of must equal n here") end
  local lp = params.int(body, "logprobs", 0, 5, nil)
  o.logprobs = lp ~= nil
  o.top_logprobs = lp or 0
  params.bool(body, "echo", false)
  local ids, text = completion_prompt(app, body)
  if #ids == 0 then params.fail("prompt", "the prompt is empty") end
  o.max_new_tokens = output_budget(app, body, #ids, "max_tokens")
  if params.is_null(body.max_tokens) then o.max_new_tokens = math.min(16, o.max_new_tokens) end
  run(app, req, res, ids, o, body, "completion", text)
end

return M
