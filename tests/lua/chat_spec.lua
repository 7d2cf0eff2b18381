-- Text through the engine: stop strings across token boundaries, sessions with a
-- template, and the terminal chat driven in a real terminal (tmux).
local tm = require("tmrun")
local fs = require("tmrun.util.fs")
local helpers = require("helpers")
local fixtures = require("fixtures")

local have_tok = fixtures.tokenizer_dir("llama2") ~= nil

describe("text generation", function()
  if not have_tok then
    it("needs the npm tokenizers (make test installs them)", function() pending("tests/js/node_modules missing") end)
    return
  end
  local dir = fixtures.random_workspace(helpers.tmpdir("chat") .. "/ws", "llama2")
  local eng

  setup(function() eng = assert(tm.engine({ model = dir, max_batch_size = 4, cache_max_entry_count = 128 })) end)
  teardown(function() eng:close() end)

  it("stops at a stop string that spans tokens and cuts the text there", function()
    local full = assert(eng:generate("The quick brown fox", { max_new_tokens = 24, ignore_eos = true }))
    local tok = eng.tokenizer
    -- a stop string made of the end of token 6 and the start of token 7
    local a = tok:decode({ table.unpack(full.ids, 1, 6) }, { skip_special = true })
    local b = tok:decode({ table.unpack(full.ids, 1, 7) }, { skip_special = true })
    assert.is_true(#b > #a + 1 and #a > 2)
    local stop = a:sub(-2) .. b:sub(#a + 1, #a + 1)
    local first = full.text:find(stop, 1, true)
    local out = assert(eng:generate("The quick brown fox", { max_new_tokens = 24, ignore_eos = true, stop = { stop } }))
    assert.are.equal("stop", out.finish_reason)
    assert.are.equal(full.text:sub(1, first - 1), out.text)
    assert.is_true(#out.ids <= 7)
    -- streamed: the same text, and never a piece of the stop string
    local streamed = {}
    for c in eng:stream("The quick brown fox", { max_new_tokens = 24, ignore_eos = true, stop = { stop } }) do
      streamed[#streamed + 1] = c.text
      if c.finish_reason then assert.are.equal("stop", c.finish_reason) end
    end
    assert.are.equal(out.text, table.concat(streamed))
  end)

  it("honours logit_bias", function()
    local out = assert(eng:generate("Hello", { max_new_tokens = 5, ignore_eos = true, logit_bias = { [1234] = 100 } }))
    assert.are.same({ 1234, 1234, 1234, 1234, 1234 }, out.ids)
  end)

  it("keeps a templated session on the engine: turn 2 sends only the new turn", function()
    local s = eng:session({ template = "llama2", max_new_tokens = 6, ignore_eos = true })
    local r1, res1 = s:chat("Hello there")
    assert.is_string(r1)
    local r2, res2 = s:chat("And again")
    assert.are.equal(res1.usage.history_tokens + 0, 0)
    assert.are.equal(res1.usage.prompt_tokens + res1.usage.completion_tokens, res2.usage.history_tokens)
    local turn2 = s.template:render_turn({ { role = "user", content = "And again" } }, { first_turn = false })
    assert.are.equal(#eng.tokenizer:encode(turn2, { add_special = false }), res2.usage.prompt_tokens)
    s:close()
  end)
end)

describe("tmrun chat.lua in a terminal", function()
  local tmux = helpers.run("command -v tmux"):match("%S+")
  if not have_tok or not tmux then
    it("needs tmux and the npm tokenizers", function() pending("tmux or tokenizers missing") end)
    return
  end

  it("chats, resets and exits", function()
    local dir = fixtures.random_workspace(helpers.tmpdir("chat-tty") .. "/ws", "llama2")
    local name = "tmrun-chat-" .. tostring(math.random(1, 1e9))
    local function tm_cmd(c) return helpers.run(string.format("tmux %s 2>&1", c)) end
    local function screen() return (tm_cmd("capture-pane -p -J -t " .. name)) end
    local function wait_for(pattern, count)
      for _ = 1, 200 do
        local text = screen()
        local n = 0
        for _ in text:gmatch(pattern) do n = n + 1 end
        if n >= (count or 1) then return text end
        require("luv").sleep(50)
      end
      error("timed out waiting for " .. pattern .. " in:\n" .. screen())
    end
    tm_cmd(string.format("new-session -d -s %s -x 220 -y 60 '%s chat.lua %s --temperature 0 --max-new-tokens 8'",
      name, helpers.tmrun(), dir))
    local ok, err = pcall(function()
      wait_for("double enter to end input >>>")
      tm_cmd("send-keys -t " .. name .. " 'Hello there' Enter Enter")
      local text = wait_for("double enter to end input >>>", 2)
      -- the reply is what a session of the engine says to the same turn
      local eng = assert(tm.engine({ model = dir, max_batch_size = 1, cache_max_entry_count = 64 }))
      local s = eng:session({ template = "llama2", max_new_tokens = 8, temperature = 0 })
      local want = s:chat("Hello there")
      eng:close()
      local line = assert(want:match("[^\n]+"), "an empty reply")
      local after = text:sub((text:find("Hello there", 1, true)))
      assert.truthy(after:find(line:sub(1, 3), 1, true), "reply " .. want .. " in\n" .. text)
      tm_cmd("send-keys -t " .. name .. " reset Enter")
      wait_for("history cleared")
      tm_cmd("send-keys -t " .. name .. " exit Enter")
      for _ = 1, 100 do
        local _, rc = helpers.run("tmux has-session -t " .. name .. " 2>/dev/null")
        if rc ~= 0 then return end
        require("luv").sleep(50)
      end
      error("chat did not exit")
    end)
    tm_cmd("kill-session -t " .. name)
    assert(ok, err)
  end)
end)

describe("tmrun chat.lua with no model", function()
  it("talks with the embedded default model", function()
    if not require("tmrun.default_model").exists() then
      pending("models/tmrun-demo is missing")
      return
    end
    local out, rc = helpers.run(string.format(
      "printf 'Tell me about the weather.\n\nexit\n' | %s chat.lua --temperature 0 --max-new-tokens 12 2>&1",
      helpers.tmrun()))
    assert.are.equal(0, rc, out)
    assert.truthy(out:find("models/tmrun-demo", 1, true), out)
    local reply = out:match(">>> \n(.-)\n\ndouble enter")
    assert.truthy(reply and reply:find("%a%a"), "an English-like reply in:\n" .. out)
  end)
end)
