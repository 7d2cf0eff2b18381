-- tmrun.server.http_response: the response object handed to HTTP handlers
-- (send, or start/write/finish; on_close), and the server's error bodies.
-- A response writes through its connection: conn:write(data), conn:response_done(res).
local M = {}

local find, lower, format = string.find, string.lower, string.format
local concat = table.concat

local REASONS = {
  [100] = "Continue", [101] = "Switching Protocols", [200] = "OK", [201] = "Created", [202] = "Accepted",
  [204] = "No Content", [206] = "Partial Content", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [406] = "Not Acceptable", [408] = "Request Timeout", [409] = "Conflict",
  [410] = "Gone", [411] = "Length Required", [413] = "Content Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [416] = "Range Not Satisfiable", [417] = "Expectation Failed",
  [422] = "Unprocessable Content", [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}
M.REASONS = REASONS

local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"

local JSON_ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return JSON_ESC[c] or format("\\u%04x", c:byte()) end) .. '"'
end

-- The OpenAI-shaped error body, keys in the documented order.
function M.error_body(message, etype)
  return '{"error":{"message":' .. json_string(tostring(message)) .. ',"type":"' .. (etype or "invalid_request_error")
    .. '","param":null,"code":null}}'
end
M.INTERNAL_ERROR_BODY = M.error_body("internal error", "internal_error")

-- Response ------------------------------------------------------------------------

local Res = {}
Res.__index = Res

function M.new(conn, req)
  return setmetatable({
    conn = conn, closed = false, state = "new", -- new -> streaming -> done
    head_only = req.method == "HEAD", keep_alive = req.keep_alive, version = req.version,
  }, Res)
end

local function no_body_status(status) return status < 200 or status == 204 or status == 304 end

-- The status line and headers.  The server owns the framing headers
-- (Content-Length, Transfer-Encoding, Connection, Date); the handler's
-- "connection: close" asks for the connection to be closed after the response.
function Res:head(status, headers, framing)
  if type(status) ~= "number" or status % 1 ~= 0 or status < 200 or status > 599 then
    error("status must be an integer in [200, 599], got " .. tostring(status), 3)
  end
  local out, n = { "HTTP/1.1 ", status, " ", REASONS[status] or "Unknown", "\r\n" }, 5
  local date = false
  for name, value in pairs(headers or {}) do
    if type(name) ~= "string" or not find(name, TOKEN) then
      error("header name must be a token string, got " .. tostring(name), 3)
    end
    local lname = lower(name)
    local values = type(value) == "table" and value or { value }
    for _, v in ipairs(values) do
      v = tostring(v)
      if find(v, "[\r\n%z]") then error("header " .. name .. " must not contain CR, LF or NUL", 3) end
      if lname == "connection" then
        if find(lower(v), "close", 1, true) then self.keep_alive = false end
      elseif lname == "content-length" then
        if self.head_only and framing == "send" then self.user_length = v end
        if framing == "start" then self.identity_length = v end
      elseif lname ~= "transfer-encoding" then
        if lname == "date" then date = true end
        out[n + 1], out[n + 2], out[n + 3], out[n + 4] = name, ": ", v, "\r\n"
        n = n + 4
      end
    end
  end
  local conn = self.conn
  if conn.srv.closed then self.keep_alive = false end
  if not date then out[n + 1], out[n + 2], n = "Date: " .. conn.srv:date(), "\r\n", n + 2 end
  return out, n
end

function Res:finish_head(out, n)
  local v = self.keep_alive and "keep-alive" or "close"
  out[n + 1], out[n + 2] = "Connection: " .. v, "\r\n\r\n"
  return concat(out, "", 1, n + 2)
end

-- A whole response.  Returns false (and does nothing) once the peer is gone.
function Res:send(status, headers, body)
  if self.state ~= "new" then error("a response was already started for this request", 2) end
  body = body or ""
  if type(body) ~= "string" then error("body must be a string, got " .. type(body), 2) end
  if self.closed then
    self.state = "done"
    return false
  end
  local out, n = self:head(status, headers, "send")
  local bodyless = no_body_status(status)
  if not bodyless then
    out[n + 1], out[n + 2], n = "Content-Length: " .. (self.user_length or #body), "\r\n", n + 2
  end
  local head = self:finish_head(out, n)
  self.state = "done"
  if bodyless or self.head_only or body == "" then
    self.conn:write(head)
  else
    self.conn:write({ head, body })
  end
  self.conn:response_done(self)
  return true
end

-- A streamed response: chunked for HTTP/1.1, or raw bytes when the handler set
-- Content-Length itself or the client speaks HTTP/1.0 (then the close ends it).
function Res:start(status, headers)
  if self.state ~= "new" then error("a response was already started for this request", 2) end
  if self.closed then
    self.state = "streaming"
    return false
  end
  local out, n = self:head(status, headers, "start")
  self.bodyless = self.head_only or no_body_status(status)
  if self.identity_length then
    out[n + 1], out[n + 2], n = "Content-Length: " .. self.identity_length, "\r\n", n + 2
  elseif not no_body_status(status) then
    if self.version == "1.1" then
      self.chunked = true
      out[n + 1], out[n + 2], n = "Transfer-Encoding: chunked", "\r\n", n + 2
    else
      self.keep_alive = false
    end
  end
  self.state = "streaming"
  self.conn:write(self:finish_head(out, n))
  return true
end

-- Queues one piece of a streamed body; false once the peer is gone.
function Res:write(chunk)
  if self.state ~= "streaming" then error("write needs start() first and no finish() yet", 2) end
  if self.closed then return false end
  if type(chunk) ~= "string" then error("chunk must be a string, got " .. type(chunk), 2) end
  if chunk == "" or self.bodyless then return true end
  if self.chunked then
    self.conn:write({ format("%x\r\n", #chunk), chunk, "\r\n" })
  else
    self.conn:write(chunk)
  end
  return true
end

function Res:finish()
  if self.state ~= "streaming" then error("finish needs start() first and no finish() yet", 2) end
  self.state = "done"
  if self.closed then return false end
  if self.chunked and not self.bodyless then self.conn:write("0\r\n\r\n") end
  self.conn:response_done(self)
  return true
end

-- fn() runs once if the peer goes away before the response is complete
-- (right away if it already has).
function Res:on_close(fn)
  if type(fn) ~= "function" then error("on_close needs a function", 2) end
  if self.closed then
    if self.state ~= "done" then fn() end
    return
  end
  self.close_fns = self.close_fns or {}
  self.close_fns[#self.close_fns + 1] = fn
end

function Res:peer_gone()
  if self.closed then return end
  self.closed = true
  local fns = self.close_fns
  self.close_fns = nil
  if not fns or self.state == "done" then return end
  for _, fn in ipairs(fns) do
    local ok, err = pcall(fn)
    if not ok then self.conn.srv:report("on_close callback failed: " .. tostring(err)) end
  end
end

return M
