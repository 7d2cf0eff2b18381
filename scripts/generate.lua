-- Greedy generation from token ids; prints the new ids as a JSON array (last line).
local args = require("tmrun.util.args")
local model = require("tmrun.model")

local opts = args.parse(arg, {
  usage = "tmrun generate.lua --model DIR --prompt-ids 1,2,3 [--max-new-tokens 16] [--ignore-eos] [--backend cpu]",
  options = {
    model = { type = "string", required = true, help = "HF model folder or converted workspace" },
    ["prompt-ids"] = { type = "string", required = true, help = "comma-separated token ids" },
    ["max-new-tokens"] = { type = "int", default = 16, min = 0, max = 2 ^ 24 },
    ["ignore-eos"] = { type = "flag", help = "do not stop at the end-of-sequence id" },
    backend = { type = "string", default = "cpu", choices = { "cpu", "cuda" } },
    threads = { type = "int", default = 0, min = 0, max = 512, help = "CPU threads (0: one per core)" },
    ["session-len"] = { type = "int", min = 1, help = "override session_len" },
    ["quant-policy"] = { type = "int", min = 0, max = 8, help = "KV cache: 0 fp, 4 int8, 8 int8" },
    ["kv-cache-dtype"] = { type = "string", choices = { "fp16", "int8", "int4" }, help = "KV cache kind" },
  },
})

local ids = {}
for tok in opts.prompt_ids:gmatch("[^,%s]+") do
  local v = tonumber(tok)
  if not v or v ~= math.floor(v) then
    io.stderr:write("error: --prompt-ids must be integers, got ", tok, "\n")
    os.exit(2)
  end
  ids[#ids + 1] = v
end

local m, err = model.open(opts.model, {
  backend = opts.backend, threads = opts.threads,
  overrides = { session_len = opts.session_len, quant_policy = opts.quant_policy, kv_cache_dtype = opts.kv_cache_dtype },
})
if not m then
  io.stderr:write("error: ", err, "\n")
  os.exit(1)
end
io.stderr:write(string.format("model %s: %d layers, %.2fM parameters, vocab %d\n", opts.model, m.cfg.num_layer,
  m:param_count() / 1e6, m.vocab_size))

local t0 = os.clock()
local out, gerr = m:greedy(ids, opts.max_new_tokens, {
  ignore_eos = opts.ignore_eos,
  on_token = function(_, i)
    if i % 8 == 0 then io.stderr:write(string.format("\r%d/%d tokens", i, opts.max_new_tokens)) end
  end,
})
if not out then
  io.stderr:write("\nerror: ", gerr, "\n")
  os.exit(1)
end
local dt = os.clock() - t0
io.stderr:write(string.format("\r%d tokens in %.3f s CPU time\n", #out, dt))
io.stdout:write("[", table.concat(out, ","), "]\n")
m:close()
