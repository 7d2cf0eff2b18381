-- Llama 2 chat.
-- Source: LMDeploy lmdeploy/model.py, class Llama2 (v0.4 series): the system
-- prompt sits inside the first [INST] between <<SYS>> markers, a reply ends
-- with </s>, and each later turn opens with "<s>[INST] " (the separator).
-- The first <s> (BOS) is not in the text: the tokenizer adds it. When the
-- conversation has no system message, LMDeploy's default (Meta's original
-- Llama 2 system prompt) is used.
-- Rendered:
--   [INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {reply}</s><s>[INST] {user} [/INST] 
return {
  name = "llama2",
  aliases = { "llama-2", "llama-2-chat", "llama2-chat" },
  system = "[INST] <<SYS>>\n",
  meta_instruction = "You are a helpful, respectful and honest assistant. Always answer as helpfully "
    .. "as possible, while being safe. Your answers should not include any harmful, unethical, racist, "
    .. "sexist, toxic, dangerous, or illegal content. Please ensure that your responses are socially "
    .. "unbiased and positive in nature.\n\nIf a question does not make any sense, or is not factually "
    .. "coherent, explain why instead of answering something not correct. If you don't know the answer "
    .. "to a question, please don't share false information.",
  eosys = "\n<</SYS>>\n\n",
  user = "",
  eoh = "",
  assistant = " [/INST] ",
  eoa = "</s>",
  separator = "<s>[INST] ",
  -- LMDeploy lists none and relies on the EOS token (end_id); naming </s>
  -- makes the text-level stop explicit for callers that match strings.
  stop_words = { "</s>" },
}
