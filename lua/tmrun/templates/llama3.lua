-- Llama 3 instruct.
-- Source: LMDeploy lmdeploy/model.py, class Llama3 (v0.4 series): headers
-- "<|start_header_id|>ROLE<|end_header_id|>\n\n", every message ends with
-- <|eot_id|>, no default system prompt, "<|begin_of_text|>" at the start of
-- a sequence, stop words <|eot_id|> and <|end_of_text|>.
-- One deliberate difference: LMDeploy 0.4's messages2prompt cut the last
-- character ("[:-1]"), leaving the generation prompt with one "\n"; Meta's
-- format and the model's own chat_template end it with "\n\n", as here.
-- Rendered:
--   <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>
--   <|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>
--   <|start_header_id|>assistant<|end_header_id|>\n\n
return {
  name = "llama3",
  aliases = { "llama-3", "llama3-instruct", "llama-3-instruct" },
  prefix = "<|begin_of_text|>",
  system = "<|start_header_id|>system<|end_header_id|>\n\n",
  eosys = "<|eot_id|>",
  user = "<|start_header_id|>user<|end_header_id|>\n\n",
  eoh = "<|eot_id|>",
  assistant = "<|start_header_id|>assistant<|end_header_id|>\n\n",
  eoa = "<|eot_id|>",
  separator = "",
  stop_words = { "<|eot_id|>", "<|end_of_text|>" },
}
