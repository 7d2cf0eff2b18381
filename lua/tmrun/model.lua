-- tmrun.model: open a model (an HF folder, converted online, or a workspace) and run
-- it through single-sequence contexts.
--
--   local model = require("tmrun.model").open("path/to/hf_or_workspace", { backend = "cpu" })
--   local ctx = model:context()
--   local logits = ctx:eval({ 1, 2, 3 })        -- float[vocab] of the last token
--   local ids = model:greedy({ 1, 2, 3 }, 16)   -- 16 greedy ids
--   model:close()
local tmffi = require("tmrun.ffi")
local core = require("tmrun.core")
local config = require("tmrun.config")
local convert = require("tmrun.convert")
local fs = require("tmrun.util.fs")
local ini = require("tmrun.util.ini")
local weights = require("tmrun.weights")

local ffi, C = tmffi.ffi, tmffi.C

local M = {}

local Model = {}
Model.__index = Model

local Context = {}
Context.__index = Context

function M.is_workspace(path) return fs.is_file(fs.join(path, "config.ini")) end

-- Reads and validates a workspace's config.ini.
function M.read_workspace_config(dir, overrides)
  local path = fs.join(dir, "config.ini")
  local text, err = fs.read(path)
  if not text then return nil, "cannot read " .. path .. ": " .. tostring(err) end
  local parsed, perr = ini.parse(text, path)
  if not parsed then return nil, perr end
  if not parsed.llama then return nil, path .. ": no [llama] section" end
  local cfg, verr = config.validate(parsed.llama, path)
  if not cfg then return nil, verr end
  if overrides and next(overrides) then return config.override(cfg, overrides, path) end
  return cfg
end

local function open_workspace(dir, opts)
  local cfg, err = M.read_workspace_config(dir, opts.overrides)
  if not cfg then return nil, err end
  if cfg.tensor_para_size ~= 1 then
    return nil, string.format("%s: tensor_para_size is %d, but this backend runs tp 1 (convert with --tp 1)", dir,
      cfg.tensor_para_size)
  end
  local w = weights.new()
  local ok, lerr = w:load(fs.join(dir, "weights/rank0.safetensors"))
  if not ok then return nil, lerr end
  return { cfg = cfg, weights = w, tokenizer_dir = fs.join(dir, "tokenizer") }
end

local function open_hf(dir, opts)
  local h, err = convert.open_hf(dir)
  if not h then return nil, err end
  local cfg, cerr = convert.workspace_config(h, opts.model_name or "", {})
  if not cfg then return nil, cerr end
  if opts.overrides and next(opts.overrides) then
    cfg, cerr = config.override(cfg, opts.overrides, dir)
    if not cfg then return nil, cerr end
  end
  local w, berr = convert.build_rank(h, 0, { tp = 1 })
  h.src:close() -- the workspace tensors are copies: the checkpoint mapping can go
  if not w then return nil, berr end
  return { cfg = cfg, weights = w, tokenizer_dir = dir }
end

-- End-of-sequence ids: generation_config.json's eos_token_id (a number or a list),
-- else config's end_id.
function M.stop_ids(cfg, tokenizer_dir)
  local gen = tokenizer_dir and convert.read_json(fs.join(tokenizer_dir, "generation_config.json"))
  local eos = gen and gen.eos_token_id
  if type(eos) == "number" then return { eos } end
  if type(eos) == "table" and #eos > 0 then return eos end
  return { cfg.end_id }
end

-- Opens path; opts: backend, threads, overrides (editable config keys), model_name.
-- Returns a model, or nil, err for a bad path or file.
function M.open(path, opts)
  opts = opts or {}
  if type(path) ~= "string" then error("model path must be a string", 2) end
  if not fs.is_dir(path) then return nil, "no model folder at " .. path end
  local loaded, err
  if M.is_workspace(path) then loaded, err = open_workspace(path, opts)
  elseif fs.is_file(fs.join(path, "config.json")) then loaded, err = open_hf(path, opts)
  else return nil, path .. ": neither a workspace (config.ini) nor an HF folder (config.json)" end
  if not loaded then return nil, err end
  local params = config.model_params(loaded.cfg, opts)
  local box = ffi.new("tm_model *[1]")
  local s = C.tm_model_create(params, loaded.weights.handle, box)
  if s ~= 0 then
    loaded.weights:close()
    return nil, path .. ": " .. core.last_error(s)
  end
  return M.wrap(box[0], loaded.cfg, params, loaded.weights, loaded.tokenizer_dir, path)
end

-- A model object around a created tm_model handle (takes ownership of it and of w).
function M.wrap(handle, cfg, params, w, tokenizer_dir, path)
  return setmetatable({
    path = path,
    cfg = cfg,
    params = params,
    weights = w,
    tokenizer_dir = tokenizer_dir,
    handle = ffi.gc(handle, C.tm_model_destroy),
    vocab_size = cfg.vocab_size,
    stop_ids = M.stop_ids(cfg, tokenizer_dir),
  }, Model)
end

function Model:_h()
  if not self.handle then error("model is closed", 3) end
  return self.handle
end

function Model:param_count() return tonumber(C.tm_model_param_count(self:_h())) end

-- Bytes of the weights in the backend's memory (a decode step reads all but the
-- embedding table).
function Model:weight_bytes() return tonumber(C.tm_model_weight_bytes(self:_h())) end

-- A single-sequence context holding up to max_tokens (default session_len); opts also
-- block_len (cache_block_seq_len) and chunk_len (tokens per forward call, 0: 512).
function Model:context(opts)
  opts = opts or {}
  local p = C.tm_context_default_params()
  p.max_tokens = opts.max_tokens or self.cfg.session_len
  p.block_len = opts.block_len or self.cfg.cache_block_seq_len
  p.chunk_len = opts.chunk_len or 0
  local box = ffi.new("tm_context *[1]")
  core.check(C.tm_context_create(self:_h(), p, box), 2)
  return setmetatable({
    model = self,
    handle = ffi.gc(box[0], C.tm_context_destroy),
    vocab = self.vocab_size,
    ids = ffi.new("int32_t[?]", 1),
    ids_cap = 1,
    logits = ffi.new("float[?]", self.vocab_size),
    logits_cap = 1,
  }, Context)
end

function Model:close()
  if self.handle then
    C.tm_model_destroy(ffi.gc(self.handle, nil))
    self.handle = nil
  end
  if self.weights then
    self.weights:close()
    self.weights = nil
  end
end

function Context:_h()
  if not self.handle then error("context is closed", 3) end
  return self.handle
end

-- Feeds ids (a Lua array); returns float[vocab] logits of the last token, or with
-- all = true float[#ids * vocab] for every position.  The buffer is reused by the
-- next call.  nil, err for bad ids or a full context.
function Context:eval(ids, all)
  local h = self:_h()
  local n = #ids
  if n > self.ids_cap then
    self.ids = ffi.new("int32_t[?]", n)
    self.ids_cap = n
  end
  for i = 1, n do self.ids[i - 1] = ids[i] end
  local rows = all and n or 1
  if rows > self.logits_cap then
    self.logits = ffi.new("float[?]", rows * self.vocab)
    self.logits_cap = rows
  end
  local s = C.tm_context_eval(h, self.ids, n, self.logits, all and 1 or 0)
  if s ~= 0 then return nil, core.last_error(s) end
  return self.logits
end

function Context:reset() C.tm_context_reset(self:_h()) end

function Context:length() return C.tm_context_length(self:_h()) end

function Context:close()
  if self.handle then
    C.tm_context_destroy(ffi.gc(self.handle, nil))
    self.handle = nil
  end
end

-- Index (0-based id) of the largest of n floats; the first one on ties, like torch.argmax.
function M.argmax(p, n)
  local best, bi = p[0], 0
  for i = 1, n - 1 do
    local v = p[i]
    if v > best then best, bi = v, i end
  end
  return bi
end

-- Greedy decoding: up to max_new ids after prompt; stops at end ids unless
-- opts.ignore_eos.  opts.on_token(id, i) is called for each new id.
function Model:greedy(prompt, max_new, opts)
  opts = opts or {}
  local limit = self.cfg.session_len
  if #prompt < 1 then return nil, "the prompt needs at least one token" end
  if #prompt > limit then
    return nil, string.format("the prompt has %d tokens, more than session_len %d", #prompt, limit)
  end
  max_new = math.min(max_new, limit - #prompt)
  if max_new < 1 then return {} end
  local ctx = self:context({ max_tokens = #prompt + max_new })
  local out = {}
  local logits, err = ctx:eval(prompt)
  if not logits then
    ctx:close()
    return nil, err
  end
  local stop = {}
  for _, id in ipairs(opts.stop_ids or self.stop_ids) do stop[id] = true end
  for i = 1, max_new do
    local id = M.argmax(logits, self.vocab_size)
    out[i] = id
    if opts.on_token then opts.on_token(id, i) end
    if stop[id] and not opts.ignore_eos then break end
    if i == max_new then break end
    logits, err = ctx:eval({ id })
    if not logits then
      ctx:close()
      return nil, err
    end
  end
  ctx:close()
  return out
end

return M
