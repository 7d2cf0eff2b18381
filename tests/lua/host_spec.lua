-- The tmrun host: script lookup (current folder first, then scripts/), the list.
local fs = require("tmrun.util.fs")
local helpers = require("helpers")

describe("tmrun host", function()
  local tmp = helpers.tmpdir("host")

  it("lists every bundled script with a one-line summary when run alone", function()
    local out, rc = helpers.run(helpers.tmrun())
    assert.are.equal(0, rc)
    for _, name in ipairs(fs.list(TMRUN_HOME .. "/scripts")) do
      if name:match("%.lua$") then
        local line = out:match("\n%s+" .. name:gsub("%.", "%%.") .. "%s+([^\n]+)")
        assert.truthy(line and #line > 10, "no summary for " .. name)
      end
    end
  end)

  it("prefers NAME.lua in the current folder over the bundled one", function()
    fs.write(tmp .. "/generate.lua", 'print("local " .. arg[1] .. " " .. #arg)\n')
    local out, rc = helpers.run(string.format("cd %s && %s generate.lua x y", tmp, helpers.tmrun()))
    assert.are.equal(0, rc)
    assert.are.equal("local x 2\n", out)
  end)

  it("finds bundled scripts and the tmrun package from any folder", function()
    local out, rc = helpers.run(string.format("cd %s && %s generate.lua --help", tmp .. "/..", helpers.tmrun()))
    assert.are.equal(0, rc)
    assert.truthy(out:find("--prompt-ids", 1, true))
  end)

  it("fails clearly for an unknown script and for a script error", function()
    local out, rc = helpers.run(helpers.tmrun() .. " no_such_script.lua 2>&1")
    assert.are.equal(2, rc)
    assert.truthy(out:find("no script no_such_script.lua", 1, true))
    fs.write(tmp .. "/boom.lua", 'error("boom here")\n')
    out, rc = helpers.run(string.format("cd %s && %s boom.lua 2>&1", tmp, helpers.tmrun()))
    assert.are.equal(1, rc)
    assert.truthy(out:find("boom here", 1, true))
  end)

  it("rejects bad command lines with the usage", function()
    local out, rc = helpers.run(helpers.tmrun() .. " generate.lua --model x --prompt-ids 1 --max-new-tokens -3 2>&1")
    assert.are.equal(2, rc)
    assert.truthy(out:find("--max-new-tokens must be in", 1, true))
    out, rc = helpers.run(helpers.tmrun() .. " generate.lua --model /nonexistent --prompt-ids 1 2>&1")
    assert.are.equal(1, rc)
    assert.truthy(out:find("no model folder at /nonexistent", 1, true))
  end)
end)
