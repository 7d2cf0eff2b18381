-- run_busted.lua: runs busted specs inside the tmrun host (so ffi.C has libtmrun).
-- Under pcall busted exits by itself with its failure count.
package.path = TMRUN_HOME .. "/tests/lua/?.lua;" .. package.path
local ok, err = pcall(require("busted.runner"), { standalone = false })
if not ok then
  if err ~= nil then io.stderr:write(tostring(err), "\n") end
  os.exit(1)
end
