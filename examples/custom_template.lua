-- custom_template.lua: a user-defined chat template for tmrun.
--
-- Use it with:   tmrun chat.lua MODEL --chat-template examples/custom_template.lua
-- or from Lua:   local t = require("tmrun.templates").get("examples/custom_template.lua")
--                local prompt = t:render({ { role = "user", content = "Hi" } })
--
-- A template file is Lua that returns one table. The simplest form, used
-- here, gives the strings that wrap each role (LMDeploy's BaseChatTemplate
-- fields); every field is optional and defaults to "":
--
--   prefix            text at the very start of a sequence (e.g. a BOS string)
--   system, eosys     before / after a system message
--   meta_instruction  default system prompt when the conversation has none
--                     (leave it nil for no default system message)
--   user, eoh         before / after a user message
--   assistant, eoa    before / after an assistant message; `assistant` alone
--                     is also the generation prompt that ends every render
--   separator         after eoa in the history, and at the start of each later
--                     turn of a live session (the session already holds the
--                     model's reply and the stop word that ended it)
--   roles             extra roles, e.g. { tool = { begin = "...", ["end"] = "..." } }
--   stop_words        strings that end a reply
--
-- A full render is
--   prefix [system meta_instruction eosys] {begin(role) content end(role)} assistant
-- and a later session turn is
--   separator {begin(role) content end(role)} assistant
--
-- Two other forms exist (docs/TEMPLATES.md): `chat_template = [[...jinja...]]`
-- with `special_tokens = { bos_token = "<s>" }`, or `render = function(messages,
-- opts) ... end` (plus an optional `render_turn`) for full control.
--
-- This example is an Alpaca-style format with a default system prompt.
return {
  name = "alpaca-example",
  meta_instruction = "Below is an instruction that describes a task. "
    .. "Write a response that appropriately completes the request.",
  system = "",
  eosys = "\n\n",
  user = "### Instruction:\n",
  eoh = "\n\n",
  assistant = "### Response:\n",
  eoa = "</s>",
  separator = "\n\n",
  roles = {
    tool = { begin = "### Tool result:\n", ["end"] = "\n\n" },
  },
  stop_words = { "</s>", "### Instruction:" },
}
