-- Load a running server: N concurrent streaming clients, a fixed count of requests; req/s and latency percentiles.
local args = require("tmrun.util.args")
local client = require("tmrun.server.client")
local cjson = require("cjson")
local uv = require("luv")

local opts = args.parse(arg, {
  usage = "tmrun bench_serve.lua http://localhost:23333 [--concurrency 16] [--requests 128] [--max-tokens 32]",
  positional = { "url" },
  options = {
    concurrency = { type = "int", default = 16, min = 1, max = 4096, help = "clients at once" },
    requests = { type = "int", default = 128, min = 1, max = 1e7, help = "requests in all" },
    ["max-tokens"] = { type = "int", default = 32, min = 1, max = 1e6, help = "tokens per reply (ignore_eos)" },
    model = { type = "string", help = "model name (default: the server's first)" },
    ["api-key"] = { type = "string" },
  },
})
local host, port, base = client.parse_url(opts.url or "http://127.0.0.1:23333")
if not host then error(port) end
base = base:gsub("/+$", "")
local headers = { ["Content-Type"] = "application/json" }
if opts.api_key then headers.Authorization = "Bearer " .. opts.api_key end

local function now() return uv.hrtime() / 1e9 end

local model = opts.model
if not model then
  local st, body = client.fetch({ host = host, port = port, path = base .. "/v1/models", headers = headers })
  if st ~= 200 then error("GET /v1/models: " .. tostring(st) .. " " .. tostring(body)) end
  model = cjson.decode(body).data[1].id
end

local ttft, tpot, latency = {}, {}, {}
local started, done, failed, tokens = 0, 0, 0, 0
local t_begin = now()

local function launch()
  if started >= opts.requests then return end
  started = started + 1
  local i = started
  local t0, first, last, n = now(), nil, nil, 0
  local pending = ""
  client.request({
    host = host, port = port, method = "POST", path = base .. "/v1/chat/completions", headers = headers,
    body = cjson.encode({ model = model, stream = true, max_tokens = opts.max_tokens, ignore_eos = true,
      temperature = 0.7, seed = i, messages = { { role = "user", content = "Tell me a story, number " .. i } } }),
    on_data = function(d)
      pending = pending .. d
      for line in pending:gmatch("([^\n]*)\n") do
        if line:find('"content"', 1, true) then
          local t = now()
          if not first then first = t else tpot[#tpot + 1] = t - last end
          last = t
          n = n + 1
        end
      end
      pending = pending:match("[^\n]*$")
    end,
    on_done = function(status, _, err)
      done = done + 1
      if status ~= 200 or err then failed = failed + 1
      else
        tokens = tokens + n
        if first then ttft[#ttft + 1] = first - t0 end
        latency[#latency + 1] = now() - t0
      end
      launch()
    end,
  })
end

for _ = 1, math.min(opts.concurrency, opts.requests) do launch() end
while done < opts.requests do uv.run("once") end
local wall = now() - t_begin

local function pct(t, p)
  if #t == 0 then return 0 end
  table.sort(t)
  return t[math.max(1, math.ceil(#t * p))]
end

print(string.format("# tmrun bench_serve: %s, model %s, %d requests, %d concurrent, %d tokens each",
  opts.url or "http://127.0.0.1:23333", model, opts.requests, opts.concurrency, opts.max_tokens))
print()
print("| concurrency | requests | failed | req/s | output tok/s | TTFT p50 ms | TTFT p99 ms | per-token p50 ms | per-token p99 ms |")
print("|---|---|---|---|---|---|---|---|---|")
print(string.format("| %d | %d | %d | %.2f | %.1f | %.1f | %.1f | %.2f | %.2f |", opts.concurrency, opts.requests, failed,
  (opts.requests - failed) / wall, tokens / wall, pct(ttft, 0.5) * 1e3, pct(ttft, 0.99) * 1e3,
  pct(tpot, 0.5) * 1e3, pct(tpot, 0.99) * 1e3))
