-- Calibrate a model: run samples of a dataset through the fp model with the
-- tm_quantizer observers and save the per-layer statistics (LMDeploy's `lite
-- calibrate`).  auto_awq.lua and kv_qparams.lua read them from --work-dir.
--
--   tmrun calibrate.lua --model HF_DIR [--calib-dataset brown|FILE.txt|FILE.jsonl]
--                       [--calib-samples 128] [--calib-seqlen 2048] [--work-dir ./quant_output]
--
-- A custom recipe (own data, own sample selection) is a Lua file like
-- examples/calibrate_recipe.lua, using lua/tmrun/quant/calibrate.lua.
local args = require("tmrun.util.args")
local calibrate = require("tmrun.quant.calibrate")
local default_model = require("tmrun.default_model")
local tokenizer = require("tmrun.tokenizer")
local model = require("tmrun.model")

local opts = args.parse(arg, {
  usage = "tmrun calibrate.lua --model HF_DIR [--calib-dataset brown] [--calib-samples 128] [--calib-seqlen 2048] [--work-dir DIR]",
  options = {
    model = { type = "string", help = "HF folder or workspace (default: the shipped models/tmrun-demo)" },
    ["calib-dataset"] = { type = "string", default = "brown", help = "brown (train split), or a .txt / .jsonl file" },
    ["calib-samples"] = { type = "int", default = 128, min = 1, max = 1048576, help = "samples" },
    ["calib-seqlen"] = { type = "int", default = 2048, min = 2, max = 1048576, help = "tokens a sample" },
    ["work-dir"] = { type = "string", default = "./quant_output", help = "where the statistics go" },
    seed = { type = "int", default = 1, min = 0, help = "sample selection seed" },
    threads = { type = "int", default = 0, min = 0, max = 512, help = "CPU threads (0: one per core)" },
  },
})

local function die(msg)
  io.stderr:write("error: ", msg, "\n")
  os.exit(1)
end

local dir, derr = default_model.resolve(opts.model)
if not dir then die(derr) end
local text, terr = calibrate.dataset_text(opts.calib_dataset)
if not text then die(terr) end
local cfg = model.is_workspace(dir) and model.read_workspace_config(dir) or nil
local tok = tokenizer.load(cfg and (dir .. "/tokenizer") or dir)
local ids = tok:encode(text, { add_special = false })
tok:close()
local seqlen = opts.calib_seqlen
local ok, samples = pcall(calibrate.samples, ids, opts.calib_samples, seqlen, opts.seed)
if not ok then die(samples) end
local path, tokens = calibrate.run({
  model = dir, samples = samples, work_dir = opts.work_dir, threads = opts.threads, progress = true,
  meta = { dataset = opts.calib_dataset },
})
if not path then die(tokens) end
io.stderr:write(string.format("%s: %d samples x %d tokens (%d tokens) from %s\n", path, #samples, seqlen, tokens,
  opts.calib_dataset))
