-- Quantize an HF model's linears to INT4 (AWQ W4A16, or plain round-to-nearest) and
-- write an AutoAWQ-format checkpoint into --work-dir (LMDeploy's `lite auto_awq`).
--
--   tmrun auto_awq.lua --model HF_DIR [--w-bits 4] [--w-group-size 128] [--work-dir ./quant_output]
--                      [--method awq|rtn]
--
-- AWQ needs calibrate.lua's statistics in --work-dir; --method rtn needs none.
-- Then: tmrun convert.lua NAME ./quant_output --model-format awq --group-size 128.
local args = require("tmrun.util.args")
local awq = require("tmrun.quant.awq")
local default_model = require("tmrun.default_model")

local opts = args.parse(arg, {
  usage = "tmrun auto_awq.lua --model HF_DIR [--w-bits 4] [--w-group-size 128] [--work-dir DIR] [--method awq|rtn]",
  options = {
    model = { type = "string", help = "HF folder (default: the shipped models/tmrun-demo)" },
    ["w-bits"] = { type = "int", default = 4, min = 4, max = 4, help = "weight bits (4 only)" },
    ["w-group-size"] = { type = "int", default = 128, help = "group size: 32, 64 or 128" },
    ["work-dir"] = { type = "string", default = "./quant_output", help = "calibration in, checkpoint out" },
    method = { type = "string", default = "awq", choices = { "awq", "rtn" }, help = "AWQ search or plain RTN" },
    threads = { type = "int", default = 0, min = 0, max = 512, help = "CPU threads (0: one per core)" },
  },
})

local function die(msg)
  io.stderr:write("error: ", msg, "\n")
  os.exit(1)
end

local g = opts.w_group_size
if g ~= 32 and g ~= 64 and g ~= 128 then die("--w-group-size must be 32, 64 or 128, got " .. g) end
local dir, derr = default_model.resolve(opts.model)
if not dir then die(derr) end
local t0 = os.time()
local report, err = awq.run({
  model = dir, work_dir = opts.work_dir, group = g, method = opts.method, threads = opts.threads,
  log = function(line) io.stderr:write(line, "\n") end,
})
if not report then die(err) end
io.stderr:write(string.format("%s w4g%d checkpoint written to %s (%ds)\n", opts.method, g, opts.work_dir,
  os.time() - t0))
