-- helpers: what several specs share (temporary folders, the tmrun binary, commands).
local fs = require("tmrun.util.fs")

local M = {}

-- A fresh folder for one spec under $TMRUN_TEST_TMP (or /tmp), emptied first.
function M.tmpdir(name)
  local base = os.getenv("TMRUN_TEST_TMP") or "/tmp/tmrun-test"
  local dir = string.format("%s/%s-%d", base, name, math.random(1, 1e9))
  fs.rm_rf(dir)
  assert(fs.mkdir_p(dir))
  return dir
end

-- The tmrun host binary of this build.
function M.tmrun()
  local build = os.getenv("TMRUN_BUILD_DIR") or (TMRUN_HOME .. "/build")
  return build .. "/tmrun"
end

-- Runs a shell command; returns its stdout and exit code (true/false like os.execute).
function M.run(cmd)
  local p = assert(io.popen(cmd .. "; echo \"__rc=$?\"", "r"))
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  out = out:gsub("__rc=%d+%s*$", "")
  return out, rc
end

return M
