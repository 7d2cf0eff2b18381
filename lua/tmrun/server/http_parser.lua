-- tmrun.server.http_parser: an incremental HTTP/1.1 request parser (RFC 9112).
--
--   local p = http_parser.new(limits, hooks)
--   local rest = p:feed(bytes)      -- nil: all consumed; a string: paused, feed it later
--
-- hooks.on_head(req)          the head is parsed, the body not yet read (100-continue)
-- hooks.on_request(req)       one whole request; return true to pause the parser
-- hooks.on_error(status, msg) the input is not a request we accept; the parser is dead
--
-- Bytes are pushed as they arrive.  Nothing is concatenated until a delimiter is
-- found: a pending line is a list of pieces plus the last few bytes seen, so the
-- search for "\r\n\r\n" only looks at new bytes and a trickled head stays linear.
local M = {}

local find, sub, lower, byte = string.find, string.sub, string.lower, string.byte
local concat = table.concat

local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"
local MAX_HEADERS = 100
local MAX_CHUNK_LINE = 4096

-- True when s is well-formed UTF-8 (no overlongs, surrogates or code points past
-- U+10FFFF).  ASCII runs are skipped with find, so only non-ASCII bytes are looped.
function M.valid_utf8(s)
  local i, n = find(s, "[\128-\255]"), #s
  while i do
    local c = byte(s, i)
    local len, lo, hi = 0, 0x80, 0xBF
    if c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then
      len = 3
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      len = 4
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    else
      return false
    end
    if i + len - 1 > n then return false end
    local b = byte(s, i + 1)
    if b < lo or b > hi then return false end
    for k = 2, len - 1 do
      b = byte(s, i + k)
      if b < 0x80 or b > 0xBF then return false end
    end
    i = find(s, "[\128-\255]", i + len)
  end
  return true
end
local valid_utf8 = M.valid_utf8

local P = {}
P.__index = P

function M.new(limits, hooks)
  local self = setmetatable({ limits = limits, hooks = hooks, seq = 0 }, P)
  self:reset()
  return self
end

-- Ready for the next request.
function P:reset()
  self.state = "head"
  self.started = false -- bytes of an unfinished request were received
  self.pieces, self.npieces, self.size, self.tail = {}, 0, 0, ""
  self.req = nil
end

-- Looks for `needle` after what is already pending.  Returns the pending text up to
-- the needle (needle removed) and the bytes after it; or nothing when `data` was all
-- taken in; or false when more than `limit` bytes would be pending.
function P:scan(data, needle, limit)
  local tail = self.tail
  local probe = tail == "" and data or tail .. data
  local p = find(probe, needle, 1, true)
  local nl = #needle
  if not p then
    self.size = self.size + #data
    if self.size > limit then return false end
    self.npieces = self.npieces + 1
    self.pieces[self.npieces] = data
    self.tail = sub(probe, -(nl - 1))
    return nil
  end
  local cut = p - #tail + nl - 1 -- index in data of the needle's last byte
  if self.size + cut > limit then return false end
  local line
  if self.npieces == 0 then
    line = sub(data, 1, cut - nl)
  else
    self.pieces[self.npieces + 1] = sub(data, 1, cut)
    line = sub(concat(self.pieces, "", 1, self.npieces + 1), 1, -nl - 1)
    self.pieces = {}
  end
  self.npieces, self.size, self.tail = 0, 0, ""
  return line, sub(data, cut + 1)
end

-- The input cannot be trusted past this point: no more requests from it.
function P:fail(status, msg)
  self.state = "dead"
  self.started = false
  self.pieces, self.body = nil, nil
  self.hooks.on_error(status, msg)
  return nil
end

-- Percent-decodes s; nil when an escape is malformed.
local function hexchar(h) return string.char(tonumber(h, 16)) end
function M.unescape(s, plus)
  if plus and find(s, "+", 1, true) then s = s:gsub("+", " ") end
  if not find(s, "%", 1, true) then return s end
  if find((s:gsub("%%%x%x", "")), "%", 1, true) then return nil end
  return (s:gsub("%%(%x%x)", hexchar))
end

local function parse_query(q)
  local out = {}
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = M.unescape(k, true), M.unescape(v, true)
    if not k or not v then return nil, "the query has a malformed percent-escape" end
    if not valid_utf8(k) or not valid_utf8(v) then return nil, "the query is not valid UTF-8" end
    if out[k] == nil then out[k] = v end
  end
  return out
end

-- Splits the request-target into path and query (origin-form, "*" or absolute-form).
local function parse_target(req, target)
  if find(target, "[%z\1-\32\127]") then return "the request target contains a control character" end
  local rel = target
  if sub(target, 1, 1) ~= "/" then
    if target == "*" and req.method == "OPTIONS" then
      req.path, req.query = "*", {}
      return nil
    end
    local scheme_rest = target:match("^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]+(.*)$")
    if not scheme_rest then return "the request target must start with /" end
    rel = scheme_rest == "" and "/" or scheme_rest
    if sub(rel, 1, 1) ~= "/" then rel = "/" .. rel end
  end
  local qpos = find(rel, "?", 1, true)
  local raw_path = qpos and sub(rel, 1, qpos - 1) or rel
  local path = M.unescape(raw_path)
  if not path then return "the path has a malformed percent-escape" end
  if find(path, "%z") then return "the path must not contain NUL" end
  if not valid_utf8(path) then return "the path is not valid UTF-8" end
  req.path = path
  local q, err = parse_query(qpos and sub(rel, qpos + 1) or "")
  if not q then return err end
  req.query = q
  return nil
end

-- Trims spaces and tabs around a header value without a backtracking pattern.
local function trim_ows(v)
  local s = find(v, "[^ \t]")
  if not s then return "" end
  local e = #v
  while true do
    local b = byte(v, e)
    if b ~= 32 and b ~= 9 then break end
    e = e - 1
  end
  return sub(v, s, e)
end

-- Adds one "name: value" line to req.headers; returns an error message or nil.
local function add_header(req, line, counts)
  local c = byte(line, 1)
  if c == 32 or c == 9 then return "obsolete line folding is not accepted" end
  local colon = find(line, ":", 1, true)
  if not colon then return "a header line has no colon" end
  local name = sub(line, 1, colon - 1)
  if not find(name, TOKEN) then return "a header name must be a token with no spaces before the colon" end
  name = lower(name)
  local value = trim_ows(sub(line, colon + 1))
  if find(value, "[%z\1-\8\10-\31\127]") then return "header " .. name .. " contains a control character" end
  if not valid_utf8(value) then return "header " .. name .. " is not valid UTF-8" end
  local old = req.headers[name]
  counts[name] = (counts[name] or 0) + 1
  req.headers[name] = old and (old .. ", " .. value) or value
  return nil
end

-- The body's framing from the headers: ("length", n), ("chunked"), or nil, status, msg.
local function framing(req, counts, limits)
  local h = req.headers
  local te, cl = h["transfer-encoding"], h["content-length"]
  if te then
    if cl then return nil, 400, "a request must not have both Content-Length and Transfer-Encoding" end
    local codings = lower(te)
    if codings == "chunked" then return "chunked" end
    if not codings:find("chunked%s*$") then
      return nil, 400, "Transfer-Encoding must end with chunked"
    end
    return nil, 501, "only the chunked transfer coding is supported, got " .. te
  end
  if not cl then return "length", 0 end
  local n
  for v in cl:gmatch("[^,]+") do
    v = trim_ows(v)
    if not find(v, "^%d+$") or #v > 15 then return nil, 400, "Content-Length must be a decimal number" end
    local x = tonumber(v)
    if n and n ~= x then return nil, 400, "conflicting Content-Length values" end
    n = x
  end
  if not n then return nil, 400, "Content-Length must be a decimal number" end
  if n > limits.max_body_bytes then
    return nil, 413, string.format("the body is %d bytes, over the limit of %d", n, limits.max_body_bytes)
  end
  return "length", n
end

-- Parses the request head (request line and headers, no final blank line).
-- Returns req or nil, status, message.
function M.parse_head(head, limits)
  local lines, pos, n = {}, 1, 0
  while true do
    local e = find(head, "\r\n", pos, true)
    n = n + 1
    if n > MAX_HEADERS + 1 then return nil, 431, "more than " .. MAX_HEADERS .. " header lines" end
    local line = sub(head, pos, (e or 0) - 1)
    if find(line, "[\r\n]") then return nil, 400, "bare CR or LF in the request head" end
    lines[n] = line
    if not e then break end
    pos = e + 2
  end
  local method, target, version = lines[1]:match("^(%S+) (%S+) HTTP/(%d%.%d)$")
  if not method then
    if lines[1]:match("^%S+ %S+ HTTP/%d+%.%d+$") then return nil, 505, "HTTP version not supported" end
    return nil, 400, "malformed request line (want METHOD TARGET HTTP/1.1)"
  end
  if version ~= "1.1" and version ~= "1.0" then return nil, 505, "HTTP/" .. version .. " is not supported" end
  if not find(method, TOKEN) then return nil, 400, "the method must be a token" end
  local req = { method = method, target = target, version = version, headers = {} }
  local err = parse_target(req, target)
  if err then return nil, 400, err end
  local counts = {}
  for i = 2, n do
    err = add_header(req, lines[i], counts)
    if err then return nil, 400, err end
  end
  if (counts.host or 0) > 1 then return nil, 400, "more than one Host header" end
  if version == "1.1" and not counts.host then return nil, 400, "HTTP/1.1 requests must have a Host header" end
  local kind, len_or_status, msg = framing(req, counts, limits)
  if not kind then return nil, len_or_status, msg end
  req.framing, req.content_length = kind, kind == "length" and len_or_status or nil
  local conn = lower(req.headers.connection or "")
  if version == "1.1" then
    req.keep_alive = not conn:find("%f[%w]close%f[^%w]")
  else
    req.keep_alive = conn:find("%f[%w]keep%-alive%f[^%w]") ~= nil
  end
  return req
end

-- The body is complete: hand the request over.
function P:complete(body)
  local req = self.req
  req.body = body
  req.framing, req.content_length = nil, nil
  self:reset()
  if self.hooks.on_request(req) then self.paused = true end
end

function P:body_add(s)
  self.nbody = self.nbody + 1
  self.body[self.nbody] = s
  self.body_size = self.body_size + #s
end

function P:body_take()
  local b = concat(self.body, "", 1, self.nbody)
  self.body, self.nbody, self.body_size = nil, 0, 0
  return b
end

-- Feeds received bytes.  Returns nil when all were taken in (or the parser died),
-- or the unparsed rest when on_request asked for a pause.
function P:feed(data)
  while data ~= "" do
    local st = self.state
    local rest
    if st == "head" then
      rest = self:feed_head(data)
    elseif st == "body" then
      rest = self:feed_body(data)
    elseif st == "chunk_data" then
      rest = self:feed_chunk_data(data)
    elseif st == "dead" then
      return nil
    else
      rest = self:feed_line(st, data)
    end
    if self.paused then
      self.paused = false
      return rest ~= "" and rest or nil
    end
    if rest == nil then return nil end
    data = rest
  end
  return nil
end

-- Each feed_* takes what it can and returns the bytes left over (nil: none left).
function P:feed_head(data)
  if self.size == 0 then
    -- Empty lines before a request line are ignored (RFC 9112 2.2).
    local s = find(data, "[^\r\n]")
    if not s then return nil end
    if s > 1 then data = sub(data, s) end
    if not self.started then
      self.started = true
      self.seq = self.seq + 1
    end
  end
  local max = self.limits.max_header_bytes
  local head, rest = self:scan(data, "\r\n\r\n", max)
  if head == false then
    return self:fail(431, string.format("the request head is over the limit of %d bytes", max))
  end
  if not head then return nil end
  local req, status, msg = M.parse_head(head, self.limits)
  if not req then return self:fail(status, msg) end
  self.req = req
  if self.hooks.on_head then
    status, msg = self.hooks.on_head(req)
    if status then return self:fail(status, msg) end
  end
  self.body, self.nbody, self.body_size = {}, 0, 0
  if req.framing == "chunked" then
    self.state = "chunk_size"
  elseif req.content_length > 0 then
    self.state, self.remaining = "body", req.content_length
  else
    self:complete("")
  end
  return rest
end

function P:feed_body(data)
  local n = self.remaining
  if #data < n then
    self:body_add(data)
    self.remaining = n - #data
    return nil
  end
  local body
  if self.nbody == 0 then
    body = sub(data, 1, n) -- the common case: the whole body came in one read
  else
    self:body_add(sub(data, 1, n))
    body = self:body_take()
  end
  self:complete(body)
  return sub(data, n + 1)
end

function P:feed_chunk_data(data)
  local n = self.remaining
  if #data <= n then
    self:body_add(data)
    self.remaining = n - #data
    if self.remaining == 0 then self.state = "chunk_crlf" end
    return nil
  end
  self:body_add(sub(data, 1, n))
  self.state = "chunk_crlf"
  return sub(data, n + 1)
end

-- The line-shaped states of a chunked body: size line, CRLF after data, trailers.
function P:feed_line(st, data)
  local limits = self.limits
  local limit = st == "chunk_size" and MAX_CHUNK_LINE or st == "chunk_crlf" and 2 or limits.max_header_bytes
  local line, rest = self:scan(data, "\r\n", limit)
  if line == false then
    if st == "trailer" then return self:fail(431, "the trailer section is over the header limit") end
    return self:fail(400, st == "chunk_size" and "a chunk size line is too long" or "chunk data must end with CRLF")
  end
  if not line then return nil end
  if st == "chunk_crlf" then
    if line ~= "" then return self:fail(400, "chunk data must end with CRLF") end
    self.state = "chunk_size"
  elseif st == "chunk_size" then
    local hex, ext = line:match("^(%x+)(.*)$")
    if not hex or #hex > 15 or (ext ~= "" and not find(ext, "^[ \t]*;")) then
      return self:fail(400, "malformed chunk size line")
    end
    local size = tonumber(hex, 16)
    if self.body_size + size > limits.max_body_bytes then
      return self:fail(413, string.format("the body is over the limit of %d bytes", limits.max_body_bytes))
    end
    if size == 0 then
      self.state, self.trailer_bytes = "trailer", 0
    else
      self.state, self.remaining = "chunk_data", size
    end
  else -- trailer fields are read and dropped: nothing here needs them
    if line == "" then
      self:complete(self:body_take())
    else
      self.trailer_bytes = self.trailer_bytes + #line + 2
      if self.trailer_bytes > limits.max_header_bytes then
        return self:fail(431, "the trailer section is over the header limit")
      end
    end
  end
  return rest
end

return M
