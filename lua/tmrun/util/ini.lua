-- tmrun.util.ini: config.ini read and write (sections of key = value lines).
local M = {}

-- Parses text into { section = { key = "value" } , _order = { section = {keys...} } }.
-- Returns nil, "file:line: reason" on a malformed line.
function M.parse(text, what)
  what = what or "config.ini"
  local out, order, section = {}, {}, nil
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", "")
    local stripped = line:match("^%s*(.-)%s*$")
    if stripped == "" or stripped:match("^[#;]") then
      -- blank or comment
    elseif stripped:match("^%[.*%]$") then
      section = stripped:match("^%[%s*(.-)%s*%]$")
      if section == "" then return nil, string.format("%s:%d: empty section name", what, n) end
      out[section] = out[section] or {}
      order[section] = order[section] or {}
    else
      local key, value = stripped:match("^([^=]-)%s*=%s*(.*)$")
      if not key or key == "" then
        return nil, string.format("%s:%d: expected 'key = value', got %q", what, n, stripped)
      end
      if not section then return nil, string.format("%s:%d: key %q before any [section]", what, n, key) end
      if out[section][key] ~= nil then
        return nil, string.format("%s:%d: key %q repeated in [%s]", what, n, key, section)
      end
      out[section][key] = value
      table.insert(order[section], key)
    end
  end
  out._order = order
  return out
end

-- sections: list of { name = "llama", keys = { {"head_num", 32}, ... } }
function M.format(sections)
  local lines = {}
  for _, s in ipairs(sections) do
    lines[#lines + 1] = "[" .. s.name .. "]"
    for _, kv in ipairs(s.keys) do
      local v = kv[2]
      if type(v) == "boolean" then v = v and 1 or 0 end
      lines[#lines + 1] = kv[1] .. " = " .. tostring(v)
    end
    lines[#lines + 1] = ""
  end
  return table.concat(lines, "\n")
end

return M
