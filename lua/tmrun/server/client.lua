-- tmrun.server.client: a small HTTP/1.1 client on luv for tmrun's own tools
-- (api_client.lua, bench_serve.lua).  One request per connection; the response body
-- arrives through on_data as it streams (chunked or Content-Length or to close).
--
--   client.request({ host =, port =, method = "POST", path = "/x", headers = {}, body = "...",
--                    on_data = function(chunk) end, on_done = function(status, headers, err) end })
-- Runs on the current luv loop; client.fetch(...) runs the loop until done (blocking).
local uv = require("luv")

local M = {}

-- "http://host:port/base" -> host, port, base
function M.parse_url(url)
  local host, port, base = url:match("^http://([^:/]+):?(%d*)(.*)$")
  if not host then return nil, "only http://host:port URLs are supported, got " .. tostring(url) end
  return host, tonumber(port) or 80, base
end

local function dechunker(on_data)
  local buf, need, done = "", nil, false
  return function(data)
    buf = buf .. data
    while not done do
      if need == nil then
        local line_end = buf:find("\r\n", 1, true)
        if not line_end then return end
        need = tonumber(buf:sub(1, line_end - 1):match("^%x+"), 16)
        if not need then return "bad chunk size" end
        buf = buf:sub(line_end + 2)
        if need == 0 then
          done = true
          return nil, true
        end
      end
      if #buf < need + 2 then return end
      on_data(buf:sub(1, need))
      buf = buf:sub(need + 3)
      need = nil
    end
    return nil, done
  end
end

function M.request(o)
  local tcp = uv.new_tcp()
  local head, status, headers, body_fn = "", nil, nil, nil
  local finished = false
  local function finish(err)
    if finished then return end
    finished = true
    if not tcp:is_closing() then tcp:close() end
    o.on_done(status, headers, err)
  end
  local function on_body(data)
    local err, done = body_fn(data)
    if err then finish(err) elseif done then finish(nil) end
  end
  uv.getaddrinfo(o.host, tostring(o.port), { socktype = "stream" }, function(gerr, res)
    if gerr or not res or not res[1] then return finish("cannot resolve " .. o.host .. ": " .. tostring(gerr)) end
    tcp:connect(res[1].addr, o.port, function(cerr)
      if cerr then return finish("cannot connect to " .. o.host .. ":" .. o.port .. ": " .. cerr) end
      local lines = { string.format("%s %s HTTP/1.1", o.method or "GET", o.path or "/"),
        "Host: " .. o.host .. ":" .. o.port, "Connection: close" }
      for k, v in pairs(o.headers or {}) do lines[#lines + 1] = k .. ": " .. v end
      if o.body then lines[#lines + 1] = "Content-Length: " .. #o.body end
      tcp:write(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (o.body or ""))
      tcp:read_start(function(rerr, data)
        if rerr then return finish(rerr) end
        if not data then
          if status and headers and not headers["transfer-encoding"] and not headers["content-length"] then
            return finish(nil)
          end
          return finish(status and (body_fn and nil) or "connection closed before a response")
        end
        if body_fn then return on_body(data) end
        head = head .. data
        local e = head:find("\r\n\r\n", 1, true)
        if not e then return end
        status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
        headers = {}
        for k, v in head:sub(1, e):gmatch("\n([^:\r\n]+):%s*([^\r\n]*)") do headers[k:lower()] = v end
        local rest = head:sub(e + 4)
        if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
          body_fn = dechunker(o.on_data)
        else
          local left = tonumber(headers["content-length"] or "")
          body_fn = function(d)
            if left then
              d = d:sub(1, left)
              left = left - #d
            end
            if #d > 0 then o.on_data(d) end
            if left and left <= 0 then return nil, true end
          end
        end
        if #rest > 0 or tonumber(headers["content-length"] or "") == 0 then on_body(rest) end
      end)
    end)
  end)
end

-- Blocking: runs the loop until the response is complete; returns status, body, headers or nil, err.
function M.fetch(o)
  local parts, result = {}, nil
  o.on_data = o.on_data or function(d) parts[#parts + 1] = d end
  o.on_done = function(status, headers, err) result = { status, headers, err } end
  M.request(o)
  while not result do uv.run("once") end
  if result[3] then return nil, result[3] end
  return result[1], table.concat(parts), result[2]
end

return M
