-- Greedy agreement of a quantized model with the fp one on N prompts from the Brown eval split.
local args = require("tmrun.util.args")
local engine_mod = require("tmrun.engine")
local eval = require("tmrun.eval")
local json = require("tmrun.util.json")

local opts = args.parse(arg, {
  usage = "tmrun quant_agreement.lua --ref DIR --model DIR [--prompts 100] [--tokens 16] [overrides]",
  options = {
    ref = { type = "string", required = true, help = "the fp model (HF folder or workspace)" },
    model = { type = "string", required = true, help = "the quantized model" },
    prompts = { type = "int", default = 100, min = 1, max = 10000 },
    tokens = { type = "int", default = 16, min = 1, max = 4096, help = "greedy tokens per prompt" },
    ["kv-cache-dtype"] = { type = "string", choices = { "fp16", "int8", "int4" }, help = "for --model" },
    ["kv-qparams"] = { type = "string", choices = { "auto", "online", "static" }, help = "for --model" },
  },
})

-- Prompts: the first words of the first N eval sentences of 8+ words.
local text = assert(eval.dataset_text("brown-eval"))
local prompts = {}
for line in text:gmatch("[^\n]+") do
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  if #words >= 8 then prompts[#prompts + 1] = table.concat(words, " ", 1, 6) end
  if #prompts == opts.prompts then break end
end

local function greedy_all(dir, overrides)
  local eng = assert(engine_mod.new({ model = dir, max_batch_size = 32, overrides = overrides }))
  local outs = assert(eng:generate(prompts, { max_new_tokens = opts.tokens, temperature = 0, ignore_eos = true }))
  eng:close()
  return outs
end

local ref = greedy_all(opts.ref)
local over = {}
if opts.kv_cache_dtype then over.kv_cache_dtype = opts.kv_cache_dtype end
if opts.kv_qparams then over.kv_qparams = opts.kv_qparams end
local got = greedy_all(opts.model, over)
local same, tokens_same, tokens = 0, 0, 0
for i = 1, #prompts do
  local a, b = ref[i].ids, got[i].ids
  local all = true
  for t = 1, opts.tokens do
    tokens = tokens + 1
    if a[t] == b[t] and all then tokens_same = tokens_same + 1 else all = false end
  end
  if all then same = same + 1 end
end
print(json.encode({ prompts = #prompts, tokens = opts.tokens, identical = same, identical_fraction = same / #prompts,
  matching_prefix_fraction = tokens_same / tokens }))
