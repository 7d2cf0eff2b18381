-- tmrun tokenize.lua --render-chat, the stable interface other tools parse.
local fs = require("tmrun.util.fs")
local helpers = require("helpers")
local fixtures = require("fixtures")

describe("tokenize.lua --render-chat", function()
  local dir = fixtures.tokenizer_dir("llama3")
  if not dir then
    it("needs the npm tokenizers", function() pending("tests/js/node_modules missing") end)
    return
  end
  local tmp = helpers.tmpdir("render-chat")
  local conv = tmp .. "/conv.json"
  fs.write(conv, '[[{"role":"user","content":"Hi"}],[{"role":"system","content":"S"},{"role":"user","content":"Q"}]]')
  local H = "<|start_header_id|>"
  local E = "<|end_header_id|>\\n\\n"

  it("prints one JSON string per conversation, with the generation prompt on request", function()
    local out, rc = helpers.run(string.format("%s tokenize.lua --tokenizer %s --render-chat %s --add-generation-prompt",
      helpers.tmrun(), dir, conv))
    assert.are.equal(0, rc, out)
    assert.are.equal(table.concat({
      '"<|begin_of_text|>' .. H .. "user" .. E .. "Hi<|eot_id|>" .. H .. "assistant" .. E .. '"',
      '"<|begin_of_text|>' .. H .. "system" .. E .. "S<|eot_id|>" .. H .. "user" .. E .. "Q<|eot_id|>" .. H
        .. "assistant" .. E .. '"', "" }, "\n"), out)
  end)

  it("leaves the generation prompt out by default (where the template makes it optional)", function()
    -- Llama 3's original template always adds it; the demo model's ChatML template asks
    local demo = TMRUN_HOME .. "/models/tmrun-demo"
    local out, rc = helpers.run(string.format("%s tokenize.lua --tokenizer %s --render-chat %s", helpers.tmrun(), demo, conv))
    assert.are.equal(0, rc, out)
    assert.are.equal('"<|im_start|>user\\nHi<|im_end|>\\n"', out:match("^[^\n]*"))
    out = helpers.run(string.format("%s tokenize.lua --tokenizer %s --render-chat %s --add-generation-prompt",
      helpers.tmrun(), demo, conv))
    assert.are.equal('"<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n"', out:match("^[^\n]*"))
  end)
end)
