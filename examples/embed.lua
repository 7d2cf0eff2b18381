-- embed.lua: tmrun inside your own Lua program — batch generation, streaming and a
-- stateful chat session against one engine.
--
--   tmrun examples/embed.lua MODEL_DIR
local tm = require("tmrun")

local dir = assert(arg[1], "usage: tmrun examples/embed.lua MODEL_DIR")
local eng = assert(tm.engine({ model = dir, max_batch_size = 16 }))

-- Offline batch, like vLLM's generate: submitted at once, returned in order.
local outs = assert(eng:generate({ "The sea", "A small dog", "In the morning" }, { max_new_tokens = 16 }))
for i, o in ipairs(outs) do print(i, o.finish_reason, o.text) end

-- Streaming.
for chunk in eng:stream("Once upon a time", { max_new_tokens = 24, temperature = 0.7, seed = 1 }) do
  io.write(chunk.text or "")
end
print()

-- A session: the history stays in the engine; each turn sends only itself.
local s = eng:session({ max_new_tokens = 32 })
print((s:chat("Hello!")))
print((s:chat("Tell me more.")))
s:close()
eng:close() -- GPU/CPU memory is not Lua's: close long-lived objects yourself
