-- Nothing may rot: every test file in the tree is registered with ctest, and no
-- file that looks like a test hides under a name the globs miss.
local fs = require("tmrun.util.fs")
local helpers = require("helpers")

local function ctest_names()
  local build = os.getenv("TMRUN_BUILD_DIR") or (TMRUN_HOME .. "/build")
  local out = helpers.run("cd " .. build .. " && ctest -N")
  local names = {}
  for name in out:gmatch("Test%s+#%d+: (%S+)") do names[name] = true end
  return names
end

describe("test registration", function()
  local names = ctest_names()

  local function each(dir, fn)
    for _, f in ipairs(fs.list(dir) or {}) do fn(f) end
  end

  it("registers every C test and Lua spec", function()
    each(TMRUN_HOME .. "/tests/c", function(f)
      local n = f:match("^(test_[%w_]+)%.c$")
      if n then assert.is_true(names["c." .. n], "tests/c/" .. f .. " is not registered") end
      assert.is_falsy(f:match("_test%.c$"), "tests/c/" .. f .. ": name C tests test_*.c")
    end)
    each(TMRUN_HOME .. "/kernels", function(op)
      if fs.is_dir(TMRUN_HOME .. "/kernels/" .. op) then
        each(TMRUN_HOME .. "/kernels/" .. op, function(f)
          local n = f:match("^(test_[%w_]+)%.c$")
          if n then assert.is_true(names["c." .. n], "kernels/" .. op .. "/" .. f .. " is not registered") end
        end)
      end
    end)
    each(TMRUN_HOME .. "/tests/lua", function(f)
      local n = f:match("^([%w_]+_spec)%.lua$")
      if n then assert.is_true(names["lua." .. n], "tests/lua/" .. f .. " is not registered") end
      assert.is_falsy(f:match("^test_.*%.lua$") or f:match("_test%.lua$"), "tests/lua/" .. f .. ": name specs *_spec.lua")
    end)
  end)

  it("gives every CPU kernel folder a test", function()
    each(TMRUN_HOME .. "/kernels", function(op)
      local dir = TMRUN_HOME .. "/kernels/" .. op
      if fs.is_dir(dir) and fs.is_file(dir .. "/" .. op .. "_cpu.c") then
        assert.is_true(fs.is_file(dir .. "/test_" .. op .. ".c"), "kernels/" .. op .. " has no test_" .. op .. ".c")
      end
    end)
  end)
end)
