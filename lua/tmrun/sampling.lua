-- tmrun.sampling: sampling policies, Lua values that compose the C sampler pipeline.
--
--   local sampling = require("tmrun.sampling")
--   local p = sampling.policy{ temperature = 0.7, top_p = 0.8, repetition_penalty = 1.05 }
--   engine:generate("Once upon", { policy = p, max_new_tokens = 32 })
--   sampling.greedy, sampling.creative, sampling.precise     -- presets
--   p:with{ seed = 7 }                                       -- a copy with changes
--
-- A policy may also be a function(request) returning such a table: it runs once per
-- request (never per token; per-token Lua logic uses session:step(), the slow path).
local tmffi = require("tmrun.ffi")
local ffi, C = tmffi.ffi, tmffi.C

local M = {}

local Policy = {}
Policy.__index = Policy

-- field -> { lo, hi, integer }
local FIELDS = {
  temperature = { 0, 100 },
  top_k = { 0, 2 ^ 31 - 1, true },
  top_p = { 1e-9, 1 },
  min_p = { 0, 1 },
  repetition_penalty = { 1e-9, 100 },
  presence_penalty = { -2, 2 },
  frequency_penalty = { -2, 2 },
  seed = { 0, 2 ^ 53, true },
}

-- Checks one field; returns the value or nil, "message".
function M.check(name, v)
  if name == "logit_bias" then
    if type(v) ~= "table" then return nil, "logit_bias must be a table of id = bias" end
    local n = 0
    for id, b in pairs(v) do
      n = n + 1
      if type(id) ~= "number" or id ~= math.floor(id) or id < 0 then
        return nil, "logit_bias keys must be token ids (non-negative integers), got " .. tostring(id)
      end
      if type(b) ~= "number" or b ~= b or b < -100 or b > 100 then
        return nil, "logit_bias values must be numbers in [-100, 100], got " .. tostring(b)
      end
    end
    if n > 1024 then return nil, "logit_bias may hold at most 1024 entries, got " .. n end
    return v
  end
  local rule = FIELDS[name]
  if not rule then return nil, "unknown sampling field " .. tostring(name) end
  if type(v) ~= "number" or v ~= v then return nil, name .. " must be a number, got " .. tostring(v) end
  if rule[3] and v ~= math.floor(v) then return nil, name .. " must be an integer, got " .. tostring(v) end
  if v < rule[1] or v > rule[2] then
    return nil, string.format("%s must be in [%s, %s], got %s", name, tostring(rule[1]), tostring(rule[2]), tostring(v))
  end
  return v
end

-- A policy from a table of fields (unset fields keep greedy defaults).
function M.policy(fields)
  if type(fields) ~= "table" then error("sampling.policy needs a table of fields", 2) end
  local p = setmetatable({}, Policy)
  for k, v in pairs(fields) do
    local ok, err = M.check(k, v)
    if ok == nil then error(err, 2) end
    p[k] = v
  end
  return p
end

function Policy:with(changes)
  local merged = {}
  for k, v in pairs(self) do merged[k] = v end
  for k, v in pairs(changes or {}) do merged[k] = v end
  return M.policy(merged)
end

M.greedy = M.policy({ temperature = 0 })
M.precise = M.policy({ temperature = 0.3, top_p = 0.9, top_k = 40, repetition_penalty = 1.05 })
M.creative = M.policy({ temperature = 0.9, top_p = 0.95, top_k = 100, repetition_penalty = 1.1 })

-- Fills a tm_sampling_params from a policy (or plain table, or function of req).
-- Returns keep-alive cdata (the logit bias arrays) that must live until submit.
function M.fill(params, policy, req)
  local p = C.tm_sampling_default_params()
  if type(policy) == "function" then policy = policy(req or {}) end
  local keep
  for k, v in pairs(policy or {}) do
    if k == "logit_bias" then
      local ids, vals, n = {}, {}, 0
      for id, b in pairs(v) do
        n = n + 1
        ids[n], vals[n] = id, b
      end
      if n > 0 then
        local cids, cvals = ffi.new("int32_t[?]", n), ffi.new("float[?]", n)
        for i = 1, n do cids[i - 1], cvals[i - 1] = ids[i], vals[i] end
        p.logit_bias_ids, p.logit_bias_values, p.n_logit_bias = cids, cvals, n
        keep = { cids, cvals }
      end
    elseif FIELDS[k] then
      p[k] = v
    end
  end
  params.sampling = p
  return keep
end

return M
