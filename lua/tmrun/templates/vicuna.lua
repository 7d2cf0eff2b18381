-- Vicuna v1.1+ (also WizardLM).
-- Source: LMDeploy lmdeploy/model.py, class Vicuna (v0.4 series): a default
-- system prompt followed by a space, "USER: {q} ASSISTANT: {a}</s>", stop
-- word </s>, no separator.
-- Rendered:
--   {system} USER: {user} ASSISTANT: {reply}</s>USER: {user} ASSISTANT: 
return {
  name = "vicuna",
  aliases = { "wizardlm" },
  system = "",
  meta_instruction = "A chat between a curious user and an artificial intelligence assistant. "
    .. "The assistant gives helpful, detailed, and polite answers to the user's questions.",
  eosys = " ",
  user = "USER: ",
  eoh = " ",
  assistant = "ASSISTANT: ",
  eoa = "</s>",
  separator = "",
  stop_words = { "</s>" },
}
