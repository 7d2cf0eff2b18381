-- tmrun.tokenizer: BPE tokenizers (tokenizer.json or tokenizer.model) over tm_tokenizer.
--
--   local tokenizer = require("tmrun.tokenizer")
--   local tok = assert(tokenizer.load("path/to/model_dir"))
--   local ids = tok:encode("Hello", { add_special = true })   -- {1, 22557}
--   local text = tok:decode(ids, { skip_special = false })
--   local s = tok:stream()  ; io.write(s:feed(id)) ... io.write(s:flush())
--   tok:close()
--
-- Expected failures (a missing or malformed file) return nil, "TM_ERR_X: message",
-- "TM_ERR_X"; misuse (wrong argument types, a closed object) raises error(msg, 2).
local ffi = require("ffi")
local C = require("tmrun.ffi").C

local tm_tokenizer_create = C.tm_tokenizer_create
local tm_tokenizer_destroy = C.tm_tokenizer_destroy
local tm_tokenizer_encode = C.tm_tokenizer_encode
local tm_tokenizer_decode = C.tm_tokenizer_decode
local tm_tokenizer_stream_create = C.tm_tokenizer_stream_create
local tm_tokenizer_stream_destroy = C.tm_tokenizer_stream_destroy
local tm_tokenizer_stream_feed = C.tm_tokenizer_stream_feed
local tm_tokenizer_stream_flush = C.tm_tokenizer_stream_flush

local M = {}

local Tokenizer = {}
Tokenizer.__index = Tokenizer
local Stream = {}
Stream.__index = Stream

-- scratch boxes, allocated once (one Lua state, one thread)
local tok_box = ffi.new("tm_tokenizer *[1]")
local stream_box = ffi.new("tm_tokenizer_stream *[1]")
local n_box = ffi.new("int64_t[1]")
local len_box = ffi.new("size_t[1]")
local str_box = ffi.new("const char *[1]")
local id_box = ffi.new("int32_t[1]")
local ids_cap = 4096
local ids_buf = ffi.new("int32_t[?]", ids_cap)
local text_cap = 65536
local text_buf = ffi.new("char[?]", text_cap)

local function failure(status)
  local name = ffi.string(C.tm_status_name(status))
  return nil, name .. ": " .. ffi.string(C.tm_last_error()), name
end

local function raise(status, level)
  local _, msg = failure(status)
  error(msg, level + 1)
end

--- Loads a tokenizer from a tokenizer.json / tokenizer.model file or a folder holding one.
function M.load(path)
  if type(path) ~= "string" then error("tokenizer.load: path must be a string", 2) end
  local st = tm_tokenizer_create(path, tok_box)
  if st ~= 0 then return failure(st) end
  local h = ffi.gc(tok_box[0], tm_tokenizer_destroy)
  return setmetatable({ _h = h, path = path }, Tokenizer)
end

local function handle(self, level)
  local h = self._h
  if h == nil then error("tokenizer is closed", level + 1) end
  return h
end

function Tokenizer:close()
  local h = self._h
  if h ~= nil then
    self._h = nil
    ffi.gc(h, nil)
    tm_tokenizer_destroy(h)
  end
end

-- Encodes into the shared scratch buffer: returns it and the count (valid until the next call).
function Tokenizer:encode_raw(text, add_special)
  local h = handle(self, 2)
  if type(text) ~= "string" then error("encode: text must be a string", 2) end
  local flag = add_special == false and 0 or 1
  local st = tm_tokenizer_encode(h, text, #text, flag, ids_buf, ids_cap, n_box)
  if st ~= 0 then raise(st, 2) end
  local n = tonumber(n_box[0])
  if n > ids_cap then
    while ids_cap < n do ids_cap = ids_cap * 2 end
    ids_buf = ffi.new("int32_t[?]", ids_cap)
    st = tm_tokenizer_encode(h, text, #text, flag, ids_buf, ids_cap, n_box)
    if st ~= 0 then raise(st, 2) end
  end
  return ids_buf, n
end

--- ids (a 1-based table) of text; opts.add_special (default true) adds BOS/EOS.
function Tokenizer:encode(text, opts)
  if opts ~= nil and type(opts) ~= "table" then error("encode: opts must be a table", 2) end
  handle(self, 2)
  if type(text) ~= "string" then error("encode: text must be a string", 2) end
  local buf, n = self:encode_raw(text, not (opts and opts.add_special == false))
  local ids = {}
  for i = 0, n - 1 do ids[i + 1] = buf[i] end
  return ids
end

--- The text of ids; opts.skip_special leaves special tokens out.
function Tokenizer:decode(ids, opts)
  local h = handle(self, 2)
  if type(ids) ~= "table" then error("decode: ids must be a table of integers", 2) end
  local n = #ids
  if n > ids_cap then
    while ids_cap < n do ids_cap = ids_cap * 2 end
    ids_buf = ffi.new("int32_t[?]", ids_cap)
  end
  for i = 1, n do
    local id = ids[i]
    if type(id) ~= "number" then error("decode: ids[" .. i .. "] is not a number", 2) end
    ids_buf[i - 1] = id
  end
  local skip = (opts and opts.skip_special) and 1 or 0
  local st = tm_tokenizer_decode(h, ids_buf, n, skip, text_buf, text_cap, len_box)
  if st ~= 0 then raise(st, 2) end
  local len = tonumber(len_box[0])
  if len >= text_cap then
    while text_cap <= len do text_cap = text_cap * 2 end
    text_buf = ffi.new("char[?]", text_cap)
    st = tm_tokenizer_decode(h, ids_buf, n, skip, text_buf, text_cap, len_box)
    if st ~= 0 then raise(st, 2) end
  end
  return ffi.string(text_buf, len)
end

function Tokenizer:vocab_size() return C.tm_tokenizer_vocab_size(handle(self, 2)) end

local function id_or_nil(id) return id >= 0 and id or nil end
function Tokenizer:bos_id() return id_or_nil(C.tm_tokenizer_bos_id(handle(self, 2))) end
function Tokenizer:eos_id() return id_or_nil(C.tm_tokenizer_eos_id(handle(self, 2))) end

--- The token text of id as the vocabulary spells it, or nil for an unused id.
function Tokenizer:token_text(id)
  local h = handle(self, 2)
  if type(id) ~= "number" then error("token_text: id must be a number", 2) end
  local st = C.tm_tokenizer_token_text(h, id, str_box, len_box)
  if st ~= 0 then return nil end
  return ffi.string(str_box[0], len_box[0])
end

--- The id of a token spelled text (vocabulary or added, e.g. "<|im_end|>"), or nil.
function Tokenizer:token_id(text)
  local h = handle(self, 2)
  if type(text) ~= "string" then error("token_id: text must be a string", 2) end
  if C.tm_tokenizer_token_id(h, text, #text, id_box) ~= 0 then return nil end
  return id_box[0]
end

function Tokenizer:is_special(id)
  return C.tm_tokenizer_is_special(handle(self, 2), id) ~= 0
end

--- A streaming detokenizer: feed(id) returns the text that became final.
function Tokenizer:stream(opts)
  local h = handle(self, 2)
  if opts ~= nil and type(opts) ~= "table" then error("stream: opts must be a table", 2) end
  local st = tm_tokenizer_stream_create(h, (opts and opts.skip_special) and 1 or 0, stream_box)
  if st ~= 0 then raise(st, 2) end
  local sh = ffi.gc(stream_box[0], tm_tokenizer_stream_destroy)
  return setmetatable({ _h = sh, _tok = self }, Stream)
end

local function stream_handle(self, level)
  local h = self._h
  if h == nil then error("tokenizer stream is closed", level + 1) end
  if self._tok._h == nil then error("the stream's tokenizer is closed", level + 1) end
  return h
end

function Stream:feed(id)
  local h = stream_handle(self, 2)
  if type(id) ~= "number" then error("feed: id must be a number", 2) end
  local st = tm_tokenizer_stream_feed(h, id, str_box, len_box)
  if st ~= 0 then raise(st, 2) end
  return ffi.string(str_box[0], len_box[0])
end

--- Ends the text: returns what was held back; the stream is then ready for a new text.
function Stream:flush()
  local h = stream_handle(self, 2)
  local st = tm_tokenizer_stream_flush(h, str_box, len_box)
  if st ~= 0 then raise(st, 2) end
  return ffi.string(str_box[0], len_box[0])
end

function Stream:close()
  local h = self._h
  if h ~= nil then
    self._h = nil
    ffi.gc(h, nil)
    tm_tokenizer_stream_destroy(h)
  end
end

return M
