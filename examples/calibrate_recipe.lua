-- A custom calibration recipe: your own data and your own sample selection, then
-- the same observers and output as calibrate.lua (so auto_awq.lua and
-- kv_qparams.lua can read the work dir).
--
--   tmrun examples/calibrate_recipe.lua MODEL_DIR my_corpus.jsonl ./quant_output
--
-- Here: one sample per JSONL record (its "text"), records shorter than 64 tokens
-- skipped, each cut to 512 tokens, the 64 longest kept.
local calibrate = require("tmrun.quant.calibrate")
local cjson = require("cjson")
local fs = require("tmrun.util.fs")
local tokenizer = require("tmrun.tokenizer")

local model_dir, data, work_dir = arg[1], arg[2], arg[3] or "./quant_output"
if not model_dir or not data then
  io.stderr:write("usage: tmrun examples/calibrate_recipe.lua MODEL_DIR DATA.jsonl [WORK_DIR]\n")
  os.exit(2)
end

local tok = tokenizer.load(model_dir)
local samples = {}
for line in assert(fs.read(data)):gmatch("[^\n]+") do
  local row = cjson.decode(line)
  local ids = tok:encode(row.text, { add_special = false })
  if #ids >= 64 then
    local cut = {}
    for i = 1, math.min(#ids, 512) do cut[i] = ids[i] end
    samples[#samples + 1] = cut
  end
end
tok:close()
table.sort(samples, function(a, b) return #a > #b end)
for i = #samples, 65, -1 do samples[i] = nil end
if #samples == 0 then
  io.stderr:write("no record has 64 tokens or more\n")
  os.exit(1)
end

local path, tokens = calibrate.run({ model = model_dir, samples = samples, work_dir = work_dir, progress = true,
  meta = { dataset = data, recipe = "examples/calibrate_recipe.lua" } })
if not path then
  io.stderr:write("error: ", tokens, "\n")
  os.exit(1)
end
print(string.format("%s: %d samples, %d tokens", path, #samples, tokens))
