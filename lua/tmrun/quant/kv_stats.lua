-- tmrun.quant.kv_stats: the K/V observer of calibration, and its file.
--
-- Runs calibration windows through a float-cache context and records, per layer,
-- kv head and channel, the min, max and absmax of the K and V the cache stores
-- (after RoPE: what a quantized cache would code).  The file is the contract with
-- kv_qparams.lua (and calibrate.lua): kv_stats.safetensors in the work dir holding
--   layers.{L}.k_min, k_max, k_absmax, v_min, v_max, v_absmax   F32 [kv_head_num][head_dim]
--
--   local kv_stats = require("tmrun.quant.kv_stats")
--   local st = kv_stats.observe(model, ids, { seqlen = 512, max_windows = 16 })
--   assert(kv_stats.save(st, work_dir .. "/kv_stats.safetensors"))
local ffi = require("ffi")
local cjson = require("cjson")
local tmffi = require("tmrun.ffi")
local core = require("tmrun.core")
local weights = require("tmrun.weights")

local C = tmffi.C
local M = {}

M.FILE = "kv_stats.safetensors"
M.FIELDS = { "k_min", "k_max", "k_absmax", "v_min", "v_max", "v_absmax" }

local function new_stats(num_layer, heads, dim)
  local st = { num_layer = num_layer, kv_head_num = heads, head_dim = dim, tokens = 0, layers = {} }
  local n = heads * dim
  for l = 0, num_layer - 1 do
    local L = {}
    for _, f in ipairs(M.FIELDS) do
      L[f] = ffi.new("float[?]", n)
      local init = f:match("_min$") and math.huge or f:match("_max$") and -math.huge or 0
      for i = 0, n - 1 do L[f][i] = init end
    end
    st.layers[l] = L
  end
  return st
end

-- Folds rows x[n][heads*dim] into mn, mx, am (all float[heads*dim]).
local function fold(x, n, width, mn, mx, am)
  for t = 0, n - 1 do
    local row = x + t * width
    for i = 0, width - 1 do
      local y = row[i]
      if y < mn[i] then mn[i] = y end
      if y > mx[i] then mx[i] = y end
      local a = y < 0 and -y or y
      if a > am[i] then am[i] = a end
    end
  end
end

-- Statistics of ids (a Lua array) split into windows of opts.seqlen (512), at most
-- opts.max_windows of them.  The model must have a float KV cache.  Returns stats
-- or nil, err.
function M.observe(model, ids, opts)
  opts = opts or {}
  local seqlen = math.min(opts.seqlen or 512, #ids)
  if seqlen < 1 then return nil, "kv_stats: no calibration tokens" end
  local cfg = model.cfg
  local heads, dim = cfg.kv_head_num, cfg.size_per_head
  local st = new_stats(cfg.num_layer, heads, dim)
  local width = heads * dim
  local k, v = ffi.new("float[?]", seqlen * width), ffi.new("float[?]", seqlen * width)
  local ctx = model:context({ max_tokens = seqlen })
  local win, n_windows = {}, 0
  for b = 0, #ids - seqlen, seqlen do
    if opts.max_windows and n_windows >= opts.max_windows then break end
    for i = 1, seqlen do win[i] = ids[b + i] end
    ctx:reset()
    local ok, err = ctx:eval(win, false)
    if not ok then ctx:close() return nil, "kv_stats: " .. tostring(err) end
    for l = 0, cfg.num_layer - 1 do
      local s = C.tm_context_kv_read(ctx:_h(), l, 0, seqlen, k, v)
      if s ~= 0 then ctx:close() return nil, "kv_stats: " .. core.last_error(s) end
      local L = st.layers[l]
      fold(k, seqlen, width, L.k_min, L.k_max, L.k_absmax)
      fold(v, seqlen, width, L.v_min, L.v_max, L.v_absmax)
    end
    st.tokens = st.tokens + seqlen
    n_windows = n_windows + 1
  end
  ctx:close()
  return st
end

function M.save(st, path)
  local w = weights.new()
  for l = 0, st.num_layer - 1 do
    for _, f in ipairs(M.FIELDS) do
      local ok, err = w:add(string.format("layers.%d.%s", l, f), C.TM_F32, { st.kv_head_num, st.head_dim },
        st.layers[l][f])
      if not ok then w:close() return nil, err end
    end
  end
  local ok, err = w:save(path, cjson.encode({ format = "tmrun-kv-stats", tokens = tostring(st.tokens) }))
  w:close()
  return ok, err
end

-- Reads a kv_stats file back: stats with float[] fields, or nil, err.
function M.load(path)
  local w = weights.new()
  local ok, err = w:load(path)
  if not ok then w:close() return nil, err end
  local st = { layers = {} }
  local l = 0
  while w:find(string.format("layers.%d.k_min", l)) do
    local L = {}
    for _, f in ipairs(M.FIELDS) do
      local name = string.format("layers.%d.%s", l, f)
      local t = w:find(name)
      if not t or t.dtype_name ~= "F32" or #t.shape ~= 2 then
        w:close()
        return nil, string.format("%s: %s must be F32 [kv_head_num][head_dim]", path, name)
      end
      st.kv_head_num, st.head_dim = t.shape[1], t.shape[2]
      local n = t.shape[1] * t.shape[2]
      L[f] = ffi.new("float[?]", n)
      ffi.copy(L[f], t.data, n * 4)
    end
    st.layers[l] = L
    l = l + 1
  end
  w:close()
  if l == 0 then return nil, path .. ": no layers.0.k_min (not a kv_stats file)" end
  st.num_layer = l
  return st
end

return M
