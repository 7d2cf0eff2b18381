-- Terminal chat with a model (stateful: only the new turn is sent each time).
local args = require("tmrun.util.args")
local cli = require("tmrun.util.cli")

local opts = args.parse(arg, {
  usage = "tmrun chat.lua [MODEL] [--chat-template NAME|FILE.lua|jinja] [--temperature T] [--top-p P] [--top-k K]",
  positional = { "model" },
  options = cli.with_engine_options({
    ["chat-template"] = { type = "string", help = "a built-in name, a .lua template file, or jinja (the model's own)" },
    temperature = { type = "number", default = 0.8, min = 0, max = 100 },
    ["top-p"] = { type = "number", default = 0.95, min = 1e-9, max = 1 },
    ["top-k"] = { type = "int", default = 40, min = 0 },
    ["repetition-penalty"] = { type = "number", default = 1.05, min = 1e-9, max = 100 },
    ["max-new-tokens"] = { type = "int", default = 512, min = 1, max = 2 ^ 24 },
    seed = { type = "int", min = 0, help = "sampling seed (default: from the clock)" },
    system = { type = "string", help = "a system prompt" },
  }),
})

local eng, path = cli.open_engine(opts, { max_batch_size = 1 })

local ok, session = pcall(eng.session, eng, {
  template = opts.chat_template, system = opts.system,
  max_new_tokens = opts.max_new_tokens, temperature = opts.temperature, top_p = opts.top_p, top_k = opts.top_k,
  repetition_penalty = opts.repetition_penalty, seed = opts.seed or os.time(),
})
if not ok then
  io.stderr:write("error: ", tostring(session), "\n")
  os.exit(1)
end

io.write(string.format("tmrun chat: %s (template %s). A blank line sends; 'reset' starts over; 'exit' quits.\n",
  path, session.template.name or "?"))

-- Reads lines up to a blank one; nil at end of input.
local function read_turn()
  local lines = {}
  io.write("\ndouble enter to end input >>> ")
  io.flush()
  while true do
    local line = io.read("*l")
    if line == nil then return #lines > 0 and table.concat(lines, "\n") or nil end
    if line == "" and #lines > 0 then return table.concat(lines, "\n") end
    if line ~= "" then lines[#lines + 1] = line end
    if #lines == 1 and (line == "exit" or line == "reset") then return line end
  end
end

while true do
  local text = read_turn()
  if text == nil or text == "exit" then break end
  if text == "reset" then
    session:reset()
    io.write("(history cleared)\n")
  else
    io.write("\n")
    local okc, cerr = pcall(function()
      for chunk in session:stream(text) do
        io.write(chunk.text or "")
        io.flush()
        if chunk.finish_reason == "error" then io.write("\n[error: ", chunk.error or "?", "]") end
        if chunk.finish_reason == "length" and session.history_tokens >= eng.session_len then
          io.write("\n[the session is full: type reset]")
        end
      end
    end)
    if not okc then io.write("\n[error: ", tostring(cerr), "]\n") end
    io.write("\n")
  end
end
session:close()
eng:close()
