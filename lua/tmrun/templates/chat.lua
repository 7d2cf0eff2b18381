-- chat.lua: turns a template spec (a table of wrapping strings, LMDeploy's
-- BaseChatTemplate model) into a template object.
--
-- A spec's fields (all strings, all optional; nil means ""):
--   prefix            emitted once at the start of a sequence (Llama 3's BOS)
--   system, eosys     wrap a system message
--   meta_instruction  the default system prompt, used when the conversation
--                     does not start with a system message; nil means none
--   user, eoh         wrap a user message
--   assistant, eoa    wrap an assistant message; `assistant` alone is the
--                     generation prompt
--   separator         follows eoa in history, and starts each later turn of
--                     a live session (the session already holds the reply
--                     and the stop word that ended it)
--   roles             extra roles: { tool = { begin = "...", ["end"] = "..." } }
--   stop_words        strings that end a reply
-- Full render (LMDeploy messages2prompt):
--   prefix [system meta_instruction eosys] {begin(role) content end(role)} [assistant]
-- A later session turn (LMDeploy get_prompt with sequence_start=False):
--   separator {begin(role) content end(role)} assistant

local util = require("tmrun.templates.util")

local M = {}

local Chat = {}
Chat.__index = Chat

local STRING_FIELDS = { "prefix", "system", "meta_instruction", "eosys", "user", "eoh",
  "assistant", "eoa", "separator" }

-- Checks a spec and returns the template object; errors name the field.
function M.new(spec, name)
  for _, f in ipairs(STRING_FIELDS) do
    if spec[f] ~= nil and type(spec[f]) ~= "string" then
      error(string.format("template '%s': field '%s' must be a string, got %s", name, f, type(spec[f])), 0)
    end
  end
  local boxes = {
    system = { spec.system or "", spec.eosys or "" },
    user = { spec.user or "", spec.eoh or "" },
    assistant = { spec.assistant or "", (spec.eoa or "") .. (spec.separator or "") },
  }
  for role, wrap in pairs(spec.roles or {}) do
    if type(wrap) ~= "table" then
      error(string.format("template '%s': roles.%s must be a table {begin=, end=}", name, tostring(role)), 0)
    end
    boxes[role] = { wrap.begin or "", wrap["end"] or "" }
  end
  return setmetatable({
    name = name,
    kind = "chat",
    spec = spec,
    boxes = boxes,
    stop_words = util.string_list(spec.stop_words, name, "stop_words"),
  }, Chat)
end

function Chat:wrap_messages(messages, out)
  for i, m in ipairs(messages) do
    local box = self.boxes[m.role]
    if not box then
      return nil, string.format("template '%s' does not support role '%s' (message %d)",
        self.name, tostring(m.role), i)
    end
    out[#out + 1] = box[1] .. util.content_text(m.content) .. box[2]
  end
  return true
end

-- messages: array of {role=, content=}; opts.add_generation_prompt (default
-- true). Returns the prompt text, or nil and a message for a conversation
-- the template cannot render.
function Chat:render(messages, opts)
  messages = util.check_messages(messages)
  opts = opts or {}
  local s = self.spec
  local out = { s.prefix or "" }
  if s.meta_instruction ~= nil and #messages > 0 and messages[1].role ~= "system" then
    out[#out + 1] = (s.system or "") .. s.meta_instruction .. (s.eosys or "")
  end
  local ok, err = self:wrap_messages(messages, out)
  if not ok then return nil, err end
  if opts.add_generation_prompt ~= false then out[#out + 1] = s.assistant or "" end
  return table.concat(out)
end

-- The text to append to a live session for a new turn. opts.first_turn: the
-- session is empty, so this is a full render.
function Chat:render_turn(messages, opts)
  opts = opts or {}
  if opts.first_turn then return self:render(messages, { add_generation_prompt = true }) end
  messages = util.check_messages(messages)
  local out = { self.spec.separator or "" }
  local ok, err = self:wrap_messages(messages, out)
  if not ok then return nil, err end
  out[#out + 1] = self.spec.assistant or ""
  return table.concat(out)
end

return M
