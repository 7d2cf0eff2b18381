-- tmrun.server.params: request validation shared by the endpoints.  Each check
-- raises an errors.new(400, message, param) naming the field and its rule.
local cjson = require("cjson")
local errors = require("tmrun.server.errors")

local M = {}

local function fail(param, fmt, ...)
  error(errors.new(400, string.format(fmt, ...), param), 0)
end
M.fail = fail

local function is_null(v) return v == nil or v == cjson.null end
M.is_null = is_null

-- Parses the body as a JSON object (depth-limited, no NaN/Infinity).
function M.json_body(req)
  -- the content-type is not checked: `curl -d` sends form-urlencoded with a JSON body
  if req.body == "" then fail(nil, "the request body is empty: send a JSON object") end
  local ok, v = pcall(cjson.decode, req.body)
  if not ok then fail(nil, "the body is not valid JSON: %s", tostring(v):gsub("^.-: ", "")) end
  if type(v) ~= "table" or (next(v) == nil and req.body:match("^%s*%[")) or v[1] ~= nil then
    fail(nil, "the body must be a JSON object")
  end
  return v
end

function M.number(body, key, lo, hi, default, integer)
  local v = body[key]
  if is_null(v) then return default end
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then
    fail(key, "%s must be a number, got %s", key, type(v) == "number" and tostring(v) or type(v))
  end
  if integer and v ~= math.floor(v) then fail(key, "%s must be an integer, got %s", key, tostring(v)) end
  if v < lo or v > hi then
    fail(key, "%s must be in [%s, %s], got %s", key, tostring(lo), tostring(hi), tostring(v))
  end
  return v
end

function M.int(body, key, lo, hi, default) return M.number(body, key, lo, hi, default, true) end

function M.bool(body, key, default)
  local v = body[key]
  if is_null(v) then return default end
  if type(v) ~= "boolean" then fail(key, "%s must be true or false, got %s", key, type(v)) end
  return v
end

function M.string(body, key, default)
  local v = body[key]
  if is_null(v) then return default end
  if type(v) ~= "string" then fail(key, "%s must be a string, got %s", key, type(v)) end
  return v
end

-- stop: a string or a list of up to 16 non-empty strings of at most 256 bytes.
function M.stop(body, key)
  local v = body[key or "stop"]
  if is_null(v) then return nil end
  if type(v) == "string" then v = { v } end
  if type(v) ~= "table" or (next(v) ~= nil and v[1] == nil) then fail("stop", "stop must be a string or a list of strings") end
  if #v > 16 then fail("stop", "stop may hold at most 16 strings, got %d", #v) end
  for i, s in ipairs(v) do
    if type(s) ~= "string" or #s < 1 or #s > 256 then
      fail("stop", "stop[%d] must be a string of 1 to 256 bytes", i - 1)
    end
  end
  return #v > 0 and v or nil
end

-- logit_bias: { "token id": bias in [-100, 100] }, ids checked against vocab.
function M.logit_bias(body, vocab)
  local v = body.logit_bias
  if is_null(v) then return nil end
  if type(v) ~= "table" or v[1] ~= nil then fail("logit_bias", "logit_bias must be an object of token id to bias") end
  local out, n = {}, 0
  for k, b in pairs(v) do
    local id = tonumber(k)
    if not id or id ~= math.floor(id) or id < 0 or id >= vocab or tostring(k):find("[^%d]") then
      fail("logit_bias", "logit_bias keys must be token ids in [0, %d), got %s", vocab, errors.clean_utf8(k))
    end
    if type(b) ~= "number" or b ~= b or b < -100 or b > 100 then
      fail("logit_bias", "logit_bias[%s] must be a number in [-100, 100]", k)
    end
    out[id] = b
    n = n + 1
  end
  if n > 1024 then fail("logit_bias", "logit_bias may hold at most 1024 entries, got %d", n) end
  return n > 0 and out or nil
end

-- Rejects fields outside `known` (a set), as the OpenAI API does.
function M.known_fields(body, known, what)
  for k in pairs(body) do
    if not known[k] then fail(k, "unrecognized request argument supplied to %s: %s", what, errors.clean_utf8(k)) end
  end
end

return M
