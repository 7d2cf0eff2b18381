-- tmrun.server.http: an HTTP/1.1 server on libuv (luv): keep-alive, pipelining,
-- chunked bodies both ways, limits enforced before any handler runs.  See docs/HTTP.md.
--
--   local srv, err = http.server({ host =, port =, limits =, handler = fn(req, res), on_error = fn(msg) })
--   srv.port, srv.stats, srv:close()
--
-- Everything runs on the luv loop; nothing here blocks.  One connection handles one
-- request at a time: later pipelined requests wait in its queue, so responses leave
-- in request order however late the handler answers.
local uv = require("luv")
local parser = require("tmrun.server.http_parser")
local http_response = require("tmrun.server.http_response")

local M = {}

local find, lower, format = string.find, string.lower, string.format
local concat = table.concat

M.error_body = http_response.error_body
M.REASONS = http_response.REASONS

M.DEFAULT_LIMITS = {
  max_header_bytes = 16384,
  max_body_bytes = 8 * 1024 * 1024,
  max_connections = 512,
  request_timeout = 30,
  idle_timeout = 75,
  max_pipeline = 32,
}

-- How long a closing connection keeps reading (and dropping) what the client still
-- sends, so that closing with unread bytes does not reset the response away.
local LINGER_MS = 2000
-- Write backlog (bytes queued to libuv) above which no new request is started.
local WRITE_HIGH_WATER = 1024 * 1024
-- Bytes held for a connection whose request queue is full before reading stops.
local STASH_MAX = 1024 * 1024

-- Connection ------------------------------------------------------------------------
-- States: reading requests (parser) -> one request at a time owned by the handler
-- (active) with later ones queued -> closing (shut down, lingering) -> closed.
local Conn = {}
Conn.__index = Conn

function Conn.new(srv, tcp)
  local peer = tcp:getpeername()
  local self = setmetatable({
    srv = srv, tcp = tcp, remote = peer and peer.ip or "",
    queue = {}, qhead = 1, qtail = 0, -- parsed requests (or parse errors) not yet handled
    stash = {}, nstash = 0, stash_bytes = 0, -- received bytes not yet parsed (queue full)
    wpending = 0, active = nil, closing = false, closed = false, no_more = false,
    timer = uv.new_timer(), tmode = nil, tseq = nil, reading = false,
  }, Conn)
  self.parser = parser.new(srv.limits, {
    on_head = function(req) return self:on_head(req) end,
    on_request = function(req)
      req.remote = self.remote
      return self:enqueue(req)
    end,
    on_error = function(status, msg) self:enqueue({ error = status, message = msg }) end,
  })
  srv.conns[self] = true
  srv.stats.connections = srv.stats.connections + 1
  tcp:nodelay(true)
  self:read_start()
  self:update_timer()
  return self
end

function Conn:read_start()
  if self.reading or self.closed then return end
  self.reading = true
  self.tcp:read_start(function(err, data) self:on_read(err, data) end)
end

function Conn:queued() return self.qtail - self.qhead + 1 end

-- Returns true to pause the parser: the queue is full, or the request asked for
-- the connection to be closed after it (later bytes are not parsed at all).
function Conn:enqueue(entry)
  self.qtail = self.qtail + 1
  self.queue[self.qtail] = entry
  if entry.error or not entry.keep_alive then
    self.no_more = true
    return true
  end
  return self:queued() >= self.srv.limits.max_pipeline
end

-- Expect: 100-continue is answered only when this request is next in line, so the
-- interim response never lands inside another response; otherwise the client's
-- own expect timeout sends the body.
function Conn:on_head(req)
  local expect = req.headers.expect
  if not expect then return nil end
  if lower(expect) ~= "100-continue" then return 417, "the only Expect value supported is 100-continue" end
  local has_body = req.framing == "chunked" or req.content_length > 0
  if has_body and req.version == "1.1" and not self.active and self:queued() == 0 then
    self:write("HTTP/1.1 100 Continue\r\n\r\n")
  end
  return nil
end

function Conn:on_read(err, data)
  if self.closed then return end
  if err or not data then return self:destroy() end
  if self.closing then return end -- lingering: drop what the client still sends
  if self.no_more then return end -- parsing stopped; reading goes on only to see the peer leave
  if self.nstash > 0 or self:queued() >= self.srv.limits.max_pipeline then
    self:stash_add(data)
  else
    local rest = self.parser:feed(data)
    if rest then self:stash_add(rest) end
  end
  self:pump()
end

function Conn:stash_add(data)
  self.nstash = self.nstash + 1
  self.stash[self.nstash] = data
  self.stash_bytes = self.stash_bytes + #data
  if self.stash_bytes > STASH_MAX and self.reading then
    self.reading = false
    self.tcp:read_stop()
  end
end

-- Parses stashed bytes while the queue has room.
function Conn:feed_stash()
  local limit = self.srv.limits.max_pipeline
  while self.nstash > 0 and not self.no_more and self:queued() < limit do
    local data = table.remove(self.stash, 1)
    self.nstash = self.nstash - 1
    self.stash_bytes = self.stash_bytes - #data
    local rest = self.parser:feed(data)
    if rest then
      table.insert(self.stash, 1, rest)
      self.nstash, self.stash_bytes = self.nstash + 1, self.stash_bytes + #rest
    end
  end
  if self.no_more then self.stash, self.nstash, self.stash_bytes = {}, 0, 0 end
  if self.stash_bytes <= STASH_MAX then self:read_start() end
end

-- Runs queued requests in order, one at a time.  Re-entrant calls (a handler that
-- answers at once) return; the loop below picks up the next request.
function Conn:pump()
  if self.pumping then return end
  self.pumping = true
  while not self.closed and not self.closing do
    if self.nstash > 0 and not self.no_more and self:queued() < self.srv.limits.max_pipeline then
      self:feed_stash()
    end
    if self.active or self:queued() == 0 or self.wpending > WRITE_HIGH_WATER then break end
    local entry = self.queue[self.qhead]
    self.queue[self.qhead] = nil
    self.qhead = self.qhead + 1
    if self.tmode == "idle" then self.tmode = nil end -- activity: the idle clock restarts after it
    if entry.error then
      self:send_error(entry.error, entry.message)
    else
      self:run_handler(entry)
    end
  end
  self.pumping = false
  self:update_timer()
end

function Conn:send_error(status, message)
  local res = http_response.new(self, { method = "GET", keep_alive = false, version = "1.1" })
  self.active = res
  res:send(status, { ["Content-Type"] = "application/json" }, http_response.error_body(message))
end

function Conn:run_handler(req)
  local srv = self.srv
  local res = http_response.new(self, req)
  self.active = res
  srv.stats.requests = srv.stats.requests + 1
  local ok, err = xpcall(srv.handler, debug.traceback, req, res)
  if ok then return end
  srv:report(format("%s %s: %s", req.method, req.target, tostring(err)))
  if res.state == "new" then
    res:send(500, { ["Content-Type"] = "application/json" }, http_response.INTERNAL_ERROR_BODY)
  elseif res.state == "streaming" then
    self:destroy() -- a stream cannot change its status: cut it, the client sees it unfinished
  end
end

-- Queues bytes (a string or a list of strings) to libuv.
function Conn:write(data)
  if self.closed then return end
  local size = 0
  if type(data) == "table" then
    for i = 1, #data do size = size + #data[i] end
  else
    size = #data
  end
  self.wpending = self.wpending + size
  local ok = self.tcp:write(data, function(err)
    self.wpending = self.wpending - size
    if err then return self:destroy() end
    if not self.active and self:queued() > 0 and self.wpending <= WRITE_HIGH_WATER then self:pump() end
  end)
  if not ok then self:destroy() end
end

-- The active response is complete.
function Conn:response_done(res)
  if self.active ~= res then return end
  self.active = nil
  if not res.keep_alive then return self:close_gracefully() end
  self:pump()
end

-- Sends what is queued, shuts the write side, then reads and drops the client's
-- remaining bytes until it closes or LINGER_MS pass.
function Conn:close_gracefully()
  if self.closing or self.closed then return end
  self.closing = true
  self.tmode = "linger"
  self.timer:start(LINGER_MS, 0, function() self:destroy() end)
  self:read_start()
  self.tcp:shutdown(function() end)
end

-- Closes at once; the active response (if any) learns its peer is gone.
function Conn:destroy()
  if self.closed then return end
  self.closed = true
  self.timer:stop()
  self.timer:close()
  if not self.tcp:is_closing() then self.tcp:close() end
  self.srv.conns[self] = nil
  self.srv.stats.connections = self.srv.stats.connections - 1
  local res = self.active
  self.active = nil
  if res then res:peer_gone() end
end

-- One timer a connection: the request timeout while a request is arriving, the
-- idle timeout while nothing is going on, none while a handler owns a request.
function Conn:update_timer()
  if self.closed or self.closing then return end
  local p = self.parser
  local limits = self.srv.limits
  if p.started and not self.no_more then
    if self.tmode ~= "request" or self.tseq ~= p.seq then
      self.tmode, self.tseq = "request", p.seq
      self.timer:start(math.floor(limits.request_timeout * 1000), 0, function() self:on_request_timeout() end)
    end
  elseif not self.active and self:queued() == 0 and self.nstash == 0 then
    if self.tmode ~= "idle" then
      self.tmode = "idle"
      self.timer:start(math.floor(limits.idle_timeout * 1000), 0, function() self:destroy() end)
    end
  elseif self.tmode then
    self.tmode = nil
    self.timer:stop()
  end
end

function Conn:on_request_timeout()
  self.tmode = nil
  self.parser:fail(408, format("the request was not received within %g s", self.srv.limits.request_timeout))
  self:pump()
end

-- Server ----------------------------------------------------------------------
local Server = {}
Server.__index = Server

local function check_limits(limits)
  local out = {}
  for k, v in pairs(M.DEFAULT_LIMITS) do out[k] = v end
  for k, v in pairs(limits or {}) do
    if M.DEFAULT_LIMITS[k] == nil then error("unknown limit " .. tostring(k), 3) end
    if type(v) ~= "number" or v <= 0 then error(format("limits.%s must be a positive number, got %s", k, tostring(v)), 3) end
    out[k] = v
  end
  for _, k in ipairs({ "max_header_bytes", "max_body_bytes", "max_connections", "max_pipeline" }) do
    if out[k] % 1 ~= 0 then error(format("limits.%s must be an integer, got %s", k, tostring(out[k])), 3) end
  end
  return out
end

-- An IP literal for host (names are resolved once, at start-up).
local function resolve(host)
  if host:match("^[%d.]+$") or host:find(":", 1, true) then return host end
  local res, err = uv.getaddrinfo(host, nil, { socktype = "stream" })
  if not res or not res[1] then return nil, err or ("cannot resolve " .. host) end
  return res[1].addr
end

function M.server(opts)
  if type(opts) ~= "table" then error("http.server needs an options table", 2) end
  if type(opts.handler) ~= "function" then error("http.server needs handler = function(req, res)", 2) end
  local port = opts.port == nil and 23333 or opts.port
  if type(port) ~= "number" or port % 1 ~= 0 or port < 0 or port > 65535 then
    error("port must be an integer in [0, 65535], got " .. tostring(opts.port), 2)
  end
  local srv = setmetatable({
    limits = check_limits(opts.limits), handler = opts.handler, on_error = opts.on_error,
    conns = {}, rejecting = 0, closed = false,
    stats = { connections = 0, requests = 0 },
  }, Server)
  local host, rerr = resolve(opts.host or "127.0.0.1")
  if not host then return nil, rerr end
  local tcp = uv.new_tcp()
  local ok, err = tcp:bind(host, port)
  if ok then ok, err = tcp:listen(511, function(e) srv:accept(e) end) end
  if not ok then
    tcp:close()
    return nil, tostring(err) -- luv's "ENAME: message"; the caller names the address
  end
  srv.listener, srv.host, srv.port = tcp, host, tcp:getsockname().port
  return srv
end

function Server:report(msg)
  if not self.on_error then return end
  local ok, err = pcall(self.on_error, msg)
  if not ok then io.stderr:write("tmrun http: on_error failed: ", tostring(err), "\n") end
end

-- The Date header value, formatted once a second.
function Server:date()
  local t = os.time()
  if t ~= self.date_t then self.date_t, self.date_s = t, os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end
  return self.date_s
end

function Server:accept(err)
  if err or self.closed then return end
  local tcp = uv.new_tcp()
  if not self.listener:accept(tcp) then
    tcp:close()
    return
  end
  if self.stats.connections >= self.limits.max_connections then return self:reject(tcp) end
  Conn.new(self, tcp)
end

-- Over max_connections: a 503 and a close, without reading the request.
function Server:reject(tcp)
  if self.rejecting >= self.limits.max_connections then
    tcp:close()
    return
  end
  self.rejecting = self.rejecting + 1
  local body = http_response.error_body("too many connections, try again later", "server_error")
  local msg = concat({ "HTTP/1.1 503 Service Unavailable\r\nDate: ", self:date(),
    "\r\nContent-Type: application/json\r\nRetry-After: 1\r\nContent-Length: ", #body,
    "\r\nConnection: close\r\n\r\n", body })
  local timer = uv.new_timer()
  local done = false
  local function finish()
    if done then return end
    done = true
    self.rejecting = self.rejecting - 1
    timer:close()
    if not tcp:is_closing() then tcp:close() end
  end
  tcp:write(msg)
  tcp:shutdown(function()
    if not done then tcp:read_start(function(e, data) if e or not data then finish() end end) end
  end)
  timer:start(math.floor(LINGER_MS / 2), 0, finish)
end

-- Closes the listener and every connection (their on_close callbacks run).
function Server:close()
  if self.closed then return end
  self.closed = true
  if not self.listener:is_closing() then self.listener:close() end
  local list = {}
  for c in pairs(self.conns) do list[#list + 1] = c end
  for _, c in ipairs(list) do c:destroy() end
end

return M
