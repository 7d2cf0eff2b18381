-- tmrun.core: small helpers shared by the wrappers of C handles.
local tmffi = require("tmrun.ffi")
local ffi = tmffi.ffi
local C = tmffi.C

local M = {}

-- "TM_ERR_FORMAT: message" for the last failing call on this thread.
function M.last_error(status)
  return ffi.string(C.tm_status_name(status)) .. ": " .. ffi.string(C.tm_last_error())
end

-- Raises the C error (for calls whose failure means misuse or a broken file).
function M.check(status, level)
  if status ~= 0 then error(M.last_error(status), (level or 1) + 1) end
end

M.dtype = {
  F32 = C.TM_F32, F16 = C.TM_F16, BF16 = C.TM_BF16, I32 = C.TM_I32, I64 = C.TM_I64,
  I16 = C.TM_I16, I8 = C.TM_I8, U8 = C.TM_U8, BOOL = C.TM_BOOL, F64 = C.TM_F64,
}

function M.dtype_name(d) return ffi.string(C.tm_dtype_name(d)) end

function M.version() return ffi.string(C.tm_version()) end

-- Free and total bytes of the current CUDA device, or nil, err (no CUDA).
function M.cuda_memory()
  local f, t = ffi.new("int64_t[1]"), ffi.new("int64_t[1]")
  local s = C.tm_cuda_memory(f, t)
  if s ~= 0 then return nil, M.last_error(s) end
  return tonumber(f[0]), tonumber(t[0])
end

return M
