-- Terminal chat against a running tmrun (or LMDeploy) server, through its interactive API.
local args = require("tmrun.util.args")
local client = require("tmrun.server.client")
local cjson = require("cjson")
local uv = require("luv")

local opts = args.parse(arg, {
  usage = "tmrun api_client.lua http://localhost:23333 [--api-key KEY] [--temperature T] [--max-new-tokens N]",
  positional = { "url" },
  options = {
    ["api-key"] = { type = "string", help = "sent as Authorization: Bearer KEY" },
    temperature = { type = "number", default = 0.8, min = 0, max = 2 },
    ["top-p"] = { type = "number", default = 0.8, min = 1e-9, max = 1 },
    ["top-k"] = { type = "int", default = 40, min = 0 },
    ["max-new-tokens"] = { type = "int", default = 512, min = 1 },
    ["session-id"] = { type = "int", min = 1, help = "continue this session (default: a new one)" },
  },
})
if not opts.url then
  io.stderr:write("error: need the server URL, e.g. http://localhost:23333\n")
  os.exit(2)
end
local host, port, base = client.parse_url(opts.url)
if not host then
  io.stderr:write("error: ", port, "\n")
  os.exit(2)
end
base = base:gsub("/+$", "")
math.randomseed(os.time() + uv.hrtime() % 1000000)
local session_id = opts.session_id or math.random(1, 2 ^ 31 - 1)
local headers = { ["Content-Type"] = "application/json" }
if opts.api_key then headers["Authorization"] = "Bearer " .. opts.api_key end

-- POSTs one interactive request, calling on_obj for every JSON line of the answer.
local function interactive(body, on_obj)
  local pending = ""
  local status, err = client.fetch({
    host = host, port = port, method = "POST", path = base .. "/v1/chat/interactive", headers = headers,
    body = cjson.encode(body),
    on_data = function(d)
      pending = pending .. d
      for line in pending:gmatch("([^\n]*)\n") do
        local ok, obj = pcall(cjson.decode, line)
        if ok then on_obj(obj) end
      end
      pending = pending:match("[^\n]*$")
    end,
  })
  if pending ~= "" then
    local ok, obj = pcall(cjson.decode, pending)
    if ok then on_obj(obj) end
  end
  return status, err
end

io.write(string.format("tmrun api_client: %s, session %d. A blank line sends; 'reset' starts over; 'exit' quits.\n",
  opts.url, session_id))
while true do
  io.write("\ndouble enter to end input >>> ")
  io.flush()
  local lines = {}
  while true do
    local line = io.read("*l")
    if line == nil then break end
    if line == "" and #lines > 0 then break end
    if line ~= "" then lines[#lines + 1] = line end
    if #lines == 1 and (line == "exit" or line == "reset") then break end
  end
  local text = table.concat(lines, "\n")
  if #lines == 0 or text == "exit" then break end
  if text == "reset" then
    interactive({ session_id = session_id, prompt = "", interactive_mode = false, request_output_len = 0 }, function() end)
    session_id = math.random(1, 2 ^ 31 - 1)
    io.write("(history cleared)\n")
  else
    io.write("\n")
    local status, err = interactive({
      prompt = text, session_id = session_id, interactive_mode = true, stream = true,
      request_output_len = opts.max_new_tokens, temperature = opts.temperature, top_p = opts.top_p, top_k = opts.top_k,
    }, function(obj)
      if obj.error then
        io.write("[error: ", tostring(type(obj.error) == "table" and obj.error.message or obj.error), "]")
      elseif obj.text then
        io.write(obj.text)
      end
      io.flush()
    end)
    if not status then io.write("[error: ", tostring(err), "]") end
    io.write("\n")
  end
end
