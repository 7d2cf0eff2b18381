-- custom_sampling.lua: user-defined sampling policies.
--
--   tmrun examples/custom_sampling.lua MODEL_DIR
--
-- A policy is a table of sampler fields (tmrun.sampling.policy validates them) or a
-- function of the request returning one; either way the per-token work stays in
-- the C sampler on the engine thread.
local tm = require("tmrun")
local sampling = tm.sampling

-- 1. A preset, adjusted.
local calm = sampling.precise:with({ temperature = 0.2 })

-- 2. A policy that depends on the request: colder for long outputs, and a ban on
--    a token the user never wants (logit_bias of -100 removes it).
local function adaptive(req)
  local long = (req.max_new_tokens or 16) > 64
  return {
    temperature = long and 0.6 or 0.9,
    top_p = 0.9,
    repetition_penalty = long and 1.15 or 1.05,
    logit_bias = req.banned and { [req.banned] = -100 } or nil,
  }
end

local dir = arg[1]
if not dir then
  io.stderr:write("usage: tmrun examples/custom_sampling.lua MODEL_DIR\n")
  os.exit(2)
end
local eng = assert(tm.engine({ model = dir, max_batch_size = 4 }))
local prompt = "Once upon a time"
for name, policy in pairs({ greedy = sampling.greedy, calm = calm, adaptive = adaptive }) do
  local out = assert(eng:generate(prompt, { policy = policy, max_new_tokens = 24, seed = 7 }))
  print(string.format("%-8s %s", name, out.text or table.concat(out.ids, " ")))
end
eng:close()
