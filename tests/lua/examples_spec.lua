-- The examples a user copies must run as shipped.
local helpers = require("helpers")
local default = require("tmrun.default_model")

describe("examples", function()
  local have = default.exists()

  local function run_example(name)
    if not have then
      pending("models/tmrun-demo is missing")
      return
    end
    local out, rc = helpers.run(string.format("cd %s && %s examples/%s %s 2>&1", TMRUN_HOME, helpers.tmrun(), name,
      default.path()))
    assert.are.equal(0, rc, out)
    return out
  end

  it("custom_sampling.lua prints one line per policy", function()
    local out = run_example("custom_sampling.lua")
    if not out then return end
    for _, name in ipairs({ "greedy", "calm", "adaptive" }) do
      assert.truthy(out:find("\n" .. name .. " ", 1, true) or out:find("^" .. name .. " "), name .. " in\n" .. out)
    end
  end)

  it("embed.lua batches, streams and chats", function()
    local out = run_example("embed.lua")
    if not out then return end
    assert.truthy(out:find("^1\t") or out:find("\n1\t"), out)
    assert.truthy(out:find("\n3\t", 1, true), out)
  end)
end)
