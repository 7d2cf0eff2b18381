-- tmrun.util.cli: what the model-serving scripts (chat.lua, serve.lua) share: the
-- engine flags and opening the engine from them (the default model when none given).
local M = {}

-- The flags every engine-backed script takes (merged into its args.parse options).
M.ENGINE_OPTIONS = {
  backend = { type = "string", default = "cpu", choices = { "cpu", "cuda" } },
  threads = { type = "int", default = 0, min = 0, max = 512, help = "CPU threads (0: one per core)" },
  ["session-len"] = { type = "int", min = 1, help = "override session_len" },
  ["quant-policy"] = { type = "int", min = 0, max = 8, help = "KV cache: 0 fp, 4 int8 (the seed's LMDeploy numbering), 8 int8" },
  ["kv-cache-dtype"] = { type = "string", choices = { "fp16", "int8", "int4" }, help = "KV cache kind (wins over --quant-policy)" },
  ["kv-qparams"] = { type = "string", choices = { "auto", "online", "static" }, help = "quantized KV parameters" },
}

-- options + ENGINE_OPTIONS (a script's own definition of a flag wins).
function M.with_engine_options(options)
  for k, v in pairs(M.ENGINE_OPTIONS) do
    if options[k] == nil then options[k] = v end
  end
  return options
end

local function die(code, ...)
  io.stderr:write("error: ", ...)
  io.stderr:write("\n")
  os.exit(code)
end

-- Opens the engine for parsed opts (opts.model, or the embedded default model);
-- extra: more engine options.  Exits with a message on failure.  Returns eng, path.
function M.open_engine(opts, extra)
  local path, perr = require("tmrun.default_model").resolve(opts.model)
  if not path then die(2, "no MODEL given, and ", perr) end
  local o = {
    model = path, backend = opts.backend, threads = opts.threads, session_len = opts.session_len,
    quant_policy = opts.quant_policy, kv_cache_dtype = opts.kv_cache_dtype, kv_qparams = opts.kv_qparams,
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  local eng, err = require("tmrun.engine").new(o)
  if not eng then die(1, err) end
  if not eng.tokenizer then die(1, path, " has no tokenizer (tokenizer.json or tokenizer.model)") end
  return eng, path
end

return M
