-- tmrun.server.http and .static: a server on port 0 inside this process, driven by
-- raw luv TCP clients on the same loop (and curl where it exists).  Every hostile
-- case checks the exact status and that a fresh connection still gets a 200.
local uv = require("luv")
local cjson = require("cjson")
local http = require("tmrun.server.http")
local http_parser = require("tmrun.server.http_parser")
local static = require("tmrun.server.static")
local fs = require("tmrun.util.fs")
local helpers = require("helpers")

-- Runs the loop until cond() holds or `timeout` seconds pass; returns cond().
local function pump(cond, timeout)
  local deadline = uv.hrtime() + (timeout or 3) * 1e9
  local tick = uv.new_timer()
  tick:start(5, 5, function() end) -- wakes uv.run("once") so the deadline is seen
  while not cond() and uv.hrtime() < deadline do uv.run("once") end
  tick:stop()
  tick:close()
  return cond()
end

-- Lets pending closes and file requests finish, so none outlives the spec (a luv
-- handle still closing when the Lua state goes away crashes the process at exit).
local function drain()
  local deadline = uv.hrtime() + 2e9
  while uv.loop_alive() and uv.hrtime() < deadline do
    uv.run("nowait")
    uv.sleep(1)
  end
  assert(not uv.loop_alive(), "handles or requests still open after the spec")
end

local function sleep(seconds)
  local t0 = uv.hrtime()
  pump(function() return uv.hrtime() - t0 > seconds * 1e9 end, seconds + 1)
end

-- A raw TCP client collecting everything it receives.
local Client = {}
Client.__index = Client

local function connect(port)
  local c = setmetatable({ data = {}, eof = false, connected = false, tcp = uv.new_tcp() }, Client)
  c.tcp:connect("127.0.0.1", port, function(err)
    if err then
      c.err, c.eof = err, true
      return
    end
    c.connected = true
    c.tcp:read_start(function(e, d)
      if e or not d then c.eof, c.err = true, e else c.data[#c.data + 1] = d end
    end)
  end)
  assert(pump(function() return c.connected or c.eof end, 3), "connect timed out")
  return c
end

function Client:send(s) self.tcp:write(s) end
function Client:text() return table.concat(self.data) end
function Client:close() if not self.tcp:is_closing() then self.tcp:close() end end

-- Splits received bytes into responses (interim 1xx ones included).  opts.head:
-- responses carry no body.  Returns the complete responses.
local function parse_responses(s, opts)
  local out, pos = {}, 1
  while true do
    local e = s:find("\r\n\r\n", pos, true)
    if not e then break end
    local head = s:sub(pos, e - 1)
    local r = { status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) ")), headers = {}, body = "" }
    for line in head:gmatch("\r\n([^\r\n]*)") do
      local k, v = line:match("^([^:]+):%s*(.*)$")
      if k then r.headers[k:lower()] = v end
    end
    local p = e + 4
    if r.status and (r.status < 200 or r.status == 204 or r.status == 304) or (opts and opts.head) then
      pos = p
    elseif r.headers["transfer-encoding"] == "chunked" then
      local parts, done = {}, false
      while true do
        local le = s:find("\r\n", p, true)
        if not le then break end
        local size = tonumber(s:sub(p, le - 1), 16)
        if size == 0 then
          if s:sub(le + 2, le + 3) == "\r\n" then done, p = true, le + 4 end
          break
        end
        if #s < le + 1 + size + 2 then break end
        parts[#parts + 1] = s:sub(le + 2, le + 1 + size)
        p = le + 2 + size + 2
      end
      r.body, r.chunks = table.concat(parts), parts
      if not done then
        r.partial = true
        out[#out + 1] = r
        break
      end
      pos = p
    elseif r.headers["content-length"] then
      local n = tonumber(r.headers["content-length"])
      if #s < p + n - 1 then break end
      r.body = s:sub(p, p + n - 1)
      pos = p + n
    else
      r.body = s:sub(p)
      pos = #s + 1
    end
    out[#out + 1] = r
  end
  return out
end

local function finals(c, opts)
  local out = {}
  for _, r in ipairs(parse_responses(c:text(), opts)) do
    if r.status and r.status >= 200 and not r.partial then out[#out + 1] = r end
  end
  return out
end

-- Sends raw bytes on a new connection; waits for n final responses (or the close).
local function exchange(port, raw, n, timeout, opts)
  local c = connect(port)
  c:send(raw)
  pump(function() return #finals(c, opts) >= (n or 1) or c.eof end, timeout or 3)
  return finals(c, opts), c
end

local function get(path, extra) return "GET " .. path .. " HTTP/1.1\r\nHost: t\r\n" .. (extra or "") .. "\r\n" end

local function error_message(r)
  local ok, obj = pcall(cjson.decode, r.body)
  return ok and type(obj.error) == "table" and obj.error.message or nil
end

describe("http server", function()
  local srv, port, events, errors_seen, web

  -- The normal request every hostile case is followed by.
  local function assert_alive()
    local rs, c = exchange(port, get("/ok"), 1)
    c:close()
    assert.are.equal(1, #rs)
    assert.are.equal(200, rs[1].status)
    assert.are.equal("ok", rs[1].body)
  end

  -- One hostile request: the exact status, an OpenAI-shaped body, the close, then a 200.
  local function assert_rejected(raw, status, opts)
    local rs, c = exchange(port, raw, 1, opts and opts.timeout)
    assert.are.equal(1, #rs, "no response to " .. ("%q"):format(raw:sub(1, 60)))
    assert.are.equal(status, rs[1].status, ("%q"):format(raw:sub(1, 60)))
    if not (opts and opts.keep) then
      assert.is_truthy(error_message(rs[1]), rs[1].body)
      assert.are.equal("close", rs[1].headers.connection)
      assert.is_true(pump(function() return c.eof end, 3), "connection left open")
    end
    c:close()
    assert_alive()
    return rs[1]
  end

  local function handler(req, res)
    local p = req.path
    if p == "/ok" then
      res:send(200, { ["content-type"] = "text/plain" }, "ok")
    elseif p == "/echo" then
      res:send(200, { ["content-type"] = "application/json" }, cjson.encode({
        method = req.method, path = req.path, target = req.target, query = req.query,
        headers = req.headers, body = req.body, version = req.version, remote = req.remote,
      }))
    elseif p == "/id" then
      res:send(200, nil, req.query.i)
    elseif p == "/slow" then
      local t = uv.new_timer()
      t:start(tonumber(req.query.ms), 0, function()
        t:close()
        res:send(200, nil, "slow " .. req.query.i)
      end)
    elseif p == "/stream" then
      local id, n, ms = req.query.id, tonumber(req.query.n), tonumber(req.query.ms)
      local ev = { closed = 0, writes = 0 }
      events[id] = ev
      res:start(200, { ["content-type"] = "text/event-stream" })
      local t = uv.new_timer()
      local function stop() if not t:is_closing() then t:stop() t:close() end end
      res:on_close(function()
        ev.closed = ev.closed + 1
        ev.res_closed = res.closed
        ev.write_after = res:write("late")
        stop()
      end)
      t:start(ms, ms, function()
        ev.writes = ev.writes + 1
        res:write("data: " .. ev.writes .. "\n\n")
        if ev.writes == n then
          stop()
          ev.finished = true
          res:finish()
        end
      end)
    elseif p == "/boom" then
      error("boom from the handler")
    elseif p == "/boom_stream" then
      res:start(200, {})
      res:write("part")
      error("boom mid-stream")
    elseif web and web(req, res) then
      return
    else
      res:send(404, { ["content-type"] = "application/json" }, http.error_body("no route " .. p))
    end
  end

  lazy_setup(function()
    events, errors_seen = {}, {}
    local root = helpers.tmpdir("http-static")
    fs.mkdir_p(root .. "/chat/sub")
    fs.write(root .. "/chat/index.html", "<h1>chat</h1>")
    fs.write(root .. "/chat/app.js", "console.log(1)")
    fs.write(root .. "/chat/sub/index.html", "sub")
    fs.write(root .. "/chat/.secret", "hidden")
    fs.write(root .. "/outside.txt", "outside the root")
    fs.write(root .. "/chat/big.bin", string.rep("0123456789abcdef", 400000)) -- 6.4 MB: streamed
    uv.fs_symlink("/etc", root .. "/chat/etc")
    uv.fs_symlink(root .. "/outside.txt", root .. "/chat/escape.txt")
    uv.fs_symlink(root .. "/chat/app.js", root .. "/chat/alias.js")
    web = static.handler(root .. "/chat", "/chat")
    srv = assert(http.server({
      host = "127.0.0.1", port = 0, handler = handler,
      on_error = function(msg) errors_seen[#errors_seen + 1] = msg end,
      limits = { max_body_bytes = 65536, request_timeout = 0.5, idle_timeout = 1, max_connections = 300 },
    }))
    port = srv.port
  end)

  lazy_teardown(function()
    srv:close()
    drain()
  end)

  it("listens on the port it picked and answers keep-alive requests on one connection", function()
    assert.is_true(port > 0)
    local c = connect(port)
    c:send(get("/ok"))
    assert.is_true(pump(function() return #finals(c) == 1 end))
    c:send(get("/ok"))
    assert.is_true(pump(function() return #finals(c) == 2 end))
    local r = finals(c)[2]
    assert.are.equal(200, r.status)
    assert.are.equal("2", r.headers["content-length"])
    assert.are.equal("keep-alive", r.headers.connection)
    assert.is_truthy(r.headers.date:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"))
    assert.is_false(c.eof)
    c:close()
  end)

  it("gives the handler a decoded path, the query, lower-case joined headers and the body", function()
    local raw = "POST /a%20b/caf%C3%A9?x=1&y=two+words&z=%26 HTTP/1.1\r\nHost: t\r\nX-Rep: a\r\nx-rep: b\r\n"
      .. "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    local rs, c = exchange(port, raw, 1)
    c:close()
    -- no route: the 404 body proves the request parsed; /echo shows the fields
    assert.are.equal(404, rs[1].status)
    raw = raw:gsub("^POST /a%%20b/caf%%C3%%A9", "POST /echo")
    rs, c = exchange(port, raw, 1)
    c:close()
    local req = cjson.decode(rs[1].body)
    assert.are.same({ x = "1", y = "two words", z = "&" }, req.query)
    assert.are.equal("a, b", req.headers["x-rep"])
    assert.are.equal("text/plain", req.headers["content-type"])
    assert.are.equal("hello", req.body)
    assert.are.equal("1.1", req.version)
    assert.are.equal("127.0.0.1", req.remote)
    assert.are.equal("/echo?x=1&y=two+words&z=%26", req.target)
    local rs2, c2 = exchange(port, get("/caf%C3%A9"), 1)
    c2:close()
    assert.are.equal("no route /café", error_message(rs2[1]))
  end)

  it("answers pipelined requests in order even when the first one answers last", function()
    local raw = get("/slow?ms=150&i=1") .. get("/id?i=2") .. get("/slow?ms=10&i=3") .. get("/id?i=4")
    local rs, c = exchange(port, raw, 4)
    c:close()
    assert.are.equal(4, #rs)
    assert.are.same({ "slow 1", "2", "slow 3", "4" }, { rs[1].body, rs[2].body, rs[3].body, rs[4].body })
  end)

  it("holds pipelined requests past max_pipeline back instead of dropping them", function()
    local parts = {}
    for i = 1, 200 do parts[i] = get("/id?i=" .. i) end
    local rs, c = exchange(port, table.concat(parts), 200, 5)
    c:close()
    assert.are.equal(200, #rs)
    for i = 1, 200 do assert.are.equal(tostring(i), rs[i].body) end
  end)

  it("reads chunked request bodies with extensions and trailers", function()
    local raw = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n" .. get("/ok")
    local rs, c = exchange(port, raw, 2)
    c:close()
    assert.are.equal("hello world", cjson.decode(rs[1].body).body)
    assert.are.equal("ok", rs[2].body)
  end)

  it("rejects malformed request lines with 400 and unknown versions with 505", function()
    for _, raw in ipairs({
      "GARBAGE\r\n\r\n", "GET /\r\nHost: t\r\n\r\n", "GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n",
      "GET  / HTTP/1.1\r\nHost: t\r\n\r\n", "G@T / HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET nopath HTTP/1.1\r\nHost: t\r\n\r\n", "\1\2\3\255\r\n\r\n", "GET / HTTP/x.y\r\nHost: t\r\n\r\n",
      "GET /a\1b HTTP/1.1\r\nHost: t\r\n\r\n", "GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n",
    }) do
      assert_rejected(raw, 400)
    end
    assert_rejected("GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505)
    assert_rejected("GET / HTTP/1.2\r\nHost: t\r\n\r\n", 505)
  end)

  it("rejects bad header lines with 400", function()
    for _, h in ipairs({ "Bad Name: x", "NoColon", " folded: x", "X: a\0b", "X: a\nY: b", "Bad\127: x",
      "X: a\rb" }) do
      assert_rejected("GET / HTTP/1.1\r\nHost: t\r\n" .. h .. "\r\n\r\n", 400)
    end
    assert_rejected("GET / HTTP/1.1\r\n\r\n", 400) -- HTTP/1.1 needs Host
    assert_rejected("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)
  end)

  it("answers a 100 KB header with 431 and too many header lines too", function()
    assert_rejected("GET /ok HTTP/1.1\r\nHost: t\r\nX-Big: " .. string.rep("a", 100 * 1024) .. "\r\n\r\n", 431)
    local many = {}
    for i = 1, 150 do many[i] = "X-" .. i .. ": v\r\n" end
    assert_rejected("GET /ok HTTP/1.1\r\nHost: t\r\n" .. table.concat(many) .. "\r\n", 431)
  end)

  it("answers bodies over the limit with 413, declared or chunked", function()
    local r = assert_rejected("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 70000\r\n\r\n"
      .. string.rep("x", 70000), 413)
    assert.is_truthy(error_message(r):find("65536", 1, true))
    local chunk = string.rep("y", 40000)
    assert_rejected("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. ("%x\r\n%s\r\n"):format(#chunk, chunk):rep(2) .. "0\r\n\r\n", 413)
    -- with Expect, the 413 comes before the body is sent and no 100 is sent
    local rs, c = exchange(port, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
      .. "Content-Length: 999999\r\n\r\n", 1)
    assert.are.equal(413, rs[1].status)
    assert.is_falsy(c:text():find("100 Continue", 1, true))
    c:close()
  end)

  it("checks framing: Content-Length forms, Transfer-Encoding, and both at once", function()
    assert_rejected("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "0\r\n\r\n", 400)
    assert_rejected("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400)
    assert_rejected("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400)
    assert_rejected("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400)
    assert_rejected("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 400)
    assert_rejected("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501)
    assert_rejected("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400)
    assert_rejected("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", 400)
    local rs, c = exchange(port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc", 1)
    c:close()
    assert.are.equal("abc", cjson.decode(rs[1].body).body)
  end)

  it("handles a Content-Length that does not match the body", function()
    -- shorter body than declared: the request never completes, so 408
    local t0 = uv.hrtime()
    assert_rejected("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", 408)
    assert.is_true((uv.hrtime() - t0) / 1e9 >= 0.45)
    -- longer: the extra bytes are the next request, which is garbage
    local rs, c = exchange(port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcdefXYZ\r\n\r\n", 2)
    assert.are.equal(2, #rs)
    assert.are.equal("abc", cjson.decode(rs[1].body).body)
    assert.are.equal(400, rs[2].status)
    assert.is_true(pump(function() return c.eof end))
    c:close()
    assert_alive()
  end)

  it("times out a slowloris client with 408 while others are served", function()
    local c = connect(port)
    local raw = get("/ok", "X-Pad: " .. string.rep("p", 200) .. "\r\n")
    local sent = 0
    local t = uv.new_timer()
    t:start(20, 20, function()
      if c.eof or sent >= #raw then return t:stop() end
      sent = sent + 1
      c:send(raw:sub(sent, sent))
    end)
    assert_alive() -- served while the trickle goes on
    assert.is_true(pump(function() return c.eof end, 3))
    t:stop()
    t:close()
    local rs = finals(c)
    assert.are.equal(1, #rs)
    assert.are.equal(408, rs[1].status)
    assert.is_true(sent < #raw)
    c:close()
    assert_alive()
  end)

  it("closes keep-alive connections idle past idle_timeout", function()
    local c = connect(port)
    c:send(get("/ok"))
    assert.is_true(pump(function() return #finals(c) == 1 end))
    local t0 = uv.hrtime()
    assert.is_true(pump(function() return c.eof end, 3))
    local waited = (uv.hrtime() - t0) / 1e9
    assert.is_true(waited > 0.8 and waited < 2.5, "closed after " .. waited .. " s")
    c:close()
    assert_alive()
  end)

  it("restarts the idle clock after every request on a keep-alive connection", function()
    local c = connect(port)
    for i = 1, 5 do -- 5 requests 0.4 s apart: 2 s in all, twice idle_timeout
      c:send(get("/id?i=" .. i))
      assert.is_true(pump(function() return #finals(c) == i end))
      if i < 5 then sleep(0.4) end
    end
    assert.is_false(c.eof)
    c:close()
  end)

  it("rejects invalid UTF-8 in the path, query and headers with 400", function()
    for _, raw in ipairs({ get("/caf%FF"), get("/caf\255"), get("/%C0%AF"), get("/%ED%A0%80"),
      get("/ok?q=%FF"), get("/ok", "X-Name: \195\40\r\n"), get("/%00") }) do
      assert_rejected(raw, 400)
    end
    local rs, c = exchange(port, get("/echo", "X-Name: caf\195\169\r\n"), 1)
    c:close()
    assert.are.equal("caf\195\169", cjson.decode(rs[1].body).headers["x-name"])
  end)

  it("sends 100 Continue before the body when asked, and 417 for other expectations", function()
    local c = connect(port)
    c:send("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert.is_true(pump(function() return c:text():find("HTTP/1.1 100 Continue\r\n\r\n", 1, true) ~= nil end))
    c:send("12345")
    assert.is_true(pump(function() return #finals(c) == 1 end))
    assert.are.equal("12345", cjson.decode(finals(c)[1].body).body)
    c:close()
    assert_rejected("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\nContent-Length: 5\r\n\r\n12345", 417)
  end)

  it("answers 500 with the internal_error body when the handler raises, and keeps serving", function()
    local before = #errors_seen
    local rs, c = exchange(port, get("/boom") .. get("/ok"), 2)
    c:close()
    assert.are.equal(500, rs[1].status)
    assert.are.equal('{"error":{"message":"internal error","type":"internal_error","param":null,"code":null}}',
      rs[1].body)
    assert.are.equal("ok", rs[2].body)
    assert.are.equal(before + 1, #errors_seen)
    assert.is_truthy(errors_seen[#errors_seen]:find("boom from the handler", 1, true))
    -- raising mid-stream cuts the stream: no terminating chunk
    rs, c = exchange(port, get("/boom_stream"), 1)
    assert.is_true(pump(function() return c.eof end))
    assert.is_falsy(c:text():find("\r\n0\r\n\r\n", 1, true))
    c:close()
    assert_alive()
  end)

  it("streams chunked responses and calls on_close when the client leaves mid-stream", function()
    local rs, c = exchange(port, get("/stream?id=full&n=5&ms=5"), 1)
    c:close()
    assert.are.equal("text/event-stream", rs[1].headers["content-type"])
    assert.are.equal(5, #rs[1].chunks)
    assert.are.equal("data: 1\n\n", rs[1].chunks[1])
    assert.are.equal(0, events.full.closed) -- finished streams never call on_close

    c = connect(port)
    c:send(get("/stream?id=cut&n=100000&ms=5"))
    assert.is_true(pump(function() return c:text():find("data: 3", 1, true) ~= nil end))
    local live = srv.stats.connections
    c:close()
    assert.is_true(pump(function() return events.cut.closed > 0 end))
    sleep(0.05)
    assert.are.equal(1, events.cut.closed)
    assert.is_true(events.cut.res_closed)
    assert.is_false(events.cut.write_after)
    assert.is_nil(events.cut.finished)
    assert.is_true(pump(function() return srv.stats.connections <= live - 1 end))
    assert_alive()
  end)

  it("honours Connection: close, HTTP/1.0 and HEAD", function()
    local rs, c = exchange(port, get("/ok", "Connection: close\r\n") .. get("/ok"), 2)
    assert.are.equal(1, #rs)
    assert.are.equal("close", rs[1].headers.connection)
    assert.is_true(pump(function() return c.eof end))
    c:close()
    rs, c = exchange(port, "GET /ok HTTP/1.0\r\n\r\n", 1) -- no Host is fine for 1.0
    assert.are.equal(200, rs[1].status)
    assert.is_true(pump(function() return c.eof end))
    c:close()
    rs, c = exchange(port, "GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /id?i=7 HTTP/1.0\r\n\r\n", 2)
    assert.are.equal("keep-alive", rs[1].headers.connection)
    assert.are.equal("7", rs[2].body)
    c:close()
    -- a stream to an HTTP/1.0 client: raw bytes, ended by the close
    rs, c = exchange(port, "GET /stream?id=old&n=3&ms=5 HTTP/1.0\r\n\r\n", 1)
    assert.is_true(pump(function() return c.eof end))
    assert.are.equal("data: 1\n\ndata: 2\n\ndata: 3\n\n", finals(c)[1].body)
    c:close()
    rs, c = exchange(port, "HEAD /ok HTTP/1.1\r\nHost: t\r\n\r\n" .. get("/id?i=9"), 2, 3, { head = true })
    c:close()
    assert.are.equal("2", rs[1].headers["content-length"])
    local text = c:text()
    assert.is_truthy(text:find("\r\n\r\nHTTP/1.1 200", 1, true)) -- no body between the two
    assert.is_truthy(text:find("9$"))
  end)

  it("serves 64 concurrent streams and thousands of small requests", function()
    local clients = {}
    for i = 1, 64 do
      clients[i] = connect(port)
      clients[i]:send(get("/stream?id=c" .. i .. "&n=20&ms=10"))
    end
    assert.is_true(pump(function()
      for _, c in ipairs(clients) do
        local r = finals(c)[1]
        if not r or #r.chunks ~= 20 then return false end
      end
      return true
    end, 10))
    for _, c in ipairs(clients) do c:close() end
    local t0 = uv.hrtime()
    local conns, per = {}, 500
    for i = 1, 8 do
      local parts = {}
      for j = 1, per do parts[j] = get("/id?i=" .. j) end
      conns[i] = connect(port)
      conns[i]:send(table.concat(parts))
    end
    assert.is_true(pump(function()
      for _, c in ipairs(conns) do if #finals(c) < per then return false end end
      return true
    end, 15))
    local rate = 8 * per / ((uv.hrtime() - t0) / 1e9)
    print(("\n  http: %d small requests/s over 8 pipelined connections"):format(rate))
    for _, c in ipairs(conns) do c:close() end
  end)

  describe("static files", function()
    it("serves files with content types, index.html for the prefix and ETag revalidation", function()
      local rs, c = exchange(port, get("/chat") .. get("/chat/") .. get("/chat/app.js") .. get("/chat/sub"), 4)
      c:close()
      assert.are.equal("<h1>chat</h1>", rs[1].body)
      assert.are.equal("text/html; charset=utf-8", rs[1].headers["content-type"])
      assert.are.equal("<h1>chat</h1>", rs[2].body)
      assert.are.equal("console.log(1)", rs[3].body)
      assert.are.equal("text/javascript; charset=utf-8", rs[3].headers["content-type"])
      assert.are.equal("sub", rs[4].body)
      local etag = rs[3].headers.etag
      rs, c = exchange(port, get("/chat/app.js", "If-None-Match: " .. etag .. "\r\n") .. get("/chat/alias.js"), 2)
      c:close()
      assert.are.equal(304, rs[1].status)
      assert.are.equal("console.log(1)", rs[2].body) -- a symlink inside the root is fine
      rs, c = exchange(port, "HEAD /chat/app.js HTTP/1.1\r\nHost: t\r\n\r\n", 1, 3, { head = true })
      c:close()
      assert.are.equal("14", rs[1].headers["content-length"])
      rs, c = exchange(port, get("/chat/big.bin"), 1, 5)
      c:close()
      assert.are.equal(6400000, #rs[1].body)
      assert.are.equal(string.rep("0123456789abcdef", 4), rs[1].body:sub(-64))
    end)

    it("answers 404 JSON for missing, hidden and escaping paths, and passes other routes on", function()
      for _, path in ipairs({ "/chat/missing.js", "/chat/.secret", "/chat/etc/passwd", "/chat/escape.txt",
        "/chat/sub/nope" }) do
        local r = assert_rejected(get(path), 404, { keep = true })
        assert.is_truthy(error_message(r):find("not found", 1, true), path)
      end
      local rs, c = exchange(port, "POST /chat/app.js HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n" ..
        get("/chatroom"), 2)
      c:close()
      assert.are.equal("no route /chat/app.js", error_message(rs[1]))
      assert.are.equal("no route /chatroom", error_message(rs[2]))
    end)

    it("never serves outside the root: .., encoded .., NUL and backslashes", function()
      for _, path in ipairs({ "/chat/../../etc/passwd", "/chat/..%2f..%2fetc/passwd",
        "/chat/%2e%2e/%2e%2e/etc/passwd", "/chat/%2E%2E", "/chat/sub/../../outside.txt", "/chat/./app.js",
        "/chat/..%5c..%5cetc%5cpasswd", "/chat/a%0Ab" }) do
        local r = assert_rejected(get(path), 400, { keep = true })
        assert.is_falsy(r.body:find("root:", 1, true))
      end
      assert_rejected(get("/chat/%00"), 400) -- NUL is refused by the parser itself
    end)
  end)

  it("works with curl: an Expect: 100-continue upload and a streamed response", function()
    local curl = helpers.run("command -v curl")
    if curl == "" then return pending("curl is not installed") end
    local body = string.rep("z", 3000)
    local out, done, code = {}, false, nil
    local stdout = uv.new_pipe()
    local cmd = ("curl -sS --max-time 5 -H 'Expect: 100-continue' -H 'Content-Type: text/plain' "
      .. "--data-binary @- http://127.0.0.1:%d/echo -: -N http://127.0.0.1:%d/stream?id=curl\\&n=4\\&ms=5"):format(port, port)
    local stdin = uv.new_pipe()
    local proc = uv.spawn("sh", { args = { "-c", cmd }, stdio = { stdin, stdout, 2 } }, function(rc)
      code, done = rc, true
    end)
    stdout:read_start(function(_, d) if d then out[#out + 1] = d end end)
    stdin:write(body)
    stdin:shutdown(function() stdin:close() end)
    assert.is_true(pump(function() return done end, 8))
    proc:close()
    stdout:close()
    assert.are.equal(0, code)
    local text = table.concat(out)
    local json = text:match("^(%b{})")
    assert.are.equal(body, cjson.decode(json).body)
    assert.are.equal("100-continue", cjson.decode(json).headers.expect)
    assert.are.equal("data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n", text:sub(#json + 1))
  end)
end)

describe("http server limits and shutdown", function()
  lazy_teardown(drain)
  it("answers 503 past max_connections and closes at once", function()
    local srv = assert(http.server({ port = 0, limits = { max_connections = 2 },
      handler = function(_, res) res:send(200, nil, "ok") end }))
    local a, b = connect(srv.port), connect(srv.port)
    assert.is_true(pump(function() return srv.stats.connections == 2 end))
    local c = connect(srv.port)
    c:send(get("/"))
    assert.is_true(pump(function() return c.eof end))
    local rs = finals(c)
    assert.are.equal(503, rs[1].status)
    assert.are.equal("server_error", cjson.decode(rs[1].body).error.type)
    c:close()
    a:close()
    assert.is_true(pump(function() return srv.stats.connections == 1 end))
    local d = connect(srv.port)
    d:send(get("/"))
    assert.is_true(pump(function() return #finals(d) == 1 end))
    assert.are.equal(200, finals(d)[1].status)
    assert.are.equal(1, srv.stats.requests)
    b:close()
    d:close()
    srv:close()
  end)

  it("closes the listener and every connection on close(), calling on_close", function()
    local closed = 0
    local srv = assert(http.server({ port = 0, handler = function(_, res)
      res:start(200, { ["content-type"] = "text/event-stream" })
      res:write("data: hi\n\n")
      res:on_close(function() closed = closed + 1 end)
    end }))
    local c = connect(srv.port)
    c:send(get("/"))
    assert.is_true(pump(function() return c:text():find("data: hi", 1, true) ~= nil end))
    srv:close()
    assert.are.equal(1, closed)
    assert.are.equal(0, srv.stats.connections)
    assert.is_true(pump(function() return c.eof end))
    c:close()
    local again = uv.new_tcp()
    local refused
    again:connect("127.0.0.1", srv.port, function(err) refused = err ~= nil end)
    assert.is_true(pump(function() return refused ~= nil end))
    assert.is_true(refused)
    again:close()
  end)

  it("rejects bad options as misuse", function()
    local function raises(fn, msg)
      local ok, err = pcall(fn)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find(msg, 1, true), tostring(err))
    end
    raises(function() http.server({ port = 0 }) end, "http.server needs handler = function(req, res)")
    raises(function() http.server({ port = 0, handler = print, limits = { max_body_bytes = -1 } }) end,
      "limits.max_body_bytes must be a positive number, got -1")
    raises(function() http.server({ port = 0, handler = print, limits = { max_bodies = 1 } }) end,
      "unknown limit max_bodies")
    local srv = assert(http.server({ port = 0, handler = print }))
    local dup, err = http.server({ port = srv.port, handler = print })
    assert.is_nil(dup)
    assert.is_truthy(err:find("EADDRINUSE", 1, true))
    srv:close()
  end)
end)

describe("http parser", function()
  local limits = { max_header_bytes = 16384, max_body_bytes = 65536 }
  local input = "POST /a?x=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    .. "3\r\nabc\r\nA;e=1\r\n0123456789\r\n0\r\n\r\n"
    .. "\r\nPUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nwxyz"
    .. "GET /c%20d HTTP/1.0\r\n\r\n"

  local function parse_all(pieces)
    local reqs, errs = {}, {}
    local p = http_parser.new(limits, {
      on_request = function(r) reqs[#reqs + 1] = r end,
      on_error = function(s, m) errs[#errs + 1] = s .. " " .. m end,
    })
    for _, piece in ipairs(pieces) do assert.is_nil(p:feed(piece)) end
    return reqs, errs, p
  end

  it("gives the same requests whether bytes come at once or one at a time", function()
    local whole = parse_all({ input })
    local bytes = {}
    for i = 1, #input do bytes[i] = input:sub(i, i) end
    local trickled, errs, p = parse_all(bytes)
    assert.are.same({}, errs)
    assert.are.equal(3, #whole)
    assert.are.same(whole, trickled)
    assert.are.equal("abc0123456789", whole[1].body)
    assert.are.same({ x = "1" }, whole[1].query)
    assert.are.equal("wxyz", whole[2].body)
    assert.are.equal("/c d", whole[3].path)
    assert.is_false(whole[3].keep_alive)
    assert.is_false(p.started)
  end)

  it("pauses when on_request asks and hands back the rest", function()
    local n = 0
    local p = http_parser.new(limits, { on_request = function() n = n + 1 return true end, on_error = error })
    local rest = p:feed(input)
    assert.are.equal(1, n)
    rest = p:feed(rest)
    assert.are.equal(2, n)
    assert.is_nil(p:feed(rest))
    assert.are.equal(3, n)
  end)

  it("validates UTF-8 strictly", function()
    for _, s in ipairs({ "", "abc", "caf\195\169", "\240\159\152\128", "\239\191\189" }) do
      assert.is_true(http_parser.valid_utf8(s), s)
    end
    for _, s in ipairs({ "\255", "\195", "\195\40", "\192\175", "\224\128\175", "\237\160\128", "\244\144\128\128",
      "\240\159\152" }) do
      assert.is_false(http_parser.valid_utf8(s), s)
    end
  end)
end)
