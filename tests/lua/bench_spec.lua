-- Random models and the throughput benchmark on the CPU: tm_model_create_random is
-- deterministic in its seed and shape, events carry the engine's clock, and
-- bench_throughput.lua produces a row per batch size with every request's tokens.
local helpers = require("helpers")
local rm = require("tmrun.random_model")
local json = require("tmrun.util.json")
local engine = require("tmrun.engine")
local uv = require("luv")

describe("random models", function()
  it("are the same for one seed and differ for another", function()
    local a = rm.open("tiny", { dtype = "fp16", seed = 3, threads = 1 })
    local b = rm.open("tiny", { dtype = "fp16", seed = 3, threads = 1 })
    local c = rm.open("tiny", { dtype = "fp16", seed = 4, threads = 1 })
    local ga = assert(a:greedy({ 5, 6, 7 }, 12, { ignore_eos = true }))
    local gb = assert(b:greedy({ 5, 6, 7 }, 12, { ignore_eos = true }))
    local la = assert(a:context():eval({ 5, 6, 7 }))
    local lc = assert(c:context():eval({ 5, 6, 7 }))
    local differs = false
    for i = 0, a.vocab_size - 1 do if la[i] ~= lc[i] then differs = true break end end
    assert.same(ga, gb)
    assert.is_true(differs)
    -- weight bytes: the preset's shapes in fp16
    local cfg = a.cfg
    local hd = cfg.size_per_head
    local per_layer = cfg.hidden_size * (cfg.head_num + 2 * cfg.kv_head_num) * hd + cfg.head_num * hd * cfg.hidden_size
      + 3 * cfg.hidden_size * cfg.inter_size + 2 * cfg.hidden_size
    assert.equal(2 * (2 * cfg.vocab_size * cfg.hidden_size + cfg.hidden_size + cfg.num_layer * per_layer),
      a:weight_bytes())
    a:close(); b:close(); c:close()
  end)

  it("give token events stamped with the engine's monotonic clock", function()
    local m = rm.open("tiny", { dtype = "fp32", threads = 1 })
    local eng = assert(engine.new({ model = m, max_batch_size = 2, session_len = 64, tokenizer = false }))
    local t0 = uv.hrtime() / 1e9
    local r = assert(eng:submit({ 1, 2, 3 }, { max_new_tokens = 6, ignore_eos = true }))
    local times, done = {}, false
    repeat
      for _, ev in ipairs(r:events(-1)) do
        times[#times + 1] = ev.time
        done = done or ev.kind == "finish"
      end
    until done
    local t1 = uv.hrtime() / 1e9
    assert.equal(7, #times) -- six tokens and the finish
    for i, t in ipairs(times) do
      assert.is_true(t >= t0 and t <= t1, "event time inside the request's lifetime")
      if i > 1 then assert.is_true(t >= times[i - 1]) end
    end
    r:close()
    eng:close()
    m:close()
  end)
end)

describe("bench_throughput.lua", function()
  it("measures each batch size and writes the JSON", function()
    local dir = helpers.tmpdir("bench-throughput")
    local out, rc = helpers.run(string.format(
      "cd %s && %s bench_throughput.lua --random-weights tiny --backend cpu --batches 1,3 --output 5 --warmup 2 " ..
      "--bandwidth 100 --json %s/b.json 2>&1", TMRUN_HOME, helpers.tmrun(), dir))
    assert.equal(0, rc, out)
    assert.truthy(out:find("| 3 |", 1, true), out)
    local f = assert(io.open(dir .. "/b.json"))
    local res = json.decode(f:read("*a"))
    f:close()
    assert.equal(2, #res.rows)
    for _, row in ipairs(res.rows) do
      assert.is_true(row.output_tok_s > 0 and row.per_token_ms_p50 > 0 and row.per_token_ms_p99 >= row.per_token_ms_p50)
      assert.is_true(row.first_token_ms_max >= row.first_token_ms_mean)
    end
    assert.equal(res.rows[1].batch, 1)
    assert.is_true(res.batch1_limit_tok_s > 0)
  end)

  it("profiles every op of every step when asked", function()
    local m = rm.open("tiny", { dtype = "fp32", threads = 1 })
    local eng = assert(engine.new({ model = m, max_batch_size = 2, session_len = 64, tokenizer = false, profile = true }))
    assert(eng:generate({ { 1, 2, 3 }, { 4, 5 } }, { max_new_tokens = 4, ignore_eos = true }))
    -- the table is published at the end of a step, just after its events: wait for
    -- the last step (prefill + 3 decode steps) to publish
    local t, steps
    local deadline = uv.hrtime() + 2e9
    repeat
      t = assert(eng:profile())
      steps = tonumber(t:match("| all | (%d+) steps"))
      if steps < 4 then uv.sleep(1) end
    until steps >= 4 or uv.hrtime() > deadline
    assert.is_true(steps >= 4, t)
    -- per step: one qkv gemm and one attention per layer, two norms per layer
    local layers = m.cfg.num_layer
    assert.equal(steps * layers, tonumber(t:match("| qkv gemm | (%d+) |")), t)
    assert.equal(steps * layers, tonumber(t:match("| attention | (%d+) |")), t)
    assert.equal(2 * steps * layers, tonumber(t:match("| rmsnorm | (%d+) |")), t)
    eng:close()
    local plain = assert(engine.new({ model = m, max_batch_size = 1, session_len = 64, tokenizer = false }))
    assert.is_nil(plain:profile())
    plain:close()
    m:close()
  end)

  it("refuses a run with no model", function()
    local out, rc = helpers.run(string.format("cd %s && %s bench_throughput.lua --backend cpu 2>&1", TMRUN_HOME,
      helpers.tmrun()))
    assert.are_not.equal(0, rc)
    assert.truthy(out:find("MODEL folder or --random-weights", 1, true), out)
  end)
end)
