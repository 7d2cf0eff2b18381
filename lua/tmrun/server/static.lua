-- tmrun.server.static: files from one folder under one URL prefix, never outside it.
--
--   local serve = static.handler("/srv/web/chat", "/chat")
--   if serve(req, res) then return end      -- true: this request was answered
--
-- GET and HEAD only (anything else returns false).  The prefix itself and every
-- folder answer with their index.html.  Paths under the prefix that are not
-- servable files get a JSON 404; unsafe paths a JSON 400.  The checks, in order:
--   1. req.path is already percent-decoded (so %2e%2e and %2f are seen as . and /);
--   2. no control characters (NUL included) and no backslashes: 400;
--   3. no "." or ".." segments: 400; no hidden (dot) names: 404;
--   4. the real path (symlinks resolved) must lie inside the real root: else 404.
-- All file-system work uses luv's callbacks, so the loop never blocks on a disk.
local uv = require("luv")
local http_response = require("tmrun.server.http_response")

local M = {}

local find, sub, format = string.find, string.sub, string.format

M.CONTENT_TYPES = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8",
  css = "text/css; charset=utf-8", js = "text/javascript; charset=utf-8",
  mjs = "text/javascript; charset=utf-8", json = "application/json", map = "application/json",
  txt = "text/plain; charset=utf-8", md = "text/markdown; charset=utf-8",
  svg = "image/svg+xml", png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg",
  gif = "image/gif", webp = "image/webp", ico = "image/x-icon", wasm = "application/wasm",
  woff = "font/woff", woff2 = "font/woff2", ttf = "font/ttf", otf = "font/otf",
  yaml = "application/yaml", yml = "application/yaml", xml = "application/xml",
}
local DEFAULT_TYPE = "application/octet-stream"

-- Files up to this size are read in one go; larger ones are streamed in pieces.
local WHOLE_FILE_MAX = 4 * 1024 * 1024
local PIECE = 256 * 1024

local function send_error(res, status, msg)
  res:send(status, { ["content-type"] = "application/json" }, http_response.error_body(msg))
end

-- Checks the part of the decoded path under the prefix.  Returns nil when it is
-- safe, else the status and the rule it breaks.
local function check_rel(rel)
  if find(rel, "[%z\1-\31\127]") then return 400, "the path must not contain control characters" end
  if find(rel, "\\", 1, true) then return 400, "the path must not contain backslashes" end
  for seg in rel:gmatch("[^/]+") do
    if seg == ".." or seg == "." then return 400, "the path must not contain . or .. segments" end
    if sub(seg, 1, 1) == "." then return 404, "not found" end
  end
  return nil
end

local function inside(real, root)
  return real == root or sub(real, 1, #root + 1) == (root == "/" and "/" or root .. "/")
end

local function content_type(path)
  local ext = path:match("%.([%w]+)$")
  return ext and M.CONTENT_TYPES[ext:lower()] or DEFAULT_TYPE
end

-- Streams a large file: one read in flight, each piece written as it comes.
local function stream_file(fd, size, res)
  local offset = 0
  local function step()
    if res.closed or offset >= size then
      uv.fs_close(fd, function() end)
      if not res.closed then res:finish() end
      return
    end
    uv.fs_read(fd, math.min(PIECE, size - offset), offset, function(err, data)
      if err or not data or data == "" then
        uv.fs_close(fd, function() end)
        if not res.closed then res.conn:destroy() end -- the length was promised: cut the stream
        return
      end
      offset = offset + #data
      res:write(data)
      step()
    end)
  end
  step()
end

local function send_file(real, st, req, res)
  local etag = format('"%x-%x-%x"', st.size, st.mtime.sec, st.mtime.nsec or 0)
  local headers = {
    ["content-type"] = content_type(real), ["etag"] = etag, ["cache-control"] = "no-cache",
    ["last-modified"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", st.mtime.sec),
    ["x-content-type-options"] = "nosniff",
  }
  local inm = req.headers["if-none-match"]
  if inm and (inm == "*" or find(inm, etag, 1, true)) then
    return res:send(304, { etag = etag, ["cache-control"] = "no-cache" }, "")
  end
  if req.method == "HEAD" then
    headers["content-length"] = st.size
    return res:send(200, headers, "")
  end
  uv.fs_open(real, "r", 0, function(oerr, fd)
    if res.closed then
      if fd then uv.fs_close(fd, function() end) end
      return
    end
    if not fd then return send_error(res, 404, "not found: " .. req.path .. " (" .. tostring(oerr) .. ")") end
    if st.size > WHOLE_FILE_MAX then
      headers["content-length"] = st.size
      res:start(200, headers)
      return stream_file(fd, st.size, res)
    end
    uv.fs_read(fd, st.size, 0, function(rerr, data)
      uv.fs_close(fd, function() end)
      if res.closed then return end
      if not data then return send_error(res, 500, "cannot read " .. req.path .. ": " .. tostring(rerr)) end
      res:send(200, headers, data)
    end)
  end)
end

-- Resolves path, checks it stays inside root, and serves it (a folder: its index.html).
local function serve(root, path, req, res, is_index)
  uv.fs_realpath(path, function(err, real)
    if res.closed then return end
    if not real or not inside(real, root) then return send_error(res, 404, "not found: " .. req.path) end
    uv.fs_stat(real, function(serr, st)
      if res.closed then return end
      if not st then return send_error(res, 404, "not found: " .. req.path) end
      if st.type == "directory" and not is_index then return serve(root, real .. "/index.html", req, res, true) end
      if st.type ~= "file" then return send_error(res, 404, "not found: " .. req.path) end
      send_file(real, st, req, res)
    end)
  end)
end

-- A handler for the files under root_dir, mounted at url_prefix ("/chat", or "/").
-- root_dir should exist when the handler is made; if it does not, every path under
-- the prefix is a 404.
function M.handler(root_dir, url_prefix)
  if type(root_dir) ~= "string" or root_dir == "" then error("static.handler needs a root folder", 2) end
  if type(url_prefix) ~= "string" or sub(url_prefix, 1, 1) ~= "/" then
    error("url_prefix must start with /, got " .. tostring(url_prefix), 2)
  end
  local prefix = url_prefix == "/" and "/" or url_prefix:gsub("/+$", "")
  local root = uv.fs_realpath(root_dir)
  return function(req, res)
    if req.method ~= "GET" and req.method ~= "HEAD" then return false end
    local path, rel = req.path, nil
    if prefix == "/" then
      rel = sub(path, 2)
    elseif path == prefix then
      rel = ""
    elseif sub(path, 1, #prefix + 1) == prefix .. "/" then
      rel = sub(path, #prefix + 2)
    else
      return false
    end
    local status, why = check_rel(rel)
    if status then
      send_error(res, status, status == 404 and "not found: " .. path or why)
    elseif not root then
      send_error(res, 404, "not found: " .. path)
    else
      serve(root, rel == "" and root or root .. "/" .. rel, req, res, false)
    end
    return true
  end
end

return M
