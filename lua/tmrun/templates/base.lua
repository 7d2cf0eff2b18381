-- base: no template. Message contents are concatenated as they are, which is
-- what a base (non-chat) model wants for plain completion.
-- Source: LMDeploy lmdeploy/model.py, class BaseModel / BaseChatTemplate
-- with every wrapping string empty.
return {
  name = "base",
  aliases = { "none", "completion", "llama" },
  stop_words = {},
}
