-- tmrun.quant.awq_format: the AutoAWQ checkpoint format (WQLinear_GEMM, "version":
-- "gemm"): per quantized linear `qweight` I32 [in][out/8], `qzeros` I32 [in/g][out/8]
-- (AutoAWQ's nibble order 0 2 4 6 1 3 5 7), `scales` F16 [in/g][out]; everything else
-- fp16; `quantization_config` in config.json.  Written by auto_awq.lua, read by
-- convert.lua --model-format awq (also for checkpoints made by AutoAWQ or LMDeploy).
local fs = require("tmrun.util.fs")
local cjson = require("cjson")

local M = {}

M.WEIGHTS_FILE = "model.safetensors"

-- The validated quantization_config of an HF config table, nil when it has none,
-- or nil, err when it is AWQ in a form tmrun does not read.
function M.config_of(hf)
  local qc = hf.quantization_config
  if type(qc) ~= "table" then return nil end
  local method = qc.quant_method or qc.quant_type
  if method ~= "awq" then return nil, string.format("quantization_config: quant_method %q is not supported (awq)",
    tostring(method)) end
  local bits = qc.bits or qc.w_bit
  local group = qc.group_size or qc.q_group_size
  local zero = qc.zero_point
  local version = (qc.version or "gemm"):lower()
  if bits ~= 4 then return nil, "quantization_config: bits must be 4, got " .. tostring(bits) end
  if group ~= 32 and group ~= 64 and group ~= 128 then
    return nil, "quantization_config: group_size must be 32, 64 or 128, got " .. tostring(group)
  end
  if zero == false then return nil, "quantization_config: zero_point false (symmetric AWQ) is not supported" end
  if version ~= "gemm" then
    return nil, string.format("quantization_config: version %q is not supported (gemm packing only)", version)
  end
  return { quant_method = "awq", bits = 4, group_size = group, zero_point = true, version = "gemm" }
end

-- The quantization_config auto_awq.lua writes.
function M.quantization_config(group)
  return { quant_method = "awq", bits = 4, group_size = group, zero_point = true, version = "gemm",
    modules_to_not_convert = cjson.empty_array or {} }
end

-- Writes the checkpoint folder: model.safetensors (+ its index, so the folder's other
-- safetensors files, e.g. calibration statistics, are not read as weights), config.json
-- (hf config with quantization_config and fp16 dtype) and the tokenizer files.
function M.write(dir, store, hf, group, tokenizer_dir, tokenizer_files, metadata)
  local ok, err = fs.mkdir_p(dir)
  if not ok then return nil, "cannot create " .. dir .. ": " .. tostring(err) end
  local meta = { format = "pt" }
  for k, v in pairs(metadata or {}) do meta[k] = tostring(v) end
  local sok, serr = store:save(fs.join(dir, M.WEIGHTS_FILE), cjson.encode(meta))
  if not sok then return nil, serr end
  local map = {}
  for _, name in ipairs(store:names()) do map[name] = M.WEIGHTS_FILE end
  local index = cjson.encode({ metadata = { format = "tmrun-awq" }, weight_map = map })
  local iok, ierr = fs.write(fs.join(dir, "model.safetensors.index.json"), index)
  if not iok then return nil, ierr end
  local cfg = {}
  for k, v in pairs(hf) do cfg[k] = v end
  cfg.quantization_config = M.quantization_config(group)
  cfg.torch_dtype = "float16"
  cfg.dtype = "float16"
  local cok, cerr = fs.write(fs.join(dir, "config.json"), cjson.encode(cfg))
  if not cok then return nil, cerr end
  if tokenizer_dir ~= dir then
    for _, name in ipairs(tokenizer_files) do
      local from = fs.join(tokenizer_dir, name)
      if fs.is_file(from) then
        local fok, ferr = fs.copy(from, fs.join(dir, name))
        if not fok then return nil, "cannot copy " .. from .. ": " .. tostring(ferr) end
      end
    end
  end
  return true
end

return M
