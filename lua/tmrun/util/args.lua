-- tmrun.util.args: command-line parsing for the bundled scripts.
--
--   local args = require("tmrun.util.args")
--   local opts = args.parse(arg, {
--     usage = "tmrun generate.lua --model DIR [options]",
--     positional = { "model_name", "hf_dir" },         -- optional names for positionals
--     options = {
--       model = { type = "string", required = true, help = "HF folder or workspace" },
--       ["max-new-tokens"] = { type = "int", default = 16, min = 0 },
--       ["ignore-eos"] = { type = "flag" },
--     },
--   })
-- Options are --name value or --name=value; keys come back with '-' as '_'.
-- A bad command line prints the error and the usage to stderr and exits 2.
local M = {}

local function fail(spec, msg)
  io.stderr:write("error: ", msg, "\n\n", M.usage(spec))
  os.exit(2)
end

function M.usage(spec)
  local lines = { "usage: " .. (spec.usage or "tmrun SCRIPT.lua [options]"), "" }
  local names = {}
  for name in pairs(spec.options or {}) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local o = spec.options[name]
    local left = "  --" .. name .. (o.type == "flag" and "" or " " .. (o.metavar or o.type:upper()))
    local right = o.help or ""
    if o.default ~= nil and o.type ~= "flag" then right = right .. " (default " .. tostring(o.default) .. ")" end
    if o.required then right = right .. " (required)" end
    lines[#lines + 1] = string.format("%-34s %s", left, right)
  end
  return table.concat(lines, "\n") .. "\n"
end

local function convert(spec, name, o, raw)
  if o.type == "string" then
    if o.choices then
      for _, c in ipairs(o.choices) do if c == raw then return raw end end
      fail(spec, string.format("--%s must be one of %s, got %q", name, table.concat(o.choices, "|"), raw))
    end
    return raw
  end
  if o.type == "bool" then
    if raw == "true" or raw == "1" then return true end
    if raw == "false" or raw == "0" then return false end
    fail(spec, string.format("--%s must be true or false, got %q", name, raw))
  end
  local v = tonumber(raw)
  if not v or v ~= v then fail(spec, string.format("--%s needs a number, got %q", name, raw)) end
  if o.type == "int" and v ~= math.floor(v) then
    fail(spec, string.format("--%s needs an integer, got %q", name, raw))
  end
  if (o.min and v < o.min) or (o.max and v > o.max) then
    fail(spec, string.format("--%s must be in [%s, %s], got %s", name, tostring(o.min or "-inf"),
      tostring(o.max or "inf"), raw))
  end
  return v
end

function M.parse(argv, spec)
  local options = spec.options or {}
  local out, positionals = {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "-h" or a == "--help" then
      io.stdout:write(M.usage(spec))
      os.exit(0)
    elseif a:sub(1, 2) == "--" and #a > 2 then
      local name, value = a:sub(3):match("^([^=]+)=(.*)$")
      name = name or a:sub(3)
      local o = options[name]
      if not o then fail(spec, "unknown option --" .. name) end
      if o.type == "flag" then
        if value then fail(spec, "--" .. name .. " takes no value") end
        out[name:gsub("-", "_")] = true
      else
        if not value then
          i = i + 1
          value = argv[i]
          if value == nil then fail(spec, "--" .. name .. " needs a value") end
        end
        out[name:gsub("-", "_")] = convert(spec, name, o, value)
      end
    else
      positionals[#positionals + 1] = a
    end
    i = i + 1
  end
  local pnames = spec.positional or {}
  if #positionals > #pnames and not spec.varargs then
    fail(spec, "unexpected argument " .. positionals[#pnames + 1])
  end
  for k, pname in ipairs(pnames) do out[pname] = positionals[k] end
  out._positional = positionals
  for name, o in pairs(options) do
    local key = name:gsub("-", "_")
    if out[key] == nil then
      if o.required then fail(spec, "missing --" .. name) end
      if o.type == "flag" then out[key] = false else out[key] = o.default end
    end
  end
  return out
end

return M
