-- tmrun.server.interactive: LMDeploy's stateful API, POST /v1/chat/interactive.
--
-- The history stays on the server (in the engine's session); a request sends only
-- the new turn.  interactive_mode false ends the session after this turn (with an
-- empty prompt: just ends it); cancel true stops the session's running turn.
-- Response {text, tokens, input_tokens, history_tokens, finish_reason}; streamed as
-- one JSON object per line.
local cjson = require("tmrun.util.json")
local errors = require("tmrun.server.errors")
local params = require("tmrun.server.params")
local decode = require("tmrun.server.decode")
local openai = require("tmrun.server.openai")

local M = {}

local FIELDS = {
  prompt = true, image_url = true, session_id = true, interactive_mode = true, stream = true, stop = true,
  request_output_len = true, top_p = true, top_k = true, temperature = true, repetition_penalty = true,
  ignore_eos = true, skip_special_tokens = true, cancel = true, adapter_name = true, seed = true,
}

local function reply(res, obj) res:send(200, { ["content-type"] = "application/json" }, cjson.encode(obj)) end

local function session_state(app, id)
  local s = app.sessions[id]
  if not s then
    s = { turns = 0 }
    app.sessions[id] = s
  end
  return s
end

-- The turn's text: a string, or a list of messages (the new turn's messages).
local function turn_messages(body)
  local p = body.prompt
  if type(p) == "string" then return { { role = "user", content = p } }, p == "" end
  if type(p) == "table" then return openai.check_messages(p, "prompt"), false end
  params.fail("prompt", "prompt must be a string or a list of messages")
end

function M.handle(app, req, res)
  local body = params.json_body(req)
  params.known_fields(body, FIELDS, "chat/interactive")
  local id = params.int(body, "session_id", -1, 2 ^ 53, -1)
  if id == -1 then id = app:new_session_id() end
  if id == 0 then params.fail("session_id", "session_id must be a positive integer (or -1 for a new one)") end
  local st = session_state(app, id)

  if params.bool(body, "cancel", false) then
    if st.request then st.request:cancel() end
    return reply(res, { text = "", tokens = 0, input_tokens = 0, history_tokens = st.history or 0,
      finish_reason = "cancelled", session_id = id })
  end
  if st.request then
    error(errors.new(400, string.format("session %d is busy with another request", id), "session_id",
      "session_busy"), 0)
  end

  local interactive = params.bool(body, "interactive_mode", false)
  local messages, empty = turn_messages(body)
  local max_new = params.int(body, "request_output_len", 0, 2 ^ 31, 512)
  if empty and not interactive then -- end the session
    app.engine:end_session(id)
    app.sessions[id] = nil
    return reply(res, { text = "", tokens = 0, input_tokens = 0, history_tokens = 0, finish_reason = "stop",
      session_id = id })
  end
  local o = {
    session_id = id, interactive = interactive, max_new_tokens = max_new,
    temperature = params.number(body, "temperature", 0, 2, 0.8),
    top_p = params.number(body, "top_p", 1e-9, 1, 0.8),
    top_k = params.int(body, "top_k", 0, app.engine.vocab_size, 40),
    repetition_penalty = params.number(body, "repetition_penalty", 0.01, 10, 1.0),
    ignore_eos = params.bool(body, "ignore_eos", false),
    stop = params.stop(body),
    n = 1,
  }
  local seed = params.int(body, "seed", 0, 2 ^ 53, nil)
  o.seed = seed or math.random(0, 2 ^ 31)
  local text, err = app.template:render_turn(messages, { first_turn = st.turns == 0 })
  if not text then params.fail("prompt", "%s", err) end
  local ids = st.turns == 0 and app:encode_prompt(text) or app.engine.tokenizer:encode(text, { add_special = false })
  if (st.history or 0) + #ids > app.engine.session_len then
    error(errors.new(400, string.format("session %d holds %d tokens; this turn's %d more pass session_len %d",
      id, st.history or 0, #ids, app.engine.session_len), "prompt", "context_length_exceeded"), 0)
  end
  o.max_new_tokens = math.min(o.max_new_tokens, app.engine.session_len - (st.history or 0) - #ids)
  app:add_template_stops(o)
  local r = app:submit(ids, o)
  st.request = r
  st.turns = st.turns + 1
  local dec = decode.new(app.engine.tokenizer, 1, o.stop, body.skip_special_tokens ~= false)
  local stream = params.bool(body, "stream", false)
  local tokens = 0

  local function finish(d)
    st.request = nil
    local u = d.usage
    if d.finish_reason == "error" and (d.error or ""):find("context_length_exceeded", 1, true) then
      st.turns = st.turns - 1 -- the turn never entered the session
    else
      st.history = u.history_tokens + u.prompt_tokens + u.completion_tokens
    end
    if not interactive then app.sessions[id] = nil end
    return u
  end

  if stream then
    res:start(200, { ["content-type"] = "application/x-ndjson", ["cache-control"] = "no-cache" })
    app:track(r, res, function(evs)
      for _, d in ipairs(dec:feed(evs)) do
        if d.token then tokens = tokens + 1 end
        local line = { text = d.text, tokens = tokens, input_tokens = #ids, history_tokens = st.history or 0,
          finish_reason = d.finish_reason or cjson.null, session_id = id }
        if d.final then
          local u = finish(d)
          line.tokens, line.history_tokens = u.completion_tokens, u.history_tokens
          if d.error then line.error = d.error end
        end
        if d.text ~= "" or d.final then res:write(cjson.encode(line) .. "\n") end
      end
      if dec:all_done() then
        res:finish()
        app:finished(r, dec:usage_all())
        return true
      end
    end, function() st.request = nil end)
    return
  end
  app:track(r, res, function(evs)
    local last
    for _, d in ipairs(dec:feed(evs)) do if d.final then last = d end end
    if not last then return end
    local u = finish(last)
    if last.finish_reason == "error" then
      local code = (last.error or ""):find("context_length_exceeded", 1, true) and "context_length_exceeded" or nil
      errors.send(res, code and 400 or 500, last.error or "generation failed", nil, code)
    else
      reply(res, { text = dec:text(1), tokens = u.completion_tokens, input_tokens = u.prompt_tokens,
        history_tokens = u.history_tokens, finish_reason = last.finish_reason, session_id = id })
    end
    app:finished(r, dec:usage_all())
    return true
  end, function() st.request = nil end)
end

return M
