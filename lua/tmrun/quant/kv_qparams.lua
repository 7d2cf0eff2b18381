-- tmrun.quant.kv_qparams: static INT8 KV parameters from K/V statistics, written
-- into a workspace the way TurboMind stores them.
--
-- From kv_stats.safetensors (tmrun.quant.kv_stats) each layer gets, per kv head
-- (default) or per layer (granularity = "layer", TurboMind's shape [4]):
--   asymmetric (the seed's kv_qparams): zp = (min + max) / 2, scale = (max - min) / 255
--   symmetric (--kv-sym true):          zp = 0,               scale = absmax / 127
-- with min / max / absmax taken over the head's (or layer's) channels, stored as
-- layers.{L}.past_kv_scale.{R}.weight = [k_scale, k_zp, v_scale, v_zp], F32 [4] or
-- [4][kv_head_num / tp] (rank R's heads).  An INT4 cache reads the same tensors:
-- the runtime widens the scale by 255 / 15 (runtime/model_kv.c).
local ffi = require("ffi")
local tmffi = require("tmrun.ffi")
local fs = require("tmrun.util.fs")
local ini = require("tmrun.util.ini")
local weights = require("tmrun.weights")
local kv_stats = require("tmrun.quant.kv_stats")

local C = tmffi.C
local M = {}

-- params[l] = { k_scale = {..}, k_zp, v_scale, v_zp } Lua arrays of kv_head_num
-- (granularity "head") or 1 ("layer") values.
function M.compute(st, opts)
  opts = opts or {}
  local per_layer = opts.granularity == "layer"
  local H, D = st.kv_head_num, st.head_dim
  local out = {}
  for l = 0, st.num_layer - 1 do
    local L, P = st.layers[l], { k_scale = {}, k_zp = {}, v_scale = {}, v_zp = {} }
    local groups = per_layer and 1 or H
    for g = 0, groups - 1 do
      local lo, hi = per_layer and 0 or g * D, per_layer and H * D - 1 or (g + 1) * D - 1
      for _, kv in ipairs({ "k", "v" }) do
        local mn, mx, am = math.huge, -math.huge, 0
        local fmin, fmax, fabs = L[kv .. "_min"], L[kv .. "_max"], L[kv .. "_absmax"]
        for i = lo, hi do
          mn = math.min(mn, fmin[i])
          mx = math.max(mx, fmax[i])
          am = math.max(am, fabs[i])
        end
        local scale, zp
        if opts.sym then scale, zp = am / 127, 0
        else scale, zp = (mx - mn) / 255, (mn + mx) / 2 end
        P[kv .. "_scale"][g + 1], P[kv .. "_zp"][g + 1] = scale, zp
      end
    end
    out[l] = P
  end
  return out
end

local function file_metadata(w)
  local box = ffi.new("const char *[1]")
  if C.tm_weights_file_metadata(w:_h(), 0, box) ~= 0 then return nil end
  return ffi.string(box[0])
end

-- Rewrites one rank file with rank r's past_kv_scale tensors (replacing old ones).
local function rewrite_rank(path, params, rank, tp, per_layer)
  local src = weights.new()
  local ok, err = src:load(path)
  if not ok then src:close() return nil, err end
  local dst = weights.new()
  for i = 0, src:count() - 1 do
    local t = src:info(i)
    if not t.name:match("^layers%.%d+%.past_kv_scale%.") then
      ok, err = dst:add(t.name, t.dtype, t.shape, t.data)
      if not ok then src:close() dst:close() return nil, err end
    end
  end
  for l = 0, #params do
    local P = params[l]
    local n = #P.k_scale
    local per_rank = per_layer and 1 or n / tp
    local first = per_layer and 0 or rank * per_rank
    local buf = ffi.new("float[?]", 4 * per_rank)
    for r, key in ipairs({ "k_scale", "k_zp", "v_scale", "v_zp" }) do
      for g = 0, per_rank - 1 do buf[(r - 1) * per_rank + g] = P[key][first + g + 1] end
    end
    local shape = per_layer and { 4 } or { 4, per_rank }
    ok, err = dst:add(string.format("layers.%d.past_kv_scale.%d.weight", l, rank), C.TM_F32, shape, buf)
    if not ok then src:close() dst:close() return nil, err end
  end
  local meta = file_metadata(src)
  src:close()
  ok, err = dst:save(path, meta)
  dst:close()
  return ok, err
end

-- Sets quant_policy = 4 (INT8 KV, the seed's numbering) in config.ini, unless the
-- workspace already asks for an INT4 cache through kv_cache_dtype.
local function set_policy(ini_path)
  local text, err = fs.read(ini_path)
  if not text then return nil, err end
  local parsed, perr = ini.parse(text, ini_path)
  if not parsed then return nil, perr end
  if not parsed.llama then return nil, ini_path .. ": no [llama] section" end
  if parsed.llama.kv_cache_dtype == "int4" then return true end
  local out, n = text:gsub("\nquant_policy%s*=[^\n]*", "\nquant_policy = 4")
  if n == 0 then out = text:gsub("%[llama%]\n", "[llama]\nquant_policy = 4\n", 1) end
  return fs.write(ini_path, out)
end

-- opts: work_dir, turbomind_dir (the workspace's weights/), kv_sym, num_tp,
-- granularity ("head" | "layer").  Returns a summary table or nil, err.
function M.run(opts)
  local st, err = kv_stats.load(fs.join(opts.work_dir, kv_stats.FILE))
  if not st then return nil, err end
  local tp = opts.num_tp or 1
  local per_layer = opts.granularity == "layer"
  if not per_layer and st.kv_head_num % tp ~= 0 then
    return nil, string.format("--num-tp %d must divide kv_head_num %d", tp, st.kv_head_num)
  end
  local params = M.compute(st, { sym = opts.kv_sym, granularity = opts.granularity })
  for rank = 0, tp - 1 do
    local path = fs.join(opts.turbomind_dir, string.format("rank%d.safetensors", rank))
    if not fs.is_file(path) then return nil, path .. ": no such rank file (is --num-tp right?)" end
    local ok, werr = rewrite_rank(path, params, rank, tp, per_layer)
    if not ok then return nil, werr end
  end
  local ini_path = fs.join(opts.turbomind_dir, "../config.ini")
  if fs.is_file(ini_path) then
    local ok, ierr = set_policy(ini_path)
    if not ok then return nil, ierr end
  end
  return { layers = st.num_layer, kv_head_num = st.kv_head_num, tp = tp, params = params }
end

return M
