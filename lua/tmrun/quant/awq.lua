-- tmrun.quant.awq: AWQ W4A16 (and plain RTN) of an HF Llama-family model into an
-- AutoAWQ checkpoint.  The maths is C (tm_awq_search_scale, tm_awq_search_clip,
-- tm_awq_quantize); this module is the recipe: which linears share an input, where
-- each scale is folded, which linears are clipped.
--
-- Per decoder layer, with the Gram matrices and mean |x| of calibrate.lua:
--   smoothing groups   input_layernorm -> q, k, v      (scale folded into the norm)
--                      v -> o, when v's outputs are o's inputs (no GQA)
--                      post_attention_layernorm -> gate, up
--                      up -> down                       (folded into up's output rows)
--   each scale: the best of a 20-point grid over alpha in [0, 1) of the group's
--   linear-output error (tm_awq_search_scale); then, on the scaled weights and the
--   scaled inputs' Grams, the clipping search for every linear but q and k (AutoAWQ
--   skips those: their errors act through the softmax), then int4 with zero points.
local tmffi = require("tmrun.ffi")
local core = require("tmrun.core")
local convert = require("tmrun.convert")
local fs = require("tmrun.util.fs")
local weights = require("tmrun.weights")
local awq_format = require("tmrun.quant.awq_format")
local calibrate = require("tmrun.quant.calibrate")

local ffi, C = tmffi.ffi, tmffi.C

local M = {}

M.N_GRID = 20
M.CLIP_GRID = 20
M.CLIP_MAX_SHRINK = 0.5

local function check(s)
  if s ~= 0 then error(core.last_error(s), 0) end
end

local function converter(dtype)
  local p = C.tm_converter_default_params()
  p.keep_dtype = 0
  p.dtype = dtype
  local box = ffi.new("tm_converter *[1]")
  check(C.tm_converter_create(p, box))
  return ffi.gc(box[0], C.tm_converter_destroy)
end

-- A float[n] copy of a float tensor of src (any float dtype), with its shape.
local function load_f32(conv, src, name)
  local tmp = weights.new()
  check(C.tm_converter_copy(conv, tmp.handle, "t", src.handle, name, 0))
  local t = tmp:find("t")
  local n = t.nbytes / 4
  local buf = ffi.new("float[?]", n)
  ffi.copy(buf, t.data, t.nbytes)
  tmp:close()
  return buf, t.shape
end

-- w [out][in]: columns *= s (s [in]).
local function scale_cols(w, out, n_in, s)
  for o = 0, out - 1 do
    local row = o * n_in
    for c = 0, n_in - 1 do w[row + c] = w[row + c] * s[c] end
  end
end

-- v [n] /= s, or the rows of w [n][in] /= s[row].
local function div_rows(w, n, n_in, s)
  for o = 0, n - 1 do
    local inv = 1 / s[o]
    for c = 0, n_in - 1 do w[o * n_in + c] = w[o * n_in + c] * inv end
  end
end

-- The Gram of X diag(1/s): G[a][b] / (s[a] s[b]).
local function scaled_gram(g, n, s)
  if not s then return g end
  local out = ffi.new("float[?]", n * n)
  for a = 0, n - 1 do
    local ia = 1 / s[a]
    for b = 0, n - 1 do out[a * n + b] = g[a * n + b] * ia / s[b] end
  end
  return out
end

local function search_scale(stats, layer, site, lins, group, threads)
  local g = stats[string.format("layers.%d.%s.gram", layer, site)]
  local am = stats[string.format("layers.%d.%s.absmean", layer, site)]
  local n_in = lins[1].n_in
  local ptrs = ffi.new("const float *[?]", #lins)
  local outs = ffi.new("int64_t[?]", #lins)
  for i, l in ipairs(lins) do
    ptrs[i - 1] = l.w
    outs[i - 1] = l.out
  end
  local s = ffi.new("float[?]", n_in)
  local errs = ffi.new("float[?]", M.N_GRID)
  check(C.tm_awq_search_scale(g, n_in, am, ptrs, outs, #lins, group, M.N_GRID, threads, s, errs))
  local best, best_k = math.huge, 0
  for k = 0, M.N_GRID - 1 do if errs[k] < best then best, best_k = errs[k], k end end
  return s, { alpha = best_k / M.N_GRID, err = best, err_rtn = errs[0] }
end

-- Runs the recipe.  opts: model (HF dir), work_dir (calib_stats.safetensors there, the
-- checkpoint written there), group (32|64|128), method ("awq"|"rtn"), threads, log.
function M.run(opts)
  local h, err = convert.open_hf(opts.model)
  if not h then return nil, err end
  local method, group, threads = opts.method or "awq", opts.group or 128, opts.threads or 0
  local log = opts.log or function() end
  local stats, stats_store = {}, nil
  if method == "awq" then
    stats_store = weights.new()
    local path = fs.join(opts.work_dir, calibrate.STATS_FILE)
    local ok, lerr = stats_store:load(path)
    if not ok then return nil, lerr .. " (run calibrate.lua with this --work-dir first)" end
    for _, name in ipairs(stats_store:names()) do
      stats[name] = ffi.cast("const float *", stats_store:find(name).data)
    end
  end
  local n, cfg = h.map.names, h.cfg
  local f32, f16 = converter(C.TM_F32), converter(C.TM_F16)
  local out = weights.new()
  local report = {}
  local ok, perr = pcall(function()
    for _, key in ipairs({ "embed", "norm" }) do check(C.tm_converter_copy(f16, out.handle, n[key], h.src.handle, n[key], 0)) end
    if h.src:find(n.lm_head) then check(C.tm_converter_copy(f16, out.handle, n.lm_head, h.src.handle, n.lm_head, 0)) end
    for l = 0, cfg.num_layer - 1 do
      local function name(key) return string.format(n[key], l) end
      local lin = {}
      for _, key in ipairs({ "q", "k", "v", "o", "gate", "up", "down" }) do
        local w, shape = load_f32(f32, h.src, name(key) .. ".weight")
        lin[key] = { w = w, out = shape[1], n_in = shape[2], prefix = name(key) }
      end
      local attn_norm = load_f32(f32, h.src, name("attn_norm"))
      local ffn_norm = load_f32(f32, h.src, name("ffn_norm"))
      local s_in = {} -- the scale each linear's input was divided by
      if method == "awq" then
        local s1, r1 = search_scale(stats, l, "attn_in", { lin.q, lin.k, lin.v }, group, threads)
        div_rows(attn_norm, cfg.hidden_size, 1, s1)
        for _, k in ipairs({ "q", "k", "v" }) do scale_cols(lin[k].w, lin[k].out, lin[k].n_in, s1); s_in[k] = s1 end
        local r2
        if lin.v.out == lin.o.n_in then
          local s2
          s2, r2 = search_scale(stats, l, "o_in", { lin.o }, group, threads)
          div_rows(lin.v.w, lin.v.out, lin.v.n_in, s2)
          scale_cols(lin.o.w, lin.o.out, lin.o.n_in, s2)
          s_in.o = s2
        end
        local s3, r3 = search_scale(stats, l, "ffn_in", { lin.gate, lin.up }, group, threads)
        div_rows(ffn_norm, cfg.hidden_size, 1, s3)
        for _, k in ipairs({ "gate", "up" }) do scale_cols(lin[k].w, lin[k].out, lin[k].n_in, s3); s_in[k] = s3 end
        local s4, r4 = search_scale(stats, l, "down_in", { lin.down }, group, threads)
        div_rows(lin.up.w, lin.up.out, lin.up.n_in, s4)
        scale_cols(lin.down.w, lin.down.out, lin.down.n_in, s4)
        s_in.down = s4
        report[l + 1] = { qkv = r1, o = r2, gate_up = r3, down = r4 }
        log(string.format("layer %d: alpha qkv %.2f o %s gate/up %.2f down %.2f", l, r1.alpha,
          r2 and string.format("%.2f", r2.alpha) or "-", r3.alpha, r4.alpha))
      end
      local site_of = { q = "attn_in", k = "attn_in", v = "attn_in", o = "o_in", gate = "ffn_in", up = "ffn_in",
        down = "down_in" }
      local grams = {}
      for _, k in ipairs({ "q", "k", "v", "o", "gate", "up", "down" }) do
        local L = lin[k]
        local max_val = nil
        if method == "awq" and k ~= "q" and k ~= "k" then
          local gkey = site_of[k] .. (s_in[k] and tostring(s_in[k]) or "")
          grams[gkey] = grams[gkey] or scaled_gram(stats[string.format("layers.%d.%s.gram", l, site_of[k])], L.n_in, s_in[k])
          max_val = ffi.new("float[?]", L.out * (L.n_in / group))
          check(C.tm_awq_search_clip(grams[gkey], L.n_in, L.w, L.out, group, M.CLIP_GRID, M.CLIP_MAX_SHRINK, threads,
            max_val))
        end
        check(C.tm_awq_quantize(out.handle, L.prefix, L.w, L.out, L.n_in, group, max_val))
      end
      out:add(name("attn_norm") .. ".f32", C.TM_F32, { cfg.hidden_size }, attn_norm)
      out:add(name("ffn_norm") .. ".f32", C.TM_F32, { cfg.hidden_size }, ffn_norm)
      check(C.tm_converter_copy(f16, out.handle, name("attn_norm"), out.handle, name("attn_norm") .. ".f32", 0))
      check(C.tm_converter_copy(f16, out.handle, name("ffn_norm"), out.handle, name("ffn_norm") .. ".f32", 0))
      collectgarbage()
    end
  end)
  if stats_store then stats_store:close() end
  if not ok then
    out:close()
    return nil, perr
  end
  -- the fp32 norm copies were staging only: rebuild the store without them
  local final = weights.new()
  for _, nm in ipairs(out:names()) do
    if not nm:match("%.f32$") then
      local t = out:find(nm)
      final:add(nm, t.dtype, t.shape, t.data)
    end
  end
  out:close()
  local wok, werr = awq_format.write(opts.work_dir, final, h.hf, group, h.dir, convert.TOKENIZER_FILES,
    { method = method, group_size = group })
  final:close()
  h.src:close()
  if not wok then return nil, werr end
  return report
end

return M
