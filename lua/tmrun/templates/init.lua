-- tmrun.templates: chat templates, built-in (LMDeploy's), user-defined (a
-- .lua file), or the model's own Jinja chat_template.
--
--   local templates = require("tmrun.templates")
--   local t = templates.get("internlm2")                 -- a built-in
--   local t = templates.get("my_template.lua")           -- a user file
--   local t = templates.get("jinja", { model_dir = dir }) -- tokenizer_config.json
--   local t = templates.default_for{ model_name = "internlm2-chat-7b",
--                                    architecture = "InternLM2ForCausalLM",
--                                    chat_template = cfg.chat_template }
--   local prompt, err = t:render(messages, { add_generation_prompt = true })
--   local turn, err = t:render_turn(new_messages, { first_turn = false })
--   t.stop_words   -- array of strings that end a reply
--
-- render/render_turn return nil and a message when the conversation cannot
-- be rendered (unknown role, the template's raise_exception, a template
-- error); a malformed argument is misuse and raises. get() returns nil and a
-- message for an unknown name or an unreadable file. See docs/TEMPLATES.md.

local chat = require("tmrun.templates.chat")
local jinja_template = require("tmrun.templates.jinja_template")
local util = require("tmrun.templates.util")
local cjson = require("cjson")

local templates = {}

local BUILTINS = { "internlm", "internlm2", "llama2", "llama3", "qwen", "vicuna", "base" }

local specs, aliases = {}, {}
for _, name in ipairs(BUILTINS) do
  local spec = require("tmrun.templates." .. name)
  specs[name] = spec
  aliases[name] = name
  for _, a in ipairs(spec.aliases or {}) do aliases[a] = name end
end

function templates.names()
  return { unpack(BUILTINS) }
end

-- A template object from a spec table (the format of built-ins and user
-- files). Raises a message naming the bad field.
function templates.from_spec(spec, name)
  if type(spec) ~= "table" then error("template spec must be a table, got " .. type(spec), 2) end
  name = spec.name or name or "custom"
  if spec.chat_template ~= nil then
    return jinja_template.new(spec.chat_template, { name = name, special_tokens = spec.special_tokens,
      stop_words = spec.stop_words })
  end
  if spec.render ~= nil then
    if type(spec.render) ~= "function" then error("template '" .. name .. "': render must be a function", 2) end
    local t = chat.new(spec, name)
    t.kind = "lua"
    t.render = function(self, messages, opts)
      messages = util.check_messages(messages)
      return spec.render(messages, opts or {}, self)
    end
    if spec.render_turn ~= nil then
      t.render_turn = function(self, messages, opts)
        messages = util.check_messages(messages)
        return spec.render_turn(messages, opts or {}, self)
      end
    end
    return t
  end
  return chat.new(spec, name)
end

-- A template object from a decoded tokenizer_config.json (its chat_template
-- and special tokens). Returns nil, message when it has no chat_template.
function templates.from_tokenizer_config(config, opts)
  opts = opts or {}
  if type(config) ~= "table" then error("tokenizer config must be a table", 2) end
  if config.chat_template == nil or config.chat_template == cjson.null then
    return nil, "tokenizer config has no chat_template"
  end
  local source, err = jinja_template.pick_source(config.chat_template, opts.template_name)
  if not source then return nil, err end
  local ok, t = pcall(jinja_template.new, source, {
    name = opts.name or "chat_template", special_tokens = jinja_template.special_tokens(config) })
  if not ok then return nil, t end
  return t
end

local function read_json(path)
  local text, err = util.read_file(path)
  if not text then return nil, err end
  local ok, value = pcall(cjson.decode, text)
  if not ok then return nil, path .. ": invalid JSON: " .. tostring(value) end
  return value
end

-- A jinja template from a model (or tokenizer) folder.
function templates.from_model_dir(dir, opts)
  local path = dir .. "/tokenizer_config.json"
  local config, err = read_json(path)
  if not config then return nil, err end
  opts = opts or {}
  local t, terr = templates.from_tokenizer_config(config,
    { name = path, template_name = opts.template_name })
  if not t then return nil, path .. ": " .. terr end
  return t
end

-- A user template file: Lua that returns a spec table.
function templates.load_file(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, spec = pcall(chunk)
  if not ok then return nil, path .. ": " .. tostring(spec) end
  if type(spec) ~= "table" then return nil, path .. ": a template file must return a table" end
  local tok, t = pcall(templates.from_spec, spec, spec.name or (util.basename(path):gsub("%.lua$", "")))
  if not tok then return nil, path .. ": " .. tostring(t) end
  return t
end

-- name_or_path: a built-in name or alias, "jinja" (opts.model_dir's
-- tokenizer_config.json, or opts.tokenizer_config, a decoded table), a path
-- to a .lua template file, or a model folder with a tokenizer_config.json.
function templates.get(name_or_path, opts)
  if type(name_or_path) ~= "string" then
    error("templates.get: name must be a string, got " .. type(name_or_path), 2)
  end
  opts = opts or {}
  local builtin = aliases[name_or_path:lower()]
  if builtin then return chat.new(specs[builtin], builtin) end
  if name_or_path == "jinja" then
    if opts.tokenizer_config then return templates.from_tokenizer_config(opts.tokenizer_config, opts) end
    if opts.model_dir then return templates.from_model_dir(opts.model_dir, opts) end
    return nil, "template 'jinja' needs opts.model_dir or opts.tokenizer_config"
  end
  if name_or_path:match("%.lua$") then return templates.load_file(name_or_path) end
  if util.is_dir(name_or_path) then return templates.from_model_dir(name_or_path, opts) end
  return nil, string.format("unknown chat template '%s' (built-ins: %s; or a .lua file, or 'jinja')",
    name_or_path, table.concat(BUILTINS, ", "))
end

-- LMDeploy's best_match_model order: the first rule whose words all occur in
-- the lowercased model name wins.
local NAME_RULES = {
  { "internlm2", name = "internlm2" },
  { "internlm", name = "internlm" },
  { "llama-3", name = "llama3" }, { "llama3", name = "llama3" },
  { "llama-2", name = "llama2" }, { "llama2", name = "llama2" },
  { "qwen", name = "qwen" },
  { "vicuna", name = "vicuna" }, { "wizardlm", name = "vicuna" },
}

local ARCH_RULES = {
  InternLM2ForCausalLM = "internlm2",
  InternLMForCausalLM = "internlm",
  QWenLMHeadModel = "qwen",
  Qwen2ForCausalLM = "qwen",
}

-- The name of the built-in for a model name / architecture ("base" when
-- nothing matches: a plain LlamaForCausalLM may be Llama 2, 3 or a base model).
function templates.builtin_for(model_name, architecture)
  local lname = type(model_name) == "string" and model_name:lower() or ""
  for _, rule in ipairs(NAME_RULES) do
    local all = true
    for _, word in ipairs(rule) do
      if not lname:find(word, 1, true) then all = false end
    end
    if all and lname ~= "" then return rule.name end
  end
  return ARCH_RULES[architecture] or "base"
end

-- info: model_name, architecture, chat_template (string or list),
-- tokenizer_config (decoded, for special tokens). The model's own
-- chat_template wins; else a built-in by name, then by architecture.
function templates.default_for(info)
  if type(info) ~= "table" then error("templates.default_for: info must be a table", 2) end
  local ct = info.chat_template
  if ct == nil and type(info.tokenizer_config) == "table" then ct = info.tokenizer_config.chat_template end
  if ct ~= nil and ct ~= cjson.null then
    local config = {}
    for k, v in pairs(info.tokenizer_config or {}) do config[k] = v end
    config.chat_template = ct
    local t, err = templates.from_tokenizer_config(config, { template_name = info.template_name })
    if t then return t end
    return nil, err
  end
  local name = templates.builtin_for(info.model_name, info.architecture)
  return chat.new(specs[name], name)
end

-- The template for a tokenizer folder: its chat_template, else a built-in
-- chosen by the folder name and config.json's architecture.
local function template_for_dir(dir)
  local config, err = read_json(dir .. "/tokenizer_config.json")
  if not config then return nil, err end
  if config.chat_template ~= nil and config.chat_template ~= cjson.null then
    return templates.from_tokenizer_config(config, { name = dir .. "/tokenizer_config.json" })
  end
  local model_config = read_json(dir .. "/config.json")
  local arch = model_config and type(model_config.architectures) == "table" and model_config.architectures[1]
  -- Like LMDeploy's best_match_model, match on the whole path
  -- (".../tokenizer-llama2/models" is a Llama 2).
  return templates.default_for({ model_name = dir, architecture = arch })
end

-- Renders every conversation of a JSON file with the template of
-- tokenizer_dir. The file holds an array; each item is an array of messages
-- or an object {messages = [...], add_generation_prompt = bool, ...extra
-- template variables}. Returns an array of strings, or nil and a message
-- naming the conversation that failed.
function templates.render_file(tokenizer_dir, conversations_json_path, add_generation_prompt)
  if type(tokenizer_dir) ~= "string" or type(conversations_json_path) ~= "string" then
    error("templates.render_file(tokenizer_dir, conversations_json_path, add_generation_prompt)", 2)
  end
  local t, err = template_for_dir(tokenizer_dir)
  if not t then return nil, err end
  local text, rerr = util.read_file(conversations_json_path)
  if not text then return nil, rerr end
  local jinja = require("tmrun.jinja")
  local V = jinja.values
  local convs, jerr = jinja.decode_json(text)
  if not convs then return nil, conversations_json_path .. ": " .. jerr end
  if not V.is_list(convs) then return nil, conversations_json_path .. ": expected an array of conversations" end
  local out = {}
  for i = 1, convs.n do
    local conv, opts = convs[i], { add_generation_prompt = add_generation_prompt ~= false, vars = {} }
    local messages = conv
    if V.is_dict(conv) then
      messages = conv.map.messages
      for k, v in pairs(conv.map) do
        if k == "add_generation_prompt" then opts.add_generation_prompt = v == true
        elseif k ~= "messages" then opts.vars[k] = v end
      end
    end
    if not V.is_list(messages) then
      return nil, string.format("%s: conversation %d has no messages array", conversations_json_path, i)
    end
    local s, e = t:render(messages, opts)
    if not s then return nil, string.format("conversation %d: %s", i, e) end
    out[i] = s
  end
  return out
end

return templates
