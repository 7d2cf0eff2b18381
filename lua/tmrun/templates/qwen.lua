-- Qwen chat (ChatML).
-- Source: LMDeploy lmdeploy/model.py, class Qwen7BChat (v0.4 series):
-- "<|im_start|>ROLE\n" ... "<|im_end|>\n", default system prompt
-- "You are a helpful assistant.", separator "\n", stop word <|im_end|>.
-- Rendered:
--   <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n
--   <|im_start|>assistant\n{reply}<|im_end|>\n ... <|im_start|>assistant\n
return {
  name = "qwen",
  aliases = { "qwen-chat", "qwen-7b", "qwen-14b", "qwen2", "chatml" },
  system = "<|im_start|>system\n",
  meta_instruction = "You are a helpful assistant.",
  eosys = "<|im_end|>\n",
  user = "<|im_start|>user\n",
  eoh = "<|im_end|>\n",
  assistant = "<|im_start|>assistant\n",
  eoa = "<|im_end|>",
  separator = "\n",
  roles = { tool = { begin = "<|im_start|>tool\n", ["end"] = "<|im_end|>\n" } },
  stop_words = { "<|im_end|>" },
}
