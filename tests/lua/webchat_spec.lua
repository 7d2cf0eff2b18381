-- The web pages (/, /chat, /docs) in a real browser: `tmrun serve.lua` on a random
-- fixture model with the real llama2 tokenizer, driven by tests/e2e/chat.e2e.mjs
-- (playwright-core with Debian's chromium). The screenshot it takes is kept as a
-- test artifact in <build>/test-artifacts/chat.png.
local cjson = require("cjson")
local uv = require("luv")
local fs = require("tmrun.util.fs")
local helpers = require("helpers")
local fixtures = require("fixtures")

local CHROMIUM = "/usr/bin/chromium"
local E2E = TMRUN_HOME .. "/tests/e2e/chat.e2e.mjs"
local BUILD = os.getenv("TMRUN_BUILD_DIR") or (TMRUN_HOME .. "/build")
local SCREENSHOT = BUILD .. "/test-artifacts/chat.png"

-- Why the test cannot run here, or nil when it can.
local function missing()
  if not fs.is_file(CHROMIUM) then return CHROMIUM .. " missing (apt-get install chromium)" end
  if not helpers.run("command -v node"):match("%S") then return "node missing" end
  if not fs.is_file(TMRUN_HOME .. "/tests/js/node_modules/playwright-core/package.json") then
    return "playwright-core missing (npm install --prefix tests/js)"
  end
  if not fixtures.tokenizer_dir("llama2") then return "npm tokenizers missing (tests/js/node_modules)" end
  return nil
end

local function alive(pid) return select(2, helpers.run("kill -0 " .. pid .. " 2>/dev/null")) == 0 end

local function tail(path, n)
  local text = fs.read(path) or ""
  return text:sub(-(n or 3000))
end

-- Starts the server on a free port; returns { pid, port, log } once it listens.
local function start_server(dir, model)
  local out, log = dir .. "/serve.out", dir .. "/serve.log"
  -- one engine thread leaves the other core to Chromium
  local cmd = string.format("%s serve.lua %s --server-name 127.0.0.1 --server-port 0 --instance-num 4 "
    .. "--cache-max-entry-count 256 --threads 1 > %s 2> %s & echo $!", helpers.tmrun(), model, out, log)
  local pid = assert(tonumber(helpers.run(cmd):match("(%d+)")), "no pid from the shell")
  for _ = 1, 1200 do
    local port = (fs.read(out) or ""):match("listening on (%d+)")
    if port then return { pid = pid, port = tonumber(port), log = log } end
    if not alive(pid) then error("tmrun serve.lua exited before listening:\n" .. tail(log)) end
    uv.sleep(50)
  end
  helpers.run("kill " .. pid)
  error("tmrun serve.lua did not listen within 60 s:\n" .. tail(log))
end

local function stop_server(srv)
  helpers.run("kill " .. srv.pid .. " 2>/dev/null")
  for _ = 1, 100 do
    if not alive(srv.pid) then return end
    uv.sleep(50)
  end
  helpers.run("kill -9 " .. srv.pid .. " 2>/dev/null")
end

describe("the web chat and docs pages in headless chromium", function()
  local why = missing()
  if why then
    it("needs chromium, node and playwright-core", function() pending(why) end)
    return
  end

  local dir = helpers.tmpdir("webchat")
  -- session_len 4096 leaves room for the 2000-token turn that the test stops
  local model = fixtures.random_workspace(dir .. "/ws", "llama2", { session_len = 4096 })
  local srv

  setup(function() srv = start_server(dir, model) end)
  teardown(function() if srv then stop_server(srv) end end)

  it("chats with streaming, stops, starts over, and links the docs", function()
    os.remove(SCREENSHOT)
    os.remove((SCREENSHOT:gsub("%.png$", "-failure.png")))
    local out, rc = helpers.run(string.format("node %s --base http://127.0.0.1:%d --screenshot %s 2>&1",
      E2E, srv.port, SCREENSHOT))
    local last = out:match("([^\n]+)%s*$") or ""
    local ok, report = pcall(cjson.decode, last)
    assert(ok and type(report) == "table", "no JSON report from the e2e script:\n" .. out)
    if rc == 77 then return pending(report.error) end
    assert(rc == 0 and report.ok == true, string.format("e2e failed (exit %s): %s\n%s\nserver log:\n%s",
      tostring(rc), tostring(report.error), out, tail(srv.log)))

    local seen = {}
    for _, s in ipairs(report.steps) do seen[type(s) == "table" and s.name or s] = s end
    for _, name in ipairs({ "landing", "docs", "streaming", "stop", "error shown", "new conversation" }) do
      assert.is_not_nil(seen[name], "the e2e script skipped the step " .. name)
    end
    assert.is_true(seen.streaming.distinct_lengths >= 2)
    assert.is_true(alive(srv.pid), "the server died during the test:\n" .. tail(srv.log))

    local png = assert(fs.read(SCREENSHOT), "no screenshot at " .. SCREENSHOT)
    assert.are.equal("\137PNG\r\n\26\n", png:sub(1, 8))
    assert.is_true(#png > 10000, "the screenshot is suspiciously small")
  end)
end)
