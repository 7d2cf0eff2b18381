-- InternLM chat (internlm-chat-7b / -20b).
-- Source: LMDeploy lmdeploy/model.py, class InternLMChat7B (v0.4 series,
-- BaseChatTemplate fields), with two corrections taken from the model's own
-- modeling_internlm.py build_inputs, which is what the model was trained on:
--   * a user turn ends with "<eoh>\n" (LMDeploy 0.0.x and InternLM v1.0 use
--     "<|User|>:{q}<eoh>\n<|Bot|>:"; LMDeploy 0.2+ wrote only "\n");
--   * the default system prompt has no trailing newline (LMDeploy's ended in
--     "\n", which with eosys gave a blank line).
-- Rendered:
--   <|System|>:{system}\n<|User|>:{user}<eoh>\n<|Bot|>:{reply}<eoa>\n<|User|>:...<eoh>\n<|Bot|>:
return {
  name = "internlm",
  aliases = { "internlm-chat", "internlm-chat-7b", "internlm-chat-20b", "internlm-chat-7b-8k" },
  system = "<|System|>:",
  meta_instruction = "You are an AI assistant whose name is InternLM (书生·浦语).\n"
    .. "- InternLM (书生·浦语) is a conversational language model that is developed by Shanghai AI "
    .. "Laboratory (上海人工智能实验室). It is designed to be helpful, honest, and harmless.\n"
    .. "- InternLM (书生·浦语) can understand and communicate fluently in the language chosen by the "
    .. "user such as English and 中文.",
  eosys = "\n",
  user = "<|User|>:",
  eoh = "<eoh>\n",
  assistant = "<|Bot|>:",
  eoa = "<eoa>",
  separator = "\n",
  stop_words = { "<eoa>" },
}
