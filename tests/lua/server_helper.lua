-- server_helper: runs `tmrun serve.lua` as a child process for the end-to-end specs.
local fs = require("tmrun.util.fs")
local helpers = require("helpers")
local uv = require("luv")

local M = {}

-- Starts a server on a free port; returns { port, url, pid, log, stop = fn }.
function M.start(model_dir, extra_args, tmp)
  assert(fs.mkdir_p(tmp))
  local log = tmp .. "/serve.log"
  local pidfile = tmp .. "/serve.pid"
  os.remove(log)
  local cmd = string.format("sh -c 'echo $$ > %s; exec %s serve.lua %s --server-name 127.0.0.1 --server-port 0 %s' > %s 2>&1 &",
    pidfile, helpers.tmrun(), model_dir, extra_args or "", log)
  os.execute(cmd)
  local port
  for _ = 1, 400 do
    local text = fs.read(log) or ""
    port = tonumber(text:match("listening on (%d+)"))
    if port then break end
    if text:find("error:", 1, true) then error("server failed to start:\n" .. text) end
    uv.sleep(25)
  end
  if not port then error("server did not start:\n" .. (fs.read(log) or "")) end
  local pid = tonumber((fs.read(pidfile) or ""):match("%d+"))
  local s = { port = port, url = "http://127.0.0.1:" .. port, pid = pid, log = log }
  function s.stop()
    if s.pid then os.execute("kill " .. s.pid .. " 2>/dev/null") end
    for _ = 1, 100 do
      local _, rc = helpers.run("kill -0 " .. s.pid .. " 2>/dev/null")
      if rc ~= 0 then break end
      uv.sleep(20)
    end
    s.pid = nil
  end
  function s.alive()
    local _, rc = helpers.run("kill -0 " .. s.pid .. " 2>/dev/null")
    return rc == 0
  end
  return s
end

-- curl with a JSON body; returns status, body.
function M.curl(url, path, body, extra)
  local tmpb = os.tmpname()
  local f = assert(io.open(tmpb, "wb"))
  f:write(body or "")
  f:close()
  local method = body and "-X POST --data-binary @" .. tmpb .. " -H 'Content-Type: application/json'" or ""
  local out = helpers.run(string.format("curl -s -m 60 -w '\\n%%{http_code}' %s %s '%s%s'", method, extra or "", url, path))
  os.remove(tmpb)
  local status = tonumber(out:match("(%d+)%s*$"))
  return status, out:gsub("\n?%d+%s*$", "")
end

return M
