-- tmrun.server.metrics: counters, gauges and latency histograms in Prometheus'
-- text exposition format (GET /metrics).
local M = {}

local Metrics = {}
Metrics.__index = Metrics

local BUCKETS = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 }

local function histogram()
  local h = { counts = {}, sum = 0, n = 0 }
  for i = 1, #BUCKETS do h.counts[i] = 0 end
  return h
end

function M.new()
  return setmetatable({
    requests = {},          -- ["endpoint|status"] = n
    prompt_tokens = 0,
    generation_tokens = 0,
    ttft = histogram(),     -- time to first token
    tpot = histogram(),     -- time per output token after the first
    latency = histogram(),  -- whole request
  }, Metrics)
end

function Metrics:observe(h, v)
  h = self[h]
  h.n = h.n + 1
  h.sum = h.sum + v
  for i, b in ipairs(BUCKETS) do if v <= b then h.counts[i] = h.counts[i] + 1 end end
end

function Metrics:count_request(endpoint, status)
  local key = endpoint .. "|" .. tostring(status)
  self.requests[key] = (self.requests[key] or 0) + 1
end

local function emit_hist(out, name, help, h)
  out[#out + 1] = string.format("# HELP %s %s\n# TYPE %s histogram", name, help, name)
  for i, b in ipairs(BUCKETS) do out[#out + 1] = string.format('%s_bucket{le="%g"} %d', name, b, h.counts[i]) end
  out[#out + 1] = string.format('%s_bucket{le="+Inf"} %d', name, h.n)
  out[#out + 1] = string.format("%s_sum %.6f\n%s_count %d", name, h.sum, name, h.n)
end

-- The exposition text; stats: the engine's stats table.
function Metrics:render(stats, server_stats)
  local out = {}
  out[#out + 1] = "# HELP tmrun_requests_total HTTP requests by endpoint and status.\n# TYPE tmrun_requests_total counter"
  local keys = {}
  for k in pairs(self.requests) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local ep, st = k:match("^(.*)|(.*)$")
    out[#out + 1] = string.format('tmrun_requests_total{endpoint="%s",status="%s"} %d', ep, st, self.requests[k])
  end
  local function metric(name, kind, help, v)
    out[#out + 1] = string.format("# HELP %s %s\n# TYPE %s %s\n%s %s", name, help, name, kind, name, tostring(v))
  end
  metric("tmrun_prompt_tokens_total", "counter", "Prompt tokens of finished requests.", self.prompt_tokens)
  metric("tmrun_generation_tokens_total", "counter", "Generated tokens of finished requests.", self.generation_tokens)
  metric("tmrun_queue_length", "gauge", "Requests waiting to start.", stats.queued)
  metric("tmrun_running_sequences", "gauge", "Sequences in the batch.", stats.running)
  metric("tmrun_sessions", "gauge", "Sessions kept by the engine.", stats.sessions)
  metric("tmrun_kv_blocks_used", "gauge", "KV cache blocks in use.", stats.blocks_used)
  metric("tmrun_kv_blocks_free", "gauge", "KV cache blocks free.", stats.blocks_free)
  metric("tmrun_engine_steps_total", "counter", "Forward passes.", stats.steps)
  metric("tmrun_preemptions_total", "counter", "Sequences preempted for memory.", stats.preemptions)
  metric("tmrun_evictions_total", "counter", "Cached sessions whose KV was dropped.", stats.evictions)
  metric("tmrun_http_connections", "gauge", "Open HTTP connections.", server_stats and server_stats.connections or 0)
  emit_hist(out, "tmrun_time_to_first_token_seconds", "Time from request to first token.", self.ttft)
  emit_hist(out, "tmrun_time_per_output_token_seconds", "Time between output tokens.", self.tpot)
  emit_hist(out, "tmrun_request_latency_seconds", "Time from request to its end.", self.latency)
  return table.concat(out, "\n") .. "\n"
end

return M
