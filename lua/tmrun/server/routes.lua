-- tmrun.server.routes: which handler serves which METHOD /path.
local cjson = require("tmrun.util.json")
local openai = require("tmrun.server.openai")
local interactive = require("tmrun.server.interactive")
local tokenize = require("tmrun.server.tokenize")
local openapi = require("tmrun.server.openapi")

local M = {}

local function health(app, req, res) app:json(res, 200, { status = "ok" }) end

local function metrics(app, req, res)
  res:send(200, { ["content-type"] = "text/plain; version=0.0.4" },
    app.metrics:render(app.engine:stats(), app.http and app.http.stats))
end

local function openapi_json(app, req, res)
  res:send(200, { ["content-type"] = "application/json" }, cjson.encode(openapi.document(app)))
end

-- Static pages (the landing page, /chat, /docs) from web/, when it exists.
local function static_chain(web_root)
  local ok, static = pcall(require, "tmrun.server.static")
  if not ok or not web_root then return nil end
  local handlers = {}
  for _, prefix in ipairs({ "/chat", "/docs", "/assets" }) do
    handlers[#handlers + 1] = static.handler(web_root .. prefix, prefix)
  end
  local index = static.handler(web_root, "/")
  return function(req, res)
    for _, h in ipairs(handlers) do if h(req, res) then return true end end
    if req.path == "/" or req.path == "/index.html" then return index(req, res) end
    return false
  end
end

function M.table(app, opts)
  local t = {
    ["GET /health"] = { fn = health, auth = false },
    ["GET /metrics"] = { fn = metrics, auth = false },
    ["GET /openapi.json"] = { fn = openapi_json, auth = false },
    ["GET /v1/models"] = { fn = openai.models },
    ["POST /v1/chat/completions"] = { fn = openai.chat },
    ["POST /v1/completions"] = { fn = openai.completions },
    ["POST /v1/chat/interactive"] = { fn = interactive.handle },
    ["POST /v1/encode"] = { fn = tokenize.encode },
    ["POST /v1/tokenize"] = { fn = tokenize.tokenize },
    ["POST /v1/detokenize"] = { fn = tokenize.detokenize },
  }
  t.static = static_chain(opts.web_root)
  return t
end

return M
