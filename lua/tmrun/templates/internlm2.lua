-- InternLM2 chat (internlm2-chat-*), ChatML-like.
-- Source: LMDeploy lmdeploy/model.py, class InternLM2Chat7B (v0.4 series):
-- system/user/assistant "<|im_start|>ROLE\n", eosys/eoh "<|im_end|>\n",
-- eoa "<|im_end|>", separator "\n", stop words <|im_end|> and <|action_end|>
-- (the end of a tool call), plus the "environment" role tool results use.
-- The default system prompt is InternLM2's own (modeling_internlm2.py), which
-- LMDeploy inherits from InternLMChat7B; like InternLM2's, it has no trailing
-- newline.
-- Rendered:
--   <|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n
--   <|im_start|>assistant\n{reply}<|im_end|>\n ... <|im_start|>assistant\n
return {
  name = "internlm2",
  aliases = { "internlm2-chat", "internlm2-chat-1_8b", "internlm2-chat-7b", "internlm2-chat-20b" },
  system = "<|im_start|>system\n",
  meta_instruction = "You are an AI assistant whose name is InternLM (书生·浦语).\n"
    .. "- InternLM (书生·浦语) is a conversational language model that is developed by Shanghai AI "
    .. "Laboratory (上海人工智能实验室). It is designed to be helpful, honest, and harmless.\n"
    .. "- InternLM (书生·浦语) can understand and communicate fluently in the language chosen by the "
    .. "user such as English and 中文.",
  eosys = "<|im_end|>\n",
  user = "<|im_start|>user\n",
  eoh = "<|im_end|>\n",
  assistant = "<|im_start|>assistant\n",
  eoa = "<|im_end|>",
  separator = "\n",
  roles = { environment = { begin = "<|im_start|>environment\n", ["end"] = "<|im_end|>\n" } },
  stop_words = { "<|im_end|>", "<|action_end|>" },
}
