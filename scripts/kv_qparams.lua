-- Static INT8 KV-cache parameters for a workspace, from calibration K/V statistics.
--
--   tmrun kv_qparams.lua --work-dir ./quant_output --turbomind-dir ./workspace/weights
--                        [--kv-sym false] [--num-tp 1] [--granularity head|layer]
--
-- Reads WORK_DIR/kv_stats.safetensors (written by calibrate.lua, or by
-- `tmrun kv_qparams.lua --observe MODEL` here), adds
-- layers.{L}.past_kv_scale.{R}.weight to every rank file of the workspace and sets
-- quant_policy = 4 in its config.ini.  docs/QUANTIZATION.md has the formulas.
local args = require("tmrun.util.args")
local fs = require("tmrun.util.fs")
local kv_qparams = require("tmrun.quant.kv_qparams")
local kv_stats = require("tmrun.quant.kv_stats")

local opts = args.parse(arg, {
  usage = "tmrun kv_qparams.lua --work-dir DIR --turbomind-dir WORKSPACE/weights [options]",
  options = {
    ["work-dir"] = { type = "string", default = "./quant_output", help = "holds kv_stats.safetensors" },
    ["turbomind-dir"] = { type = "string", default = "./workspace/weights", help = "the workspace's weights/" },
    ["kv-sym"] = { type = "string", default = "false", choices = { "true", "false" }, help = "absmax (symmetric)" },
    ["num-tp"] = { type = "int", default = 1, min = 1, max = 64, help = "tensor-parallel ranks of the workspace" },
    granularity = { type = "string", default = "head", choices = { "head", "layer" },
      help = "one parameter set per kv head ([4][kv_head_num]) or per layer ([4], TurboMind's)" },
    observe = { type = "string", help = "first write kv_stats.safetensors by running this model on Brown calibration text" },
    ["calib-samples"] = { type = "int", default = 16, min = 1, max = 100000, help = "--observe: windows" },
    ["calib-seqlen"] = { type = "int", default = 512, min = 2, max = 1048576, help = "--observe: tokens a window" },
  },
})

local function die(msg)
  io.stderr:write("error: ", msg, "\n")
  os.exit(1)
end

if opts.observe then
  local model = require("tmrun.model")
  local tokenizer = require("tmrun.tokenizer")
  local brown = dofile(TMRUN_HOME .. "/scripts/data/brown.lua")
  local texts, berr = brown.build(brown.default_corpus)
  if not texts then die(berr) end
  local m, merr = model.open(opts.observe, { overrides = { kv_cache_dtype = "fp16", quant_policy = 0 } })
  if not m then die(merr) end
  local tok = tokenizer.load(m.tokenizer_dir)
  local ids = tok:encode(texts.train, { add_special = false })
  tok:close()
  local st, oerr = kv_stats.observe(m, ids, { seqlen = opts.calib_seqlen, max_windows = opts.calib_samples })
  m:close()
  if not st then die(oerr) end
  fs.mkdir_p(opts.work_dir)
  local ok, serr = kv_stats.save(st, fs.join(opts.work_dir, kv_stats.FILE))
  if not ok then die(serr) end
  io.stderr:write(string.format("observed %d tokens -> %s\n", st.tokens, fs.join(opts.work_dir, kv_stats.FILE)))
end

local r, err = kv_qparams.run({ work_dir = opts.work_dir, turbomind_dir = opts.turbomind_dir,
  kv_sym = opts.kv_sym == "true", num_tp = opts.num_tp, granularity = opts.granularity })
if not r then die(err) end
io.stdout:write(string.format("wrote past_kv_scale for %d layers x %d rank(s) (%s, %s) into %s\n", r.layers, r.tp,
  opts.granularity, opts.kv_sym == "true" and "symmetric" or "asymmetric", opts.turbomind_dir))
