-- The Lua cdef must be the header's ffi block, declaration for declaration.
local tmffi = require("tmrun.ffi")

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- Comments dropped, whitespace collapsed, no space next to punctuation.
local function normalize(src)
  src = src:gsub("/%*.-%*/", " "):gsub("//[^\n]*", " ")
  src = src:gsub("%s+", " ")
  src = src:gsub(" ?([%(%)%[%]{},;%*=]) ?", "%1")
  return (src:gsub("^ ", ""):gsub(" $", ""))
end

local function statements(src)
  local out = {}
  for stmt in normalize(src):gmatch("[^;]+;") do out[#out + 1] = stmt end
  return out
end

describe("lua/tmrun/ffi.lua", function()
  local header = read(TMRUN_HOME .. "/runtime/include/tmrun.h")
  local block = header:match("/%* tmrun%-ffi%-begin %*/(.-)/%* tmrun%-ffi%-end %*/")

  it("finds the ffi block in tmrun.h", function()
    assert.is_not_nil(block)
    assert.is_true(#statements(block) > 20)
  end)

  it("declares exactly the header's block, in order", function()
    local want, got = statements(block), statements(tmffi.cdef)
    for i = 1, math.max(#want, #got) do
      assert.are.equal(want[i], got[i], "declaration " .. i .. " differs")
    end
  end)

  it("resolves every declared function in the library", function()
    for name in normalize(block):gmatch("([%w_]+)%(") do
      if name:match("^tm_") then
        assert.is_true(pcall(function() return tmffi.C[name] end), "missing symbol " .. name)
      end
    end
  end)
end)
