-- tmrun.convert: HF folder -> workspace tensors (online, in memory) and the workspace
-- on disk (offline: config.ini, tokenizer/, weights/rank{R}.safetensors).
local tmffi = require("tmrun.ffi")
local core = require("tmrun.core")
local config = require("tmrun.config")
local fs = require("tmrun.util.fs")
local ini = require("tmrun.util.ini")
local models = require("tmrun.models")
local weights = require("tmrun.weights")
local awq_format = require("tmrun.quant.awq_format")
local cjson = require("cjson")

local ffi, C = tmffi.ffi, tmffi.C

local M = {}

M.TOKENIZER_FILES = {
  "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
  "generation_config.json", "vocab.json", "merges.txt", "added_tokens.json",
}

local function read_json(path)
  local text, err = fs.read(path)
  if not text then return nil, err end
  local ok, v = pcall(cjson.decode, text)
  if not ok then return nil, path .. ": " .. tostring(v) end
  return v
end
M.read_json = read_json

-- The safetensors files of an HF folder: the index's files, else every *.safetensors.
function M.hf_weight_files(dir)
  local index = fs.join(dir, "model.safetensors.index.json")
  if fs.is_file(index) then
    local idx, err = read_json(index)
    if not idx then return nil, err end
    if type(idx.weight_map) ~= "table" then return nil, index .. ": weight_map must be an object" end
    local seen, files = {}, {}
    for _, file in pairs(idx.weight_map) do
      if type(file) ~= "string" or file:find("/", 1, true) or file:find("..", 1, true) then
        return nil, index .. ": weight_map values must be file names in the folder, got " .. tostring(file)
      end
      if not seen[file] then
        seen[file] = true
        files[#files + 1] = fs.join(dir, file)
      end
    end
    table.sort(files)
    return files
  end
  local files = {}
  for _, name in ipairs(fs.list(dir) or {}) do
    if name:match("%.safetensors$") then files[#files + 1] = fs.join(dir, name) end
  end
  if #files == 0 then return nil, dir .. ": no *.safetensors files (only safetensors checkpoints are read)" end
  return files
end

-- Reads an HF folder's config and weights: { hf, map, arch, cfg, src }.
function M.open_hf(dir)
  local hf, err = read_json(fs.join(dir, "config.json"))
  if not hf then return nil, "cannot read HF config: " .. tostring(err) end
  local ok, map, arch = pcall(models.for_config, hf)
  if not ok then return nil, map end
  local ok2, cfg = pcall(map.config, hf)
  if not ok2 then return nil, cfg end
  cfg.architecture = arch
  -- an AutoAWQ checkpoint (quantization_config): linears are int4, repacked below
  local awq, qerr = awq_format.config_of(hf)
  if qerr then return nil, dir .. "/config.json: " .. qerr end
  local files, ferr = M.hf_weight_files(dir)
  if not files then return nil, ferr end
  local src = weights.new()
  for _, f in ipairs(files) do
    local lok, lerr = src:load(f)
    if not lok then return nil, lerr end
  end
  return { hf = hf, map = map, arch = arch, cfg = cfg, src = src, dir = dir, awq = awq }
end

local function dtype_of(src, name)
  local t = src:find(name) or src:find(name .. ".weight")
  return t and t.dtype_name
end

local WEIGHT_TYPE = { F32 = "fp32", F16 = "fp16", BF16 = "bf16" }
local DTYPE = { fp32 = C.TM_F32, fp16 = C.TM_F16, bf16 = C.TM_BF16 }

local function converter(tp, weight_type)
  local p = C.tm_converter_default_params()
  p.tp = tp
  if weight_type then
    p.keep_dtype = 0
    p.dtype = DTYPE[weight_type]
  else
    p.keep_dtype = 1
  end
  local box = ffi.new("tm_converter *[1]")
  core.check(C.tm_converter_create(p, box), 2)
  return ffi.gc(box[0], C.tm_converter_destroy)
end

local function need(src, name)
  if not src:find(name) then error(string.format("missing tensor %s in the checkpoint", name), 0) end
  return name
end

local function linear(conv, dst, dst_name, src, names, split, rank, suffix)
  local arr = ffi.new("const char *[?]", #names)
  local keep = {}
  for i, n in ipairs(names) do
    keep[i] = need(src, n .. suffix)
    arr[i - 1] = keep[i]
  end
  local s = C.tm_converter_linear(conv, dst.handle, dst_name .. suffix, src.handle, arr, #names, split, rank)
  if s ~= 0 then error(core.last_error(s), 0) end
end

-- An AutoAWQ linear (names: the HF prefixes, e.g. q, k, v) as the engine's int4 tensors.
local function linear_awq(conv, dst, dst_name, src, names, split, rank, group)
  local arr = ffi.new("const char *[?]", #names)
  for i, n in ipairs(names) do
    need(src, n .. ".qweight")
    arr[i - 1] = n
  end
  local s = C.tm_converter_awq(conv, dst.handle, dst_name, src.handle, arr, #names, group, split, rank)
  if s ~= 0 then error(core.last_error(s), 0) end
end

local function copy(conv, dst, dst_name, src, src_name, transpose)
  local s = C.tm_converter_copy(conv, dst.handle, dst_name, src.handle, need(src, src_name), transpose and 1 or 0)
  if s ~= 0 then error(core.last_error(s), 0) end
end

-- The workspace tensors of one rank (a new weights store), for an opened HF model.
-- opts.tp (default 1), opts.weight_type (nil: keep the checkpoint's dtype).
function M.build_rank(h, rank, opts)
  opts = opts or {}
  local tp = opts.tp or 1
  local conv = converter(tp, opts.weight_type)
  local dst = weights.new()
  local n, cfg, src = h.map.names, h.cfg, h.src
  local function weight(dst_name, names, split)
    if h.awq then return linear_awq(conv, dst, dst_name, src, names, split, rank, h.awq.group_size) end
    return linear(conv, dst, dst_name, src, names, split, rank, ".weight")
  end
  local ok, err = pcall(function()
    copy(conv, dst, "tok_embeddings.weight", src, n.embed, false)
    copy(conv, dst, "norm.weight", src, n.norm, false)
    if cfg.tie_word_embeddings == 1 or not src:find(n.lm_head) then
      copy(conv, dst, "output.weight", src, n.embed, true)
    else
      copy(conv, dst, "output.weight", src, n.lm_head, true)
    end
    for l = 0, cfg.num_layer - 1 do
      local function hf(key) return string.format(n[key], l) end
      local pre = string.format("layers.%d.", l)
      copy(conv, dst, pre .. "attention_norm.weight", src, hf("attn_norm"), false)
      local qkv = { hf("q"), hf("k"), hf("v") }
      weight(pre .. "attention.w_qkv." .. rank, qkv, C.TM_SPLIT_COLUMN)
      if cfg.attn_bias == 1 then
        linear(conv, dst, pre .. "attention.w_qkv." .. rank, src, qkv, C.TM_SPLIT_COLUMN, rank, ".bias")
      end
      weight(pre .. "attention.wo." .. rank, { hf("o") }, C.TM_SPLIT_ROW)
      if cfg.attn_out_bias == 1 then
        linear(conv, dst, pre .. "attention.wo." .. rank, src, { hf("o") }, C.TM_SPLIT_ROW, rank, ".bias")
      end
      copy(conv, dst, pre .. "ffn_norm.weight", src, hf("ffn_norm"), false)
      weight(pre .. "feed_forward.w1." .. rank, { hf("gate") }, C.TM_SPLIT_COLUMN)
      weight(pre .. "feed_forward.w3." .. rank, { hf("up") }, C.TM_SPLIT_COLUMN)
      weight(pre .. "feed_forward.w2." .. rank, { hf("down") }, C.TM_SPLIT_ROW)
    end
  end)
  if not ok then
    dst:close()
    return nil, err
  end
  return dst
end

-- The workspace config for an opened HF model (before runtime overrides).
function M.workspace_config(h, model_name, opts)
  opts = opts or {}
  local cfg = {}
  for k, v in pairs(h.cfg) do cfg[k] = v end
  cfg.model_name = model_name or cfg.model_name or ""
  cfg.tensor_para_size = opts.tp or 1
  cfg.weight_type = opts.weight_type or WEIGHT_TYPE[dtype_of(h.src, h.map.names.embed)] or "fp16"
  if h.awq then
    if opts.group_size and opts.group_size ~= h.awq.group_size then
      return nil, string.format("%s: the AWQ checkpoint has group_size %d, --group-size asked %d", h.dir,
        h.awq.group_size, opts.group_size)
    end
    cfg.weight_type = "int4"
    cfg.group_size = h.awq.group_size
  end
  if opts.session_len then
    cfg.session_len = opts.session_len
  elseif cfg.rope_scaling_type == "dynamic" or cfg.rope_scaling_type == "linear" then
    -- the point of these scalings is a longer context than the trained window
    cfg.session_len = math.floor(cfg.max_position_embeddings * cfg.rope_scaling_factor)
  end
  return config.validate(cfg, "workspace config")
end

-- Writes the workspace folder.  opts: tp, weight_type, dst_path.
function M.write_workspace(h, model_name, opts)
  local dst = opts.dst_path or "./workspace"
  local cfg, err = M.workspace_config(h, model_name, opts)
  if not cfg then return nil, err end
  for _, sub in ipairs({ "", "/weights", "/tokenizer" }) do
    local ok, merr = fs.mkdir_p(dst .. sub)
    if not ok then return nil, "cannot create " .. dst .. sub .. ": " .. tostring(merr) end
  end
  for rank = 0, cfg.tensor_para_size - 1 do
    local w, berr = M.build_rank(h, rank, opts)
    if not w then return nil, berr end
    local meta = cjson.encode({ format = "tmrun-workspace", rank = tostring(rank), tp = tostring(cfg.tensor_para_size) })
    local ok, serr = w:save(string.format("%s/weights/rank%d.safetensors", dst, rank), meta)
    w:close()
    if not ok then return nil, serr end
    if opts.progress then opts.progress(rank + 1, cfg.tensor_para_size) end
  end
  for _, name in ipairs(M.TOKENIZER_FILES) do
    local from = fs.join(h.dir, name)
    if fs.is_file(from) then
      local ok, cerr = fs.copy(from, dst .. "/tokenizer/" .. name)
      if not ok then return nil, "cannot copy " .. from .. ": " .. tostring(cerr) end
    end
  end
  local ok, werr = fs.write(dst .. "/config.ini", ini.format({ config.to_section(cfg) }))
  if not ok then return nil, werr end
  return cfg
end

return M
