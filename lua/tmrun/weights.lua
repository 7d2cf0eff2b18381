-- tmrun.weights: a store of named tensors (tm_weights), loaded from safetensors files.
local tmffi = require("tmrun.ffi")
local core = require("tmrun.core")
local ffi, C = tmffi.ffi, tmffi.C

local Weights = {}
Weights.__index = Weights

local M = {}

function M.new()
  local box = ffi.new("tm_weights *[1]")
  core.check(C.tm_weights_create(box), 2)
  local self = setmetatable({ handle = ffi.gc(box[0], C.tm_weights_destroy), files = {} }, Weights)
  return self
end

-- Loads every tensor of one .safetensors file; nil, err on a bad file.
function Weights:load(path)
  local h = self:_h()
  local s = C.tm_weights_load(h, path)
  if s ~= 0 then return nil, core.last_error(s) end
  self.files[#self.files + 1] = path
  return true
end

function Weights:_h()
  if not self.handle then error("weights store is closed", 3) end
  return self.handle
end

function Weights:count() return tonumber(C.tm_weights_count(self:_h())) end

local function info_table(info)
  local shape = {}
  for i = 0, info.ndim - 1 do shape[i + 1] = tonumber(info.shape[i]) end
  return {
    name = ffi.string(info.name), dtype = info.dtype, dtype_name = core.dtype_name(info.dtype),
    shape = shape, data = info.data, nbytes = tonumber(info.nbytes),
  }
end

-- { name, dtype, dtype_name, shape = {...}, data = const void *, nbytes } or nil.
function Weights:find(name)
  local info = ffi.new("tm_tensor_info")
  if C.tm_weights_find(self:_h(), name, info) ~= 0 then return nil end
  return info_table(info)
end

function Weights:info(index)
  local info = ffi.new("tm_tensor_info")
  core.check(C.tm_weights_info(self:_h(), index, info), 2)
  return info_table(info)
end

function Weights:names()
  local out = {}
  for i = 0, self:count() - 1 do out[#out + 1] = self:info(i).name end
  return out
end

-- Adds a copy of data (a cdata pointer) as a tensor.
function Weights:add(name, dtype, shape, data)
  local dims = ffi.new("int64_t[?]", math.max(#shape, 1))
  for i, d in ipairs(shape) do dims[i - 1] = d end
  local s = C.tm_weights_add(self:_h(), name, dtype, #shape, dims, data)
  if s ~= 0 then return nil, core.last_error(s) end
  return true
end

function Weights:save(path, metadata_json)
  local s = C.tm_weights_save(self:_h(), path, metadata_json)
  if s ~= 0 then return nil, core.last_error(s) end
  return true
end

-- fp32 copy of a float tensor's elements as a Lua array (tests and tools; slow for big ones).
function Weights:to_table(name)
  local t = self:find(name)
  if not t then error("no tensor " .. name, 2) end
  local n = 1
  for _, d in ipairs(t.shape) do n = n * d end
  local out = {}
  if t.dtype == C.TM_F32 then
    local p = ffi.cast("const float *", t.data)
    for i = 0, n - 1 do out[i + 1] = p[i] end
  elseif t.dtype == C.TM_I32 then
    local p = ffi.cast("const int32_t *", t.data)
    for i = 0, n - 1 do out[i + 1] = p[i] end
  else
    error("to_table: tensor " .. name .. " is " .. t.dtype_name .. ", want F32 or I32", 2)
  end
  return out, t.shape
end

function Weights:close()
  if self.handle then
    C.tm_weights_destroy(ffi.gc(self.handle, nil))
    self.handle = nil
  end
end

return M
