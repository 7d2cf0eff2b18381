-- KV cache quantization end to end: config mapping, perplexity through the INT8 /
-- INT4 cache on a slice of the demo model, and the kv_stats -> kv_qparams workflow
-- on a converted workspace.  Kernel-level tolerances are in
-- kernels/attention/test_attention_kvq.c.
local ffi = require("ffi")
local fs = require("tmrun.util.fs")
local helpers = require("helpers")
local config = require("tmrun.config")
local eval = require("tmrun.eval")
local model = require("tmrun.model")
local tokenizer = require("tmrun.tokenizer")
local convert = require("tmrun.convert")
local weights = require("tmrun.weights")
local kv_stats = require("tmrun.quant.kv_stats")
local kv_qparams = require("tmrun.quant.kv_qparams")
local default_model = require("tmrun.default_model")

local DEMO = TMRUN_HOME .. "/models/tmrun-demo"
local SLICE = { seqlen = 256, max_windows = 2, chunk = 32 }

local function rel(a, b) return math.abs(a - b) / b end

describe("KV cache config", function()
  it("maps quant_policy and kv_cache_dtype", function()
    assert.are.equal("fp16", config.kv_dtype({ quant_policy = 0, kv_cache_dtype = "" }))
    assert.are.equal("int8", config.kv_dtype({ quant_policy = 4, kv_cache_dtype = "" })) -- the seed's numbering
    assert.are.equal("int8", config.kv_dtype({ quant_policy = 8, kv_cache_dtype = "" })) -- newer LMDeploy's int8
    assert.are.equal("int4", config.kv_dtype({ quant_policy = 4, kv_cache_dtype = "int4" })) -- the key wins
    assert.are.equal("int8", config.kv_dtype({ quant_policy = 0, kv_cache_dtype = "int8" }))
  end)
end)

describe("perplexity through the quantized KV cache", function()
  if not default_model.exists() then
    pending("the demo model is absent")
    return
  end
  local ids
  local function ppl(overrides, opts)
    local m = assert(model.open(DEMO, { overrides = overrides }))
    if not ids then
      local tok = tokenizer.load(m.tokenizer_dir)
      ids = tok:encode(assert(eval.dataset_text("brown-eval")), { add_special = false })
      tok:close()
    end
    local r = assert(eval.perplexity(m, ids, opts or SLICE))
    m:close()
    return r.ppl
  end

  local fp, fp_whole, int8, int4
  it("runs fp, int8 and int4 caches (online params)", function()
    fp = ppl({})
    fp_whole = ppl({}, { seqlen = 256, max_windows = 2 })
    int8 = ppl({ kv_cache_dtype = "int8" })
    int4 = ppl({ kv_cache_dtype = "int4" })
    assert.is_true(fp > 1 and int8 > 1 and int4 > 1)
  end)

  it("chunking is exact for the float cache", function()
    assert.is_true(rel(fp_whole, fp) < 1e-5, fp_whole .. " vs " .. fp)
  end)

  it("int8 stays within 1% of fp, int4 is worse than int8, both differ from fp", function()
    assert.is_true(rel(int8, fp) < 0.01, int8 .. " vs " .. fp)
    assert.is_true(int8 ~= fp and int4 ~= fp)
    assert.is_true(rel(int4, fp) > rel(int8, fp), int4 .. " / " .. int8 .. " vs " .. fp)
    assert.is_true(rel(int4, fp) < 0.05, int4 .. " vs " .. fp)
  end)

  it("quant_policy = 4 is the int8 cache", function()
    assert.are.equal(int8, ppl({ quant_policy = 4 }))
  end)

  describe("kv_qparams workflow", function()
    local tmp = helpers.tmpdir("kvq")
    local ws = tmp .. "/ws"
    it("observes K/V, writes past_kv_scale and sets quant_policy", function()
      local h = assert(convert.open_hf(DEMO))
      assert(convert.write_workspace(h, "llama2", { dst_path = ws }))
      local m = assert(model.open(ws))
      local st = assert(kv_stats.observe(m, ids, { seqlen = 128, max_windows = 4 }))
      m:close()
      assert.are.equal(512, st.tokens)
      local L = st.layers[0]
      assert.is_true(L.k_min[0] <= L.k_max[0] and L.k_absmax[0] >= math.abs(L.k_min[0]))
      assert(kv_stats.save(st, tmp .. "/kv_stats.safetensors"))
      local r = assert(kv_qparams.run({ work_dir = tmp, turbomind_dir = ws .. "/weights", num_tp = 1 }))
      assert.are.equal(st.num_layer, r.layers)
      local w = weights.new()
      assert(w:load(ws .. "/weights/rank0.safetensors"))
      local t = assert(w:find("layers.0.past_kv_scale.0.weight"))
      assert.are.same({ 4, st.kv_head_num }, t.shape)
      local p = ffi.cast("const float *", t.data)
      -- asymmetric: scale = (max - min) / 255 over head 0's channels
      local mn, mx = math.huge, -math.huge
      for i = 0, st.head_dim - 1 do mn = math.min(mn, L.k_min[i]) mx = math.max(mx, L.k_max[i]) end
      assert.is_true(math.abs(p[0] - (mx - mn) / 255) < 1e-6 and math.abs(p[st.kv_head_num] - (mx + mn) / 2) < 1e-5)
      assert.is_not_nil(w:find("tok_embeddings.weight"))
      w:close()
      assert.truthy(fs.read(ws .. "/config.ini"):find("\nquant_policy = 4", 1, true))
    end)

    it("evaluates with static params (int8 within 1%, int4 runs)", function()
      local m = assert(model.open(ws, { overrides = { kv_qparams = "static" } }))
      local s8 = assert(eval.perplexity(m, ids, SLICE)).ppl
      m:close()
      assert.is_true(rel(s8, fp) < 0.01 and s8 ~= int8, s8 .. " vs " .. fp)
      m = assert(model.open(ws, { overrides = { kv_qparams = "static", kv_cache_dtype = "int4" } }))
      local s4 = assert(eval.perplexity(m, ids, SLICE)).ppl
      m:close()
      assert.is_true(rel(s4, fp) < 0.1 and s4 ~= s8, s4 .. " vs " .. fp)
    end)

    it("refuses static params that are not there", function()
      local m, err = model.open(DEMO, { overrides = { kv_cache_dtype = "int8", kv_qparams = "static" } })
      assert.is_nil(m)
      assert.truthy(err:find("past_kv_scale", 1, true), err)
    end)

    it("keeps K/V reads to float caches", function()
      local m = assert(model.open(DEMO, { overrides = { kv_cache_dtype = "int8" } }))
      local _, err = kv_stats.observe(m, { 1, 2, 3, 4 }, { seqlen = 4 })
      m:close()
      assert.truthy(err:find("float KV cache", 1, true), err)
    end)
  end)
end)
