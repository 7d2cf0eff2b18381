// ref_render.mjs: renders chat conversations with @huggingface/jinja, the
// reference tests/lua/jinja_spec.lua compares tmrun's Lua renderer against.
//
//   node tests/js/ref_render.mjs TOKENIZER_CONFIG.json CASES.json
//
// TOKENIZER_CONFIG.json is a tokenizer_config.json (or any JSON object with a
// `chat_template` and special tokens). CASES.json is an array of cases:
//   { "messages": [...], "add_generation_prompt": bool,
//     "template_name": "default" (optional, for a list of named templates),
//     "vars": { ... } (optional extra template variables) }
// Prints a JSON array with, for each case, {"text": "..."} or {"error": "..."}.
//
// Variables are passed the way transformers' apply_chat_template does: the
// special tokens map (content strings of bos/eos/unk/sep/pad/cls/mask tokens
// that are set, and additional_special_tokens), then messages and
// add_generation_prompt, then the case's extra vars.
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";

const SPECIAL_TOKEN_KEYS = [
  "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
];

function tokenContent(tok) {
  if (typeof tok === "string") return tok;
  if (tok && typeof tok === "object" && typeof tok.content === "string") return tok.content;
  return null;
}

function specialTokens(config) {
  const out = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    const content = tokenContent(config[key]);
    if (content !== null) out[key] = content;
  }
  if (Array.isArray(config.additional_special_tokens)) {
    out.additional_special_tokens = config.additional_special_tokens.map(tokenContent).filter((t) => t !== null);
  }
  return out;
}

function pickTemplate(chatTemplate, name) {
  if (typeof chatTemplate === "string") return chatTemplate;
  if (Array.isArray(chatTemplate)) {
    const wanted = name ?? "default";
    const hit = chatTemplate.find((t) => t.name === wanted);
    if (!hit) throw new Error(`no chat template named ${wanted}`);
    return hit.template;
  }
  throw new Error("tokenizer config has no chat_template");
}

function main() {
  const [configPath, casesPath] = process.argv.slice(2);
  if (!configPath || !casesPath) {
    process.stderr.write("usage: node ref_render.mjs TOKENIZER_CONFIG.json CASES.json\n");
    process.exit(2);
  }
  const config = JSON.parse(readFileSync(configPath, "utf8"));
  const cases = JSON.parse(readFileSync(casesPath, "utf8"));
  const compiled = new Map();
  const results = cases.map((c) => {
    try {
      const source = pickTemplate(config.chat_template, c.template_name);
      if (!compiled.has(source)) compiled.set(source, new Template(source));
      const vars = {
        ...specialTokens(config),
        messages: c.messages,
        add_generation_prompt: c.add_generation_prompt ?? false,
        ...(c.vars ?? {}),
      };
      return { text: compiled.get(source).render(vars) };
    } catch (e) {
      return { error: String(e && e.message ? e.message : e) };
    }
  });
  process.stdout.write(JSON.stringify(results));
}

main();
