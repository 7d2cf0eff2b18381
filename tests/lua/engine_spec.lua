-- The engine: continuous batching is exact, sessions equal re-sending the history,
-- memory pressure and cancellation lose nothing and leak no blocks, n > 1 is real.
local tm = require("tmrun")
local model = require("tmrun.model")

local DIR = TMRUN_HOME .. "/tests/data/goldens/llama3_gqa"

-- Deterministic pseudo-random numbers for the test's own choices.
local function rng(seed)
  local s = seed
  return function(lo, hi)
    s = (s * 1103515245 + 12345) % 2147483648
    return lo + s % (hi - lo + 1)
  end
end

local function ids_of(n, r)
  local t = {}
  for i = 1, n do t[i] = r(3, 255) end
  return t
end

local function same(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- Stats are published at the end of a step, just after its events: wait for the
-- step that delivered the last FINISH to publish.
local function settled(eng)
  local st
  for _ = 1, 200 do
    st = eng:stats()
    if st.blocks_free == st.blocks_total and st.running == 0 and st.queued == 0 then return st end
    require("luv").sleep(5)
  end
  return st
end

describe("engine", function()
  local m

  setup(function() m = assert(model.open(DIR, { overrides = { session_len = 256 } })) end)
  teardown(function() m:close() end)

  local function alone(prompt, n_new) return assert(m:greedy(prompt, n_new, { ignore_eos = true })) end

  local function engine(opts)
    opts.model = m
    return assert(tm.engine(opts))
  end

  it("gives 32 greedy requests submitted together exactly their solo output", function()
    local eng = engine({ max_batch_size = 32, cache_max_entry_count = 512, cache_block_seq_len = 8,
      max_prefill_token_num = 64 })
    local r = rng(1)
    local prompts, lens = {}, {}
    for i = 1, 32 do
      prompts[i] = ids_of(r(1, 90), r)
      lens[i] = r(1, 40)
    end
    local reqs = {}
    for i = 1, 32 do reqs[i] = assert(eng:submit(prompts[i], { max_new_tokens = lens[i], ignore_eos = true })) end
    for i = 1, 32 do
      local out = reqs[i]:collect()
      assert.is_true(same(alone(prompts[i], lens[i]), out.ids), "request " .. i)
      assert.are.equal("length", out.finish_reason)
      assert.are.equal(#prompts[i], out.usage.prompt_tokens)
    end
    local st = settled(eng)
    assert.are.equal(0, st.blocks_used)
    assert.is_true(st.steps < 32 * 40, "requests were batched")
    eng:close()
  end)

  it("gives requests arriving while others run their solo output", function()
    local eng = engine({ max_batch_size = 8, cache_max_entry_count = 256, cache_block_seq_len = 4 })
    local r = rng(2)
    local reqs, want = {}, {}
    for i = 1, 24 do
      local p, n = ids_of(r(1, 30), r), r(5, 30)
      want[i] = alone(p, n)
      reqs[i] = assert(eng:submit(p, { max_new_tokens = n, ignore_eos = true }))
      if i % 3 == 0 then require("luv").sleep(2) end -- let the batch move between arrivals
    end
    for i = 1, 24 do assert.is_true(same(want[i], reqs[i]:collect().ids), "request " .. i) end
    eng:close()
  end)

  it("continues a 5-turn session exactly like re-sending the whole history", function()
    local eng = engine({ max_batch_size = 4, cache_max_entry_count = 64, cache_block_seq_len = 8 })
    local r = rng(3)
    local history = {}
    local id = 77
    for turn = 1, 5 do
      local new = ids_of(r(2, 12), r)
      for _, t in ipairs(new) do history[#history + 1] = t end
      local out = assert(eng:generate(new, { session_id = id, interactive = true, max_new_tokens = 8, ignore_eos = true }))
      assert.is_true(same(alone(history, 8), out.ids), "turn " .. turn)
      assert.are.equal(#history - #new, out.usage.history_tokens)
      for _, t in ipairs(out.ids) do history[#history + 1] = t end
    end
    eng:end_session(id)
    eng:close()
  end)

  it("re-prefills an evicted session transparently", function()
    -- 6 blocks of 8 tokens: the session and a bystander cannot both stay cached
    local eng = engine({ max_batch_size = 2, cache_max_entry_count = 6, cache_block_seq_len = 8, session_len = 48 })
    local r = rng(4)
    local history = {}
    for turn = 1, 3 do
      local new = ids_of(6, r)
      for _, t in ipairs(new) do history[#history + 1] = t end
      local out = assert(eng:generate(new, { session_id = 5, interactive = true, max_new_tokens = 4, ignore_eos = true }))
      assert.is_true(same(alone(history, 4), out.ids), "turn " .. turn)
      for _, t in ipairs(out.ids) do history[#history + 1] = t end
      -- a one-shot request big enough to need the session's blocks
      local p = ids_of(30, r)
      assert.is_true(same(alone(p, 8), assert(eng:generate(p, { max_new_tokens = 8, ignore_eos = true })).ids))
    end
    local st = eng:stats()
    assert.is_true(st.evictions > 0, "the session was evicted")
    eng:close()
  end)

  it("completes every request when the pool is too small for all (preemption)", function()
    local eng = engine({ max_batch_size = 16, cache_max_entry_count = 2, cache_block_seq_len = 8, session_len = 64 })
    local r = rng(5)
    local reqs, want, prompts, lens = {}, {}, {}, {}
    for i = 1, 16 do
      prompts[i], lens[i] = ids_of(r(10, 30), r), r(10, 30)
      want[i] = alone(prompts[i], lens[i])
    end
    -- all at once, so they compete for the 8 blocks
    for i = 1, 16 do reqs[i] = assert(eng:submit(prompts[i], { max_new_tokens = lens[i], ignore_eos = true })) end
    for i = 1, 16 do assert.is_true(same(want[i], reqs[i]:collect().ids), "request " .. i) end
    local st = settled(eng)
    assert.are.equal(8, st.blocks_total) -- raised to one session_len sequence
    assert.is_true(st.preemptions > 0, "the newest sequences were preempted")
    assert.are.equal(st.blocks_total, st.blocks_free)
    eng:close()
  end)

  it("cancels half of 200 random requests at random moments and keeps the rest exact", function()
    local eng = engine({ max_batch_size = 16, cache_max_entry_count = 40, cache_block_seq_len = 4 })
    local r = rng(6)
    local reqs, prompts, lens, cancel = {}, {}, {}, {}
    for i = 1, 200 do
      prompts[i], lens[i] = ids_of(r(1, 20), r), r(1, 20)
      cancel[i] = r(0, 1) == 1
      reqs[i] = assert(eng:submit(prompts[i], { max_new_tokens = lens[i], ignore_eos = true }))
      if cancel[i] and r(0, 2) == 0 then reqs[i]:cancel() end
    end
    for i = 1, 200 do
      if cancel[i] then
        if r(0, 1) == 0 then require("luv").sleep(r(0, 2)) end
        reqs[i]:cancel()
      end
    end
    for i = 1, 200 do
      local out = reqs[i]:collect()
      if cancel[i] then
        assert.is_true(out.finish_reason == "cancelled" or out.finish_reason == "length")
      else
        assert.is_true(same(alone(prompts[i], lens[i]), out.ids), "request " .. i)
      end
    end
    local st = settled(eng)
    assert.are.equal(st.blocks_total, st.blocks_free)
    eng:close()
  end)

  it("samples n > 1 independent sequences sharing the prompt", function()
    local eng = engine({ max_batch_size = 8, cache_max_entry_count = 64, cache_block_seq_len = 4 })
    local p = ids_of(13, rng(7))
    local a = assert(eng:generate(p, { n = 4, max_new_tokens = 12, temperature = 1.0, seed = 11, ignore_eos = true }))
    local b = assert(eng:generate(p, { n = 4, max_new_tokens = 12, temperature = 1.0, seed = 11, ignore_eos = true }))
    assert.are.equal(4, #a.outputs)
    local distinct = {}
    for k = 1, 4 do
      assert.are.equal(12, #a.outputs[k].ids)
      assert.is_true(same(a.outputs[k].ids, b.outputs[k].ids), "sample " .. k .. " repeats with the seed")
      distinct[table.concat(a.outputs[k].ids, ",")] = true
    end
    local n_distinct = 0
    for _ in pairs(distinct) do n_distinct = n_distinct + 1 end
    assert.is_true(n_distinct >= 3, "samples are independent")
    local g = assert(eng:generate(p, { n = 3, max_new_tokens = 10, ignore_eos = true }))
    for k = 1, 3 do assert.is_true(same(alone(p, 10), g.outputs[k].ids)) end
    assert.are.equal(30, g.usage.completion_tokens)
    local st = settled(eng)
    assert.are.equal(st.blocks_total, st.blocks_free)
    eng:close()
  end)

  it("repeats a seeded request exactly and differs with another seed", function()
    local eng = engine({ max_batch_size = 4, cache_max_entry_count = 64 })
    local p = ids_of(9, rng(8))
    local o = { max_new_tokens = 20, temperature = 0.9, top_p = 0.95, seed = 1234, ignore_eos = true }
    local a = assert(eng:generate(p, o)).ids
    local b = assert(eng:generate(p, o)).ids
    o.seed = 4321
    local c = assert(eng:generate(p, o)).ids
    assert.is_true(same(a, b))
    assert.is_false(same(a, c))
    eng:close()
  end)

  it("stops on stop ids and end ids, not with ignore_eos", function()
    local eng = engine({ max_batch_size = 4, cache_max_entry_count = 64 })
    local p = ids_of(9, rng(9))
    local full = alone(p, 16)
    local out = assert(eng:generate(p, { max_new_tokens = 16, stop_ids = { full[5] }, ignore_eos = true }))
    local first = 1
    while full[first] ~= full[5] do first = first + 1 end
    assert.are.equal("stop", out.finish_reason)
    assert.are.equal(first - 1, #out.ids)
    assert.are.equal(full[5], out.outputs[1].stop_token)
    eng:close()
  end)

  it("refuses bad requests clearly", function()
    local eng = engine({ max_batch_size = 2, cache_max_entry_count = 64, session_len = 32 })
    local long = ids_of(33, rng(10))
    for _ = 1, 3 do
      local r, err = eng:submit(long, { max_new_tokens = 1 })
      assert.is_nil(r)
      assert.truthy(err:find("context_length_exceeded", 1, true), err)
    end
    local r, err = eng:submit({ 1, 999999 }, {})
    assert.is_nil(r)
    assert.truthy(err:find("outside the vocabulary", 1, true), err)
    r, err = eng:submit({ 1, -1 }, {})
    assert.is_nil(r)
    r, err = eng:submit({ 1 }, { n = 0 })
    assert.truthy(err:find("n must be in", 1, true), err)
    r, err = eng:submit({ 1 }, { temperature = 0 / 0 })
    assert.is_nil(r)
    r, err = eng:submit({}, {})
    assert.truthy(err:find("at least one token", 1, true), err)
    -- a normal request still works afterwards
    assert.are.equal(3, #assert(eng:generate({ 1, 2, 3 }, { max_new_tokens = 3, ignore_eos = true })).ids)
    eng:close()
  end)

  it("reports a session that grows past session_len, and a busy session", function()
    local eng = engine({ max_batch_size = 2, cache_max_entry_count = 64, session_len = 32 })
    local out = assert(eng:generate(ids_of(20, rng(11)), { session_id = 9, interactive = true, max_new_tokens = 4, ignore_eos = true }))
    assert.are.equal(4, #out.ids)
    local again = assert(eng:generate(ids_of(10, rng(12)), { session_id = 9, interactive = true, max_new_tokens = 4 }))
    assert.are.equal("error", again.finish_reason)
    assert.truthy(again.outputs[1].error:find("context_length_exceeded", 1, true))
    -- the session survives the refused turn
    local ok = assert(eng:generate({ 5 }, { session_id = 9, interactive = true, max_new_tokens = 2, ignore_eos = true }))
    assert.are.equal(2, #ok.ids)
    eng:close()
    -- a second request while the session's turn is running: refused, the turn goes on
    eng = engine({ max_batch_size = 2, cache_max_entry_count = 64, session_len = 1024 })
    local a = assert(eng:submit({ 1, 2 }, { session_id = 10, interactive = true, max_new_tokens = 1000, ignore_eos = true }))
    local got = 0
    for _, ev in ipairs(a:events(-1)) do if ev.kind == "token" then got = got + 1 end end -- a is running
    local b = assert(eng:submit({ 3 }, { session_id = 10, interactive = true, max_new_tokens = 2 }))
    local rb = b:collect()
    assert.are.equal("error", rb.finish_reason)
    assert.truthy((rb.outputs[1].error or ""):find("busy", 1, true), tostring(rb.outputs[1].error))
    assert.are.equal(1000, got + #a:collect().ids)
    eng:close()
  end)

  it("gives research scripts the logits through session:step (the slow path)", function()
    local eng = engine({ max_batch_size = 2, cache_max_entry_count = 64 })
    local s = eng:session({ template = "base" })
    local p = ids_of(7, rng(13))
    local logits = assert(s:step(p))
    local want = alone(p, 1)[1]
    assert.are.equal(want, model.argmax(logits, m.vocab_size))
    local nxt = assert(s:step({ want }))
    assert.are.equal(alone(p, 2)[2], model.argmax(nxt, m.vocab_size))
    s:close()
    eng:close()
  end)

  it("signals its event fd when tokens arrive", function()
    local eng = engine({ max_batch_size = 2, cache_max_entry_count = 64 })
    local fd = eng:event_fd()
    assert.is_true(fd >= 0)
    local ffi = require("ffi")
    pcall(ffi.cdef, "struct tm_pollfd { int fd; short events; short revents; }; int poll(struct tm_pollfd *fds, unsigned long n, int timeout);")
    local r = assert(eng:submit({ 1, 2, 3 }, { max_new_tokens = 4, ignore_eos = true }))
    local pfd = ffi.new("struct tm_pollfd[1]")
    pfd[0].fd, pfd[0].events = fd, 1
    assert.are.equal(1, ffi.C.poll(pfd, 1, 5000))
    r:collect()
    eng:close()
  end)
end)
