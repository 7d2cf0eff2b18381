-- tmrun.server.openapi: the OpenAPI 3 document served at /openapi.json.
local cjson = require("tmrun.util.json")

local M = {}

local function obj(props, required, example)
  return { type = "object", properties = props, required = required, example = example }
end
local S, I, N, B = { type = "string" }, { type = "integer" }, { type = "number" }, { type = "boolean" }
local function arr(items) return { type = "array", items = items } end
local STOP = { oneOf = { S, arr(S) }, description = "up to 16 strings, matched on the decoded text" }

local SAMPLING = {
  temperature = { type = "number", minimum = 0, maximum = 2, default = 1 },
  top_p = { type = "number", exclusiveMinimum = 0, maximum = 1, default = 1 },
  top_k = { type = "integer", minimum = -1, description = "0 or -1: off" },
  min_p = { type = "number", minimum = 0, maximum = 1 },
  repetition_penalty = { type = "number", minimum = 0.01, maximum = 10, default = 1 },
  presence_penalty = { type = "number", minimum = -2, maximum = 2 },
  frequency_penalty = { type = "number", minimum = -2, maximum = 2 },
  n = { type = "integer", minimum = 1, maximum = 16, default = 1 },
  seed = I, stop = STOP, stream = B, ignore_eos = B, user = S, model = S,
  logit_bias = { type = "object", additionalProperties = N, description = "token id -> bias in [-100, 100]" },
  stream_options = obj({ include_usage = B }),
}

local function with(base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra) do t[k] = v end
  return t
end

local ERROR = obj({ error = obj({ message = S, type = S, param = { type = "string", nullable = true },
  code = { type = "string", nullable = true } }) })

local function op(summary, body_schema, resp_schema, description)
  local o = { summary = summary, description = description, responses = {
    ["200"] = { description = "OK", content = { ["application/json"] = { schema = resp_schema or obj({}) } } },
    ["400"] = { description = "Bad request", content = { ["application/json"] = { schema = ERROR } } },
    ["401"] = { description = "Missing or wrong API key", content = { ["application/json"] = { schema = ERROR } } },
  } }
  if body_schema then
    o.requestBody = { required = true, content = { ["application/json"] = { schema = body_schema } } }
  end
  return o
end

function M.document(app)
  local message = obj({ role = { type = "string", enum = { "system", "user", "assistant", "tool" } },
    content = { oneOf = { S, arr(obj({ type = S, text = S })) } } }, { "role", "content" })
  local usage = obj({ prompt_tokens = I, completion_tokens = I, total_tokens = I })
  local doc = {
    openapi = "3.0.3",
    info = { title = "tmrun API server", version = require("tmrun.core").version(),
      description = "OpenAI-compatible endpoints and LMDeploy's interactive API, serving " .. app.model_name },
    paths = {
      ["/v1/models"] = { get = op("List the served model", nil, obj({ object = S, data = arr(obj({ id = S })) })) },
      ["/v1/chat/completions"] = { post = op("Chat completion (OpenAI)", obj(with(SAMPLING, {
        messages = arr(message), max_tokens = I, max_completion_tokens = I, logprobs = B,
        top_logprobs = { type = "integer", minimum = 0, maximum = 20 } }), { "messages" },
        { messages = { { role = "user", content = "Hello!" } }, max_tokens = 64 }),
        obj({ id = S, object = S, created = I, model = S, usage = usage, choices = arr(obj({ index = I,
          message = message, finish_reason = S })) }), "stream: true sends Server-Sent Events ending in data: [DONE]") },
      ["/v1/completions"] = { post = op("Text completion (OpenAI)", obj(with(SAMPLING, {
        prompt = { oneOf = { S, arr(I), arr(S) } }, max_tokens = { type = "integer", default = 16 },
        logprobs = { type = "integer", minimum = 0, maximum = 5 }, echo = B }), { "prompt" }),
        obj({ id = S, object = S, choices = arr(obj({ index = I, text = S, finish_reason = S })), usage = usage })) },
      ["/v1/chat/interactive"] = { post = op("Stateful chat (LMDeploy): send only the new turn", obj({
        prompt = { oneOf = { S, arr(message) } }, session_id = I, interactive_mode = B, stream = B, stop = STOP,
        request_output_len = I, top_p = N, top_k = I, temperature = N, repetition_penalty = N, ignore_eos = B,
        skip_special_tokens = B, cancel = B, seed = I }, nil, { prompt = "Hello!", session_id = 1,
        interactive_mode = true, stream = false, request_output_len = 64, temperature = 0.8 }),
        obj({ text = S, tokens = I, input_tokens = I, history_tokens = I, finish_reason = S }),
        "interactive_mode false ends the session; cancel true stops its running turn; stream: one JSON object per line") },
      ["/v1/encode"] = { post = op("Token ids of text (LMDeploy)", obj({ input = { oneOf = { S, arr(S) } },
        do_preprocess = B, add_bos = B }), obj({ input_ids = arr(I), length = I })) },
      ["/v1/tokenize"] = { post = op("Token ids of a prompt or messages", obj({ prompt = S, messages = arr(message),
        add_special_tokens = B }), obj({ tokens = arr(I), count = I, max_model_len = I })) },
      ["/v1/detokenize"] = { post = op("Text of token ids", obj({ tokens = arr(I) }, { "tokens" }), obj({ prompt = S })) },
      ["/health"] = { get = op("Liveness", nil, obj({ status = S })) },
      ["/metrics"] = { get = op("Prometheus metrics (text)") },
    },
    components = { securitySchemes = { bearer = { type = "http", scheme = "bearer" } } },
  }
  if app.require_key then doc.security = { { bearer = cjson.empty_array } } end
  return doc
end

return M
