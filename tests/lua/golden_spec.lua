-- The forward pass against HuggingFace transformers' goldens (tests/data/goldens,
-- made by scripts/device/make_goldens.py): logits at every prompt position and 32
-- greedy tokens, from the HF folder (online conversion) and from a converted workspace.
local ffi = require("ffi")
local model = require("tmrun.model")
local convert = require("tmrun.convert")
local weights = require("tmrun.weights")
local fs = require("tmrun.util.fs")
local helpers = require("helpers")

local GOLDENS = TMRUN_HOME .. "/tests/data/goldens"
local KINDS = { "llama_mha", "llama3_gqa", "llama_dynamic", "llama_linear", "qwen2_tied", "internlm_bias",
  "mistral_sharded" }
local REL_TOL = 1e-4
-- prompt + greedy tokens; llama_dynamic runs past its 16-token window on purpose
local OPEN = { overrides = { session_len = 64 } }

local function golden(kind)
  local g = weights.new()
  assert(g:load(GOLDENS .. "/" .. kind .. "/golden.safetensors"))
  local prompt = g:to_table("prompt")
  local logits, shape = g:to_table("logits")
  local greedy = g:to_table("greedy")
  local gaps = g:to_table("greedy_gap")
  g:close()
  return { prompt = prompt, logits = logits, rows = shape[1], vocab = shape[2], greedy = greedy, gaps = gaps }
end

-- max |got - ref| / max |ref| over all positions.
local function rel_error(got, ref)
  local maxd, maxr = 0, 0
  for i = 1, #ref do
    local d = math.abs(got[i - 1] - ref[i])
    if d > maxd then maxd = d end
    if math.abs(ref[i]) > maxr then maxr = math.abs(ref[i]) end
  end
  return maxd / maxr
end

local function check_model(m, g)
  local ctx = m:context()
  local logits = assert(ctx:eval(g.prompt, true))
  local err = rel_error(logits, g.logits)
  ctx:close()
  assert.is_true(err < REL_TOL, string.format("logits rel error %.3g >= %g", err, REL_TOL))
  local out = assert(m:greedy(g.prompt, #g.greedy, { ignore_eos = true }))
  for i = 1, #g.greedy do
    assert.are.equal(g.greedy[i], out[i], string.format("greedy token %d (top-2 gap in HF %.4g)", i, g.gaps[i]))
  end
  return logits
end

describe("goldens from transformers", function()
  local tmp = helpers.tmpdir("golden")

  for _, kind in ipairs(KINDS) do
    describe(kind, function()
      local g = golden(kind)

      it("matches logits and greedy tokens from the HF folder", function()
        local m = assert(model.open(GOLDENS .. "/" .. kind, OPEN))
        check_model(m, g)
        m:close()
      end)

      it("matches from a converted workspace, bit for bit with online conversion", function()
        local h = assert(convert.open_hf(GOLDENS .. "/" .. kind))
        local dst = tmp .. "/" .. kind
        assert(convert.write_workspace(h, kind, { dst_path = dst }))
        h.src:close()
        assert.is_true(fs.is_file(dst .. "/config.ini"))
        assert.is_true(fs.is_file(dst .. "/weights/rank0.safetensors"))
        local ws = assert(model.open(dst, OPEN))
        local online = assert(model.open(GOLDENS .. "/" .. kind, OPEN))
        local a = ws:context():eval(g.prompt, true)
        local b = online:context():eval(g.prompt, true)
        for i = 0, g.rows * g.vocab - 1 do
          if a[i] ~= b[i] then error(string.format("workspace and online logits differ at %d: %g vs %g", i, a[i], b[i])) end
        end
        check_model(ws, g)
        ws:close()
        online:close()
      end)
    end)
  end

  it("runs generate.lua with the stable interface", function()
    local g = golden("llama3_gqa")
    local ids = {}
    for i = 1, #g.prompt do ids[i] = g.prompt[i] end
    local cmd = string.format("%s generate.lua --model %s/llama3_gqa --prompt-ids %s --max-new-tokens 16 --ignore-eos --session-len 64 2>/dev/null",
      helpers.tmrun(), GOLDENS, table.concat(ids, ","))
    local out = helpers.run(cmd)
    local last = out:match("([^\n]*)\n?$")
    local want = {}
    for i = 1, 16 do want[i] = g.greedy[i] end
    assert.are.equal("[" .. table.concat(want, ",") .. "]", last)
  end)

  it("reads InternLM v1 configs (architecture InternLMForCausalLM, bias = true)", function()
    local dir = tmp .. "/internlm_v1"
    fs.mkdir_p(dir)
    local cfg = assert(convert.read_json(GOLDENS .. "/internlm_bias/config.json"))
    cfg.architectures = { "InternLMForCausalLM" }
    cfg.attention_bias = nil
    cfg.bias = true
    cfg.model_type = "internlm"
    fs.write(dir .. "/config.json", require("cjson").encode(cfg))
    fs.copy(GOLDENS .. "/internlm_bias/model.safetensors", dir .. "/model.safetensors")
    local m = assert(model.open(dir, OPEN))
    check_model(m, golden("internlm_bias"))
    m:close()
  end)
end)

describe("stories260K (a trained model, from ../shared/data)", function()
  local dir = TMRUN_HOME .. "/../shared/data/stories260K"
  local have = fs.is_file(dir .. "/model.safetensors")

  it("matches transformers' greedy tokens and logits", function()
    if not have then
      pending("../shared/data/stories260K is not beside this checkout")
      return
    end
    local g = weights.new()
    assert(g:load(GOLDENS .. "/stories260k.safetensors"))
    local greedy = g:to_table("greedy")
    local ref = g:to_table("logits")
    g:close()
    local m = assert(model.open(dir))
    local out = assert(m:greedy({ 1 }, #greedy, { ignore_eos = true }))
    assert.are.same(greedy, out)
    local seq = { 1 }
    for i = 1, #greedy do seq[#seq + 1] = greedy[i] end
    local logits = assert(m:context():eval(seq, true))
    local err = rel_error(logits, ref)
    assert.is_true(err < REL_TOL, string.format("rel error %.3g", err))
    m:close()
  end)
end)
