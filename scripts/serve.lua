-- OpenAI-compatible API server (and LMDeploy's interactive API, web chat, Swagger page).
local args = require("tmrun.util.args")
local cli = require("tmrun.util.cli")
local uv = require("luv")

local opts = args.parse(arg, {
  usage = "tmrun serve.lua [MODEL] [--server-name 0.0.0.0] [--server-port 23333] [--instance-num 64] [--tp 1] "
    .. "[--model-name NAME] [--api-keys K1,K2] [--backend cpu|cuda]",
  positional = { "model" },
  options = cli.with_engine_options({
    ["server-name"] = { type = "string", default = "0.0.0.0", help = "address to listen on" },
    ["server-port"] = { type = "int", default = 23333, min = 0, max = 65535, help = "port (0: any free port)" },
    ["instance-num"] = { type = "int", default = 64, min = 1, max = 4096, help = "max_batch_size: sequences decoded together" },
    tp = { type = "int", default = 1, min = 1, max = 1, help = "tensor-parallel ranks (the CPU backend runs 1)" },
    ["model-name"] = { type = "string", help = "the name clients ask for (default: config's model_name or the folder name)" },
    ["api-keys"] = { type = "string", help = "comma-separated keys; when set, /v1/* needs Authorization: Bearer KEY" },
    ["chat-template"] = { type = "string", help = "a built-in name, a .lua file, or jinja (the model's own)" },
    ["cache-max-entry-count"] = { type = "number", min = 0, help = "KV pool: fraction of free memory (<= 1) or blocks (> 1)" },
    ["cache-block-seq-len"] = { type = "int", min = 1, max = 4096, help = "tokens per KV block" },
    ["max-prefill-token-num"] = { type = "int", default = 8192, min = 1, help = "prompt tokens per step" },
    ["max-queue"] = { type = "int", default = 1024, min = 1, help = "queued requests before 503" },
    ["max-body-bytes"] = { type = "int", default = 8 * 1024 * 1024, min = 1024, help = "request body limit" },
    ["max-connections"] = { type = "int", default = 512, min = 1, help = "open connections limit" },
  }),
})

local eng, path = cli.open_engine(opts, {
  max_batch_size = opts.instance_num, cache_max_entry_count = opts.cache_max_entry_count,
  cache_block_seq_len = opts.cache_block_seq_len, max_prefill_token_num = opts.max_prefill_token_num,
})

local name = opts.model_name
if not name or name == "" then
  name = eng.model.cfg.model_name
  if not name or name == "" then name = path:gsub("/+$", ""):match("([^/]+)$") or "model" end
end
local keys = {}
for k in (opts.api_keys or ""):gmatch("[^,%s]+") do keys[#keys + 1] = k end

local app, aerr = require("tmrun.server.app").new({
  engine = eng, model_name = name, api_keys = keys, chat_template = opts.chat_template,
  max_queue = opts.max_queue, web_root = TMRUN_HOME .. "/web",
})
if not app then
  io.stderr:write("error: ", aerr, "\n")
  os.exit(1)
end

local http = require("tmrun.server.http")
local srv, serr = http.server({
  host = opts.server_name, port = opts.server_port,
  limits = { max_body_bytes = opts.max_body_bytes, max_connections = opts.max_connections },
  handler = function(req, res) app:handle(req, res) end,
  on_error = function(msg) io.stderr:write("tmrun serve: ", tostring(msg), "\n") end,
})
if not srv then
  io.stderr:write("error: cannot listen on ", opts.server_name, ":", opts.server_port, ": ", tostring(serr), "\n")
  os.exit(1)
end
app.http = srv

local shown = opts.server_name == "0.0.0.0" and "localhost" or opts.server_name
io.stderr:write(string.format("tmrun serve: %s (%s, %d layers, session_len %d, batch %d) on http://%s:%d\n",
  name, path, eng.model.cfg.num_layer, eng.session_len, opts.instance_num, shown, srv.port))
io.stderr:write(string.format("  chat page http://%s:%d/chat   API docs http://%s:%d/docs   template %s\n",
  shown, srv.port, shown, srv.port, app.template.name or "?"))
io.stdout:write(string.format("listening on %d\n", srv.port))
io.stdout:flush()

local function stop()
  srv:close()
  app:close()
  uv.stop()
end
for _, sig in ipairs({ "sigint", "sigterm" }) do
  local h = uv.new_signal()
  h:start(sig, stop)
end
uv.run()
-- close what is left and let libuv finish pending closes before Lua goes away
uv.walk(function(h) if not h:is_closing() then h:close() end end)
uv.run()
eng:close()
