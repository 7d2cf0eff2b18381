-- The workspace converter: TP shards put back together equal the TP=1 tensors;
-- config.ini is validated; bad model folders are clear errors.
local ffi = require("ffi")
local convert = require("tmrun.convert")
local model = require("tmrun.model")
local weights = require("tmrun.weights")
local fs = require("tmrun.util.fs")
local cjson = require("cjson")
local helpers = require("helpers")

local GOLDENS = TMRUN_HOME .. "/tests/data/goldens"

local function shard_store(dir, rank)
  local w = weights.new()
  assert(w:load(string.format("%s/weights/rank%d.safetensors", dir, rank)))
  return w
end

local function bytes(t) return ffi.string(t.data, t.nbytes) end

-- Columns [c0, c0 + nc) of a [rows][cols] tensor as a byte string per row, joined.
local function columns(t, c0, nc)
  local es = t.nbytes / (t.shape[1] * (t.shape[2] or 1))
  local rows, cols = t.shape[1], t.shape[2]
  if not cols then return ffi.string(ffi.cast("const char *", t.data) + c0 * es, nc * es) end
  local parts = {}
  for r = 0, rows - 1 do
    parts[#parts + 1] = ffi.string(ffi.cast("const char *", t.data) + (r * cols + c0) * es, nc * es)
  end
  return parts
end

-- Joins per-rank column blocks row by row: out row r = block1[r] .. block2[r] ...
local function hcat(blocks)
  if type(blocks[1]) == "string" then return table.concat(blocks) end
  local out = {}
  for r = 1, #blocks[1] do
    local row = {}
    for _, b in ipairs(blocks) do row[#row + 1] = b[r] end
    out[r] = table.concat(row)
  end
  return table.concat(out)
end

-- Reassembles the TP=1 tensor `name` from the shards.
local function merged(shards, name, cfg)
  local tp = #shards
  local function get(r)
    local sharded = name:gsub("%.0%.(%a+)$", "." .. (r - 1) .. ".%1")
    return assert(shards[r]:find(sharded), sharded)
  end
  if name:match("w_qkv") then
    local hd = cfg.size_per_head
    local q, kv = cfg.head_num * hd / tp, cfg.kv_head_num * hd / tp
    local qs, ks, vs = {}, {}, {}
    for r = 1, tp do
      local t = get(r)
      qs[r] = columns(t, 0, q)
      ks[r] = columns(t, q, kv)
      vs[r] = columns(t, q + kv, kv)
    end
    local all = {}
    for _, group in ipairs({ qs, ks, vs }) do for _, b in ipairs(group) do all[#all + 1] = b end end
    return hcat(all)
  elseif name:match("w1") or name:match("w3") then
    local blocks = {}
    for r = 1, tp do local t = get(r) blocks[r] = columns(t, 0, t.shape[2]) end
    return hcat(blocks)
  elseif name:match("wo%.0%.weight") or name:match("w2") then
    local parts = {}
    for r = 1, tp do parts[r] = bytes(get(r)) end -- row split: shards stack along rows
    return table.concat(parts)
  elseif name:match("wo%.0%.bias") then
    for r = 2, tp do
      local t = get(r)
      local p = ffi.cast("const float *", t.data)
      for i = 0, t.shape[1] - 1 do assert.are.equal(0, p[i], "row-split bias on rank " .. (r - 1)) end
    end
    return bytes(get(1))
  end
  local first = bytes(get(1))
  for r = 2, tp do assert.is_true(first == bytes(get(r)), name .. " replicated on every rank") end
  return first
end

describe("convert", function()
  local tmp = helpers.tmpdir("convert")

  for _, case in ipairs({ { "llama_mha", 2 }, { "llama_mha", 4 }, { "internlm_bias", 4 }, { "llama3_gqa", 2 },
    { "qwen2_tied", 2 } }) do
    local kind, tp = case[1], case[2]
    it(string.format("puts %s TP=%d shards back together into the TP=1 tensors", kind, tp), function()
      local h = assert(convert.open_hf(GOLDENS .. "/" .. kind))
      local one, many = tmp .. "/" .. kind .. "-tp1", tmp .. "/" .. kind .. "-tp" .. tp
      assert(convert.write_workspace(h, kind, { dst_path = one }))
      local cfg = assert(convert.write_workspace(h, kind, { dst_path = many, tp = tp }))
      assert.are.equal(tp, cfg.tensor_para_size)
      local ref = shard_store(one, 0)
      local shards = {}
      for r = 1, tp do shards[r] = shard_store(many, r - 1) end
      assert.are.equal(ref:count(), shards[1]:count())
      for _, name in ipairs(ref:names()) do
        assert.is_true(bytes(ref:find(name)) == merged(shards, name, cfg), name .. " differs after reassembly")
      end
      local text = fs.read(many .. "/config.ini")
      assert.truthy(text:find("tensor_para_size = " .. tp, 1, true))
      h.src:close()
    end)
  end

  it("refuses a TP split that does not divide the kv heads", function()
    local h = assert(convert.open_hf(GOLDENS .. "/llama3_gqa"))
    local ok, err = convert.write_workspace(h, "x", { dst_path = tmp .. "/bad-tp", tp = 4 })
    assert.is_nil(ok)
    assert.truthy(err:find("tensor_para_size 4 must divide", 1, true), err)
  end)

  it("copies the tokenizer and generation files into tokenizer/", function()
    local h = assert(convert.open_hf(GOLDENS .. "/llama_mha"))
    local dst = tmp .. "/tok"
    assert(convert.write_workspace(h, "llama", { dst_path = dst }))
    assert.is_true(fs.is_file(dst .. "/tokenizer/generation_config.json"))
  end)

  it("writes a config.ini with LMDeploy's [llama] keys", function()
    local h = assert(convert.open_hf(GOLDENS .. "/llama3_gqa"))
    local dst = tmp .. "/ini"
    assert(convert.write_workspace(h, "llama3", { dst_path = dst }))
    local text = fs.read(dst .. "/config.ini")
    for _, key in ipairs({ "model_name", "tensor_para_size", "head_num", "kv_head_num", "vocab_size", "num_layer",
      "inter_size", "norm_eps", "attn_bias", "start_id", "end_id", "session_len", "weight_type", "rotary_embedding",
      "rope_theta", "size_per_head", "group_size", "max_batch_size", "max_context_token_num", "step_length",
      "cache_max_entry_count", "cache_block_seq_len", "cache_chunk_size", "use_context_fmha", "quant_policy",
      "max_position_embeddings", "rope_scaling_factor", "use_logn_attn" }) do
      assert.truthy(text:find("\n" .. key .. " = ", 1, true) or text:find("^%[llama%]\n" .. key), key)
    end
    assert.truthy(text:find("weight_type = bf16", 1, true))
    assert.truthy(text:find("rope_scaling_type = llama3", 1, true))
  end)
end)

describe("config.ini validation", function()
  local tmp = helpers.tmpdir("config")
  local base
  setup(function()
    local h = assert(convert.open_hf(GOLDENS .. "/llama_mha"))
    base = tmp .. "/ws"
    assert(convert.write_workspace(h, "llama", { dst_path = base }))
  end)

  local function with_key(key, value)
    local text = fs.read(base .. "/config.ini")
    local edited, n = text:gsub("\n" .. key .. " = [^\n]*", "\n" .. key .. " = " .. value)
    if n == 0 then edited = text:gsub("%[llama%]\n", "[llama]\n" .. key .. " = " .. value .. "\n") end
    assert(fs.write(base .. "/config.ini", edited))
    local m, err = model.open(base)
    assert(fs.write(base .. "/config.ini", text))
    if m then m:close() end
    return m, err
  end

  for _, case in ipairs({
    { "session_len", "0", "session_len must be in" },
    { "session_len", "abc", "session_len must be a number" },
    { "max_batch_size", "5000", "max_batch_size must be in" },
    { "cache_block_seq_len", "0", "cache_block_seq_len must be in" },
    { "cache_max_entry_count", "-1", "cache_max_entry_count must be in" },
    { "quant_policy", "3", "quant_policy must be one of" },
    { "rope_scaling_factor", "0.5", "rope_scaling_factor must be 0 (off) or >= 1" },
    { "head_num", "3", "head_num (3) must be a multiple of kv_head_num" },
    { "use_logn_attn", "2", "use_logn_attn must be in" },
    { "no_such_key", "1", "unknown key \"no_such_key\"" },
  }) do
    it(string.format("rejects %s = %s", case[1], case[2]), function()
      local m, err = with_key(case[1], case[2])
      assert.is_nil(m)
      assert.truthy(err:find(case[3], 1, true), err)
      assert.truthy(err:find("config.ini", 1, true), err)
    end)
  end

  it("accepts an edited session_len and a command-line override", function()
    local m = assert(with_key("session_len", "100"))
    local m2 = assert(model.open(base, { overrides = { session_len = 77 } }))
    assert.are.equal(77, m2.cfg.session_len)
    m2:close()
  end)

  it("refuses to override a key that is not editable", function()
    local m, err = model.open(base, { overrides = { head_num = 8 } })
    assert.is_nil(m)
    assert.truthy(err:find("head_num cannot be overridden", 1, true), err)
  end)

  it("rejects a malformed line", function()
    local text = fs.read(base .. "/config.ini")
    assert(fs.write(base .. "/config.ini", text .. "\nthis is not a key value line\n"))
    local m, err = model.open(base)
    assert(fs.write(base .. "/config.ini", text))
    assert.is_nil(m)
    assert.truthy(err:find("expected 'key = value'", 1, true), err)
  end)
end)

describe("bad model folders", function()
  local tmp = helpers.tmpdir("badmodel")

  local function folder(name, edit, copy_weights)
    local dir = tmp .. "/" .. name
    fs.mkdir_p(dir)
    local cfg = assert(convert.read_json(GOLDENS .. "/llama_mha/config.json"))
    edit(cfg)
    fs.write(dir .. "/config.json", cjson.encode(cfg))
    if copy_weights ~= false then fs.copy(GOLDENS .. "/llama_mha/model.safetensors", dir .. "/model.safetensors") end
    return dir
  end

  it("names an unknown architecture and lists the known ones", function()
    local m, err = model.open(folder("arch", function(c) c.architectures = { "GPT2LMHeadModel" } end))
    assert.is_nil(m)
    assert.truthy(err:find('architecture "GPT2LMHeadModel" is not supported', 1, true), err)
    assert.truthy(err:find("LlamaForCausalLM", 1, true), err)
  end)

  it("names a missing tensor", function()
    local m, err = model.open(folder("layers", function(c) c.num_hidden_layers = 3 end))
    assert.is_nil(m)
    assert.truthy(err:find("model.layers.2.", 1, true), err)
  end)

  it("names a tensor of the wrong shape", function()
    local m, err = model.open(folder("shape", function(c) c.intermediate_size = 128 end))
    assert.is_nil(m)
    assert.truthy(err:find("mlp", 1, true) or err:find("w1", 1, true), err)
  end)

  it("says when there are no safetensors files", function()
    local m, err = model.open(folder("empty", function() end, false))
    assert.is_nil(m)
    assert.truthy(err:find("no *.safetensors", 1, true), err)
  end)

  it("rejects an unsupported activation and RoPE type", function()
    local m, err = model.open(folder("act", function(c) c.hidden_act = "gelu" end))
    assert.is_nil(m)
    assert.truthy(err:find('hidden_act "gelu"', 1, true), err)
    m, err = model.open(folder("yarn", function(c) c.rope_parameters = { rope_type = "yarn", factor = 2, rope_theta = 1e4 } end))
    assert.is_nil(m)
    assert.truthy(err:find('rope type "yarn" is not supported', 1, true), err)
  end)

  it("rejects malformed config.json", function()
    local dir = tmp .. "/json"
    fs.mkdir_p(dir)
    fs.write(dir .. "/config.json", "{ not json")
    local m, err = model.open(dir)
    assert.is_nil(m)
    assert.truthy(err:find("config.json", 1, true), err)
  end)
end)
