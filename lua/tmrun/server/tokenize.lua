-- tmrun.server.tokenize: POST /v1/encode (LMDeploy), /v1/tokenize and
-- /v1/detokenize (vLLM's shapes).
local cjson = require("tmrun.util.json")
local params = require("tmrun.server.params")
local openai = require("tmrun.server.openai")

local M = {}

local function ids_array(ids) return #ids > 0 and ids or cjson.empty_array end

-- {input: string | [string], do_preprocess: bool, add_bos: bool} -> {input_ids, length}
function M.encode(app, req, res)
  local body = params.json_body(req)
  params.known_fields(body, { input = true, do_preprocess = true, add_bos = true }, "encode")
  local pre = params.bool(body, "do_preprocess", false)
  local add_bos = params.bool(body, "add_bos", true)
  local function one(text)
    if pre then
      local t, err = app.template:render({ { role = "user", content = text } }, { add_generation_prompt = true })
      if not t then params.fail("input", "%s", err) end
      text = t
    end
    return app.engine.tokenizer:encode(text, { add_special = add_bos })
  end
  local input = body.input
  if type(input) == "string" then
    local ids = one(input)
    return app:json(res, 200, { input_ids = ids_array(ids), length = #ids })
  end
  if type(input) == "table" and #input > 0 then
    local all, lens = {}, {}
    for i, s in ipairs(input) do
      if type(s) ~= "string" then params.fail("input", "input[%d] must be a string", i - 1) end
      all[i] = ids_array(one(s))
      lens[i] = #all[i]
    end
    return app:json(res, 200, { input_ids = all, length = lens })
  end
  params.fail("input", "input must be a string or a non-empty list of strings")
end

-- {prompt | messages, add_special_tokens} -> {tokens, count, max_model_len}
function M.tokenize(app, req, res)
  local body = params.json_body(req)
  params.known_fields(body, { model = true, prompt = true, messages = true, add_special_tokens = true,
    add_generation_prompt = true }, "tokenize")
  local add = params.bool(body, "add_special_tokens", true)
  local text
  if not params.is_null(body.messages) then
    local msgs = openai.check_messages(body.messages)
    local err
    text, err = app.template:render(msgs, { add_generation_prompt = params.bool(body, "add_generation_prompt", true) })
    if not text then params.fail("messages", "%s", err) end
  else
    text = params.string(body, "prompt")
    if not text then params.fail("prompt", "prompt (a string) or messages is required") end
  end
  local ids = app.engine.tokenizer:encode(text, { add_special = add })
  app:json(res, 200, { tokens = ids_array(ids), count = #ids, max_model_len = app.engine.session_len })
end

-- {tokens: [ids]} -> {prompt}
function M.detokenize(app, req, res)
  local body = params.json_body(req)
  params.known_fields(body, { model = true, tokens = true }, "detokenize")
  local t = body.tokens
  if type(t) ~= "table" or (next(t) ~= nil and t[1] == nil) then params.fail("tokens", "tokens must be a list of ids") end
  local vocab = app.engine.vocab_size
  for i, id in ipairs(t) do
    if type(id) ~= "number" or id ~= math.floor(id) or id < 0 or id >= vocab then
      params.fail("tokens", "tokens[%d] must be a token id in [0, %d)", i - 1, vocab)
    end
  end
  app:json(res, 200, { prompt = app.engine.tokenizer:decode(t, { skip_special = false }) })
end

return M
