-- tmrun.util.fs: the few file-system calls the Lua side needs (through luv).
local uv = require("luv")

local M = {}

function M.exists(path) return uv.fs_stat(path) ~= nil end

function M.is_dir(path)
  local st = uv.fs_stat(path)
  return st ~= nil and st.type == "directory"
end

function M.is_file(path)
  local st = uv.fs_stat(path)
  return st ~= nil and st.type == "file"
end

-- The whole file, or nil, err.
function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

-- Writes through a temporary file renamed into place, so readers never see half a file.
function M.write(path, data)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(data)
  f:close()
  if not ok then os.remove(tmp) return nil, werr end
  local rok, rerr = os.rename(tmp, path)
  if not rok then os.remove(tmp) return nil, rerr end
  return true
end

function M.mkdir_p(path)
  local acc = path:sub(1, 1) == "/" and "" or "."
  for part in path:gmatch("[^/]+") do
    acc = acc .. "/" .. part
    if not M.is_dir(acc) then
      local ok, err = uv.fs_mkdir(acc, tonumber("755", 8))
      if not ok and not M.is_dir(acc) then return nil, err end
    end
  end
  return true
end

-- Names in a folder, sorted.
function M.list(path)
  local req, err = uv.fs_scandir(path)
  if not req then return nil, err end
  local names = {}
  while true do
    local name = uv.fs_scandir_next(req)
    if not name then break end
    names[#names + 1] = name
  end
  table.sort(names)
  return names
end

function M.copy(src, dst)
  local ok, err = uv.fs_copyfile(src, dst)
  if not ok then return nil, err end
  return true
end

function M.join(a, b)
  if a:sub(-1) == "/" then return a .. b end
  return a .. "/" .. b
end

-- Removes a folder tree (tests and temporary workspaces only).
function M.rm_rf(path)
  local st = uv.fs_lstat(path)
  if not st then return true end
  if st.type == "directory" then
    for _, name in ipairs(M.list(path) or {}) do M.rm_rf(M.join(path, name)) end
    return uv.fs_rmdir(path)
  end
  return uv.fs_unlink(path)
end

return M
