-- Tokenize JSON strings (one a line) to JSON id arrays, or decode id arrays (--decode).
--
--   tmrun tokenize.lua --tokenizer DIR_OR_FILE --jsonl FILE [--no-special] [--decode]
--   tmrun tokenize.lua --tokenizer DIR_OR_FILE --render-chat FILE.json [--add-generation-prompt]
--
-- Stable interface (tests and other tools parse it): every input line is one JSON
-- value; every output line is one JSON value, formatted as JavaScript's
-- JSON.stringify does, so the output compares byte for byte with the reference.
-- --jsonl -: read stdin.  --no-special: no BOS/EOS added.  --decode: input lines
-- are arrays of ids, output lines are strings.  --render-chat FILE: a JSON array of
-- conversations (each an array of {role, content}) rendered with the chat template of
-- the tokenizer's folder (tmrun.templates.render_file); one JSON string a
-- conversation.  --add-generation-prompt: end each with the assistant's opening.
local cjson = require("cjson")
local tokenizer = require("tmrun.tokenizer")

local function usage(msg)
  io.stderr:write("tokenize.lua: ", msg, "\n",
    "usage: tmrun tokenize.lua --tokenizer DIR_OR_FILE --jsonl FILE [--no-special] [--decode]\n",
    "       tmrun tokenize.lua --tokenizer DIR_OR_FILE --render-chat FILE.json [--add-generation-prompt]\n")
  os.exit(2)
end

local function parse_args(argv)
  local opts = { special = true }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--tokenizer" or a == "--jsonl" or a == "--render-chat" then
      if not argv[i + 1] then usage(a .. " needs a value") end
      opts[a:sub(3):gsub("-", "_")] = argv[i + 1]
      i = i + 2
    elseif a == "--no-special" then
      opts.special = false
      i = i + 1
    elseif a == "--decode" then
      opts.decode = true
      i = i + 1
    elseif a == "--add-generation-prompt" then
      opts.add_generation_prompt = true
      i = i + 1
    else
      usage("unknown argument " .. a)
    end
  end
  return opts
end

-- JSON.stringify's string form: escapes ", \ and control characters only.
local short_escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == "\127" then return c end
    return short_escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function lines_of(path)
  if path == "-" then return io.lines() end
  local f, err = io.open(path, "rb")
  if not f then
    io.stderr:write("tokenize.lua: ", err, "\n")
    os.exit(1)
  end
  return f:lines()
end

local function main(argv)
  local opts = parse_args(argv)
  if not opts.tokenizer then usage("--tokenizer is required") end
  if opts.render_chat then
    local ok, templates = pcall(require, "tmrun.templates")
    if not ok or type(templates) ~= "table" or type(templates.render_file) ~= "function" then
      io.stderr:write("tokenize.lua: chat templates not available\n")
      os.exit(1)
    end
    local dir = opts.tokenizer
    if dir:match("%.json$") or dir:match("%.model$") then dir = dir:match("^(.*)/[^/]*$") or "." end
    local rendered, rerr = templates.render_file(dir, opts.render_chat, opts.add_generation_prompt == true)
    if not rendered then
      io.stderr:write("tokenize.lua: ", tostring(rerr), "\n")
      os.exit(1)
    end
    for _, text in ipairs(rendered) do io.stdout:write(json_string(text), "\n") end
    return
  end
  if not opts.jsonl then usage("--jsonl is required") end
  local tok, err = tokenizer.load(opts.tokenizer)
  if not tok then
    io.stderr:write("tokenize.lua: ", err, "\n")
    os.exit(1)
  end
  local out = io.stdout
  local n = 0
  for line in lines_of(opts.jsonl) do
    n = n + 1
    if line:match("%S") then
      local ok, v = pcall(cjson.decode, line)
      if not ok then
        io.stderr:write(string.format("tokenize.lua: %s:%d: %s\n", opts.jsonl, n, v))
        os.exit(1)
      end
      if opts.decode then
        if type(v) ~= "table" then usage(string.format("line %d is not an array of ids", n)) end
        out:write(json_string(tok:decode(v)), "\n")
      else
        if type(v) ~= "string" then usage(string.format("line %d is not a JSON string", n)) end
        local buf, count = tok:encode_raw(v, opts.special)
        local parts = {}
        for i = 0, count - 1 do parts[i + 1] = tostring(buf[i]) end
        out:write("[", table.concat(parts, ","), "]\n")
      end
    end
  end
  tok:close()
end

main(arg)
