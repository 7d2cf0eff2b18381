-- jinja_template.lua: a template object over a model's own Jinja
-- `chat_template` (tokenizer_config.json), rendered by tmrun.jinja.
--
-- Variables are those transformers' apply_chat_template passes: the special
-- tokens map (bos_token, eos_token, unk_token, sep_token, pad_token,
-- cls_token, mask_token when set, additional_special_tokens), `messages`,
-- `add_generation_prompt`, plus opts.vars (tools, documents, enable_thinking...).
--
-- A session turn is rendered by difference: the conversation
-- [user PREV_QUERY, assistant PREV_REPLY] + new messages is rendered, and the
-- turn is the text after PREV_REPLY with the stop word that ended the reply
-- removed (the session already holds it). That is exactly what the full
-- template would have placed between the reply and the new generation prompt.

local jinja = require("tmrun.jinja")
local V = require("tmrun.jinja.values")
local util = require("tmrun.templates.util")

local M = {}

local SPECIAL_TOKEN_KEYS = { "bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
  "cls_token", "mask_token" }

-- Turn markers every chat format we know ends a reply with; those that occur
-- in the template source become stop words next to eos_token.
local END_OF_TURN_MARKERS = { "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<eoa>",
  "<end_of_turn>", "<|endoftext|>", "<|END_OF_TURN_TOKEN|>" }

local PREV_QUERY = "TMRUN_PREVIOUS_QUERY_4d1c"
local PREV_REPLY = "TMRUN_PREVIOUS_REPLY_9e2b"

local Jinja = {}
Jinja.__index = Jinja

local function token_content(tok)
  if type(tok) == "string" then return tok end
  if type(tok) == "table" and type(tok.content) == "string" then return tok.content end
  return nil
end

-- The special-token variables of a decoded tokenizer_config.json.
function M.special_tokens(config)
  local out = {}
  for _, key in ipairs(SPECIAL_TOKEN_KEYS) do out[key] = token_content(config[key]) end
  if type(config.additional_special_tokens) == "table" then
    local list = {}
    for _, t in ipairs(config.additional_special_tokens) do list[#list + 1] = token_content(t) end
    out.additional_special_tokens = V.list(list, #list)
  end
  return out
end

-- chat_template is a string or a list of {name=, template=}; pick one.
function M.pick_source(chat_template, template_name)
  if type(chat_template) == "string" then return chat_template end
  if type(chat_template) == "table" then
    local wanted = template_name or "default"
    local names = {}
    for _, entry in ipairs(chat_template) do
      if type(entry) == "table" and entry.name == wanted and type(entry.template) == "string" then
        return entry.template
      end
      names[#names + 1] = tostring(type(entry) == "table" and entry.name)
    end
    return nil, string.format("no chat template named '%s' (have: %s)", wanted, table.concat(names, ", "))
  end
  return nil, "chat_template must be a string or a list of {name, template}"
end

-- source: Jinja text; opts.special_tokens: variables as from special_tokens();
-- opts.name: for error messages; opts.stop_words: overrides the derived list.
-- Raises a located message when the source does not compile.
function M.new(source, opts)
  opts = opts or {}
  local name = opts.name or "chat_template"
  local compiled = jinja.compile(source, { name = name })
  local tokens = opts.special_tokens or {}
  local stop_words = opts.stop_words
  if not stop_words then
    stop_words = {}
    if tokens.eos_token then stop_words[1] = tokens.eos_token end
    for _, m in ipairs(END_OF_TURN_MARKERS) do
      if m ~= tokens.eos_token and source:find(m, 1, true) then stop_words[#stop_words + 1] = m end
    end
  end
  return setmetatable({ name = name, kind = "jinja", source = source, compiled = compiled,
    special_tokens = tokens, stop_words = stop_words }, Jinja)
end

function Jinja:variables(messages, opts)
  local vars = {}
  for k, v in pairs(self.special_tokens) do vars[k] = v end
  for k, v in pairs(opts.vars or {}) do vars[k] = v end
  vars.messages = messages
  vars.add_generation_prompt = opts.add_generation_prompt ~= false
  return vars
end

-- Returns the rendered text, or nil and the template's message (a
-- raise_exception text, or "NAME:LINE:COL: ..." for a template error).
function Jinja:render(messages, opts)
  if not (V.is_list(messages) or type(messages) == "table") then
    error("messages must be an array of {role=, content=} tables, got " .. type(messages), 2)
  end
  opts = opts or {}
  local ok, text = pcall(self.compiled.render, self.compiled, self:variables(messages, opts))
  if not ok then return nil, text end
  return text
end

local function starts_with(s, prefix) return s:sub(1, #prefix) == prefix end

function Jinja:render_turn(messages, opts)
  opts = opts or {}
  if opts.first_turn then
    return self:render(messages, { add_generation_prompt = true, vars = opts.vars })
  end
  messages = util.check_messages(messages)
  local conv = { { role = "user", content = PREV_QUERY }, { role = "assistant", content = PREV_REPLY } }
  for _, m in ipairs(messages) do conv[#conv + 1] = m end
  local text, err = self:render(conv, { add_generation_prompt = true, vars = opts.vars })
  if not text then return nil, err end
  local _, reply_end = text:find(PREV_REPLY, 1, true)
  if not reply_end then
    return nil, string.format("%s: cannot render a session turn: the template drops earlier replies", self.name)
  end
  local turn = text:sub(reply_end + 1)
  for _, stop in ipairs(self.stop_words) do
    if stop ~= "" and starts_with(turn, stop) then return turn:sub(#stop + 1) end
  end
  return turn
end

return M
