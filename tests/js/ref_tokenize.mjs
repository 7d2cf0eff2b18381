// ref_tokenize.mjs - the reference tokenizer (@lenml/tokenizers, a port of
// transformers.js) that tmrun's tokenizer is checked against.
//
//   node ref_tokenize.mjs TOKENIZER INPUT [--mode encode|both|decode|bench] [--no-special]
//
// TOKENIZER: llama2 | llama3 | qwen3 | internlm2 (the @lenml/tokenizer-* packages)
// or a folder with tokenizer.json and tokenizer_config.json.
// INPUT: one JSON value a line.  encode/both/bench: a string, or {"hex": "..."} for
// raw bytes, which are decoded like a TextDecoder (ill-formed UTF-8 -> U+FFFD) the
// same way tmrun reads bytes.  decode: an array of ids.
// Output, one line each: encode -> the ids; both -> {"ids": [...], "decoded": "..."};
// decode -> the string; bench -> one line {"bytes": N, "seconds": S}.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { TokenizerLoader } from "@lenml/tokenizers";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const positional = args.filter((a, i) => !a.startsWith("--") && !(i > 0 && args[i - 1] === "--mode"));
const mode = args.includes("--mode") ? args[args.indexOf("--mode") + 1] : "encode";
const addSpecial = !args.includes("--no-special");
if (positional.length !== 2) {
  console.error("usage: node ref_tokenize.mjs TOKENIZER INPUT [--mode encode|both|decode|bench] [--no-special]");
  process.exit(2);
}

function tokenizerDir(name) {
  if (fs.existsSync(name) && fs.statSync(name).isDirectory()) return name;
  return path.join(here, "node_modules", "@lenml", `tokenizer-${name}`, "models");
}

const dir = tokenizerDir(positional[0]);
const readJson = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
const configPath = path.join(dir, "tokenizer_config.json");
const warn = console.warn;
console.warn = () => {}; // "Unknown tokenizer class": the base class is what we compare with
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: readJson("tokenizer.json"),
  tokenizerConfig: fs.existsSync(configPath) ? readJson("tokenizer_config.json") : {},
});
console.warn = warn;

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const asText = (v) => (typeof v === "string" ? v : decoder.decode(Buffer.from(v.hex, "hex")));
const lines = fs.readFileSync(positional[1], "utf8").split("\n").filter((l) => l.length > 0);
const out = [];

if (mode === "bench") {
  const texts = lines.map((l) => asText(JSON.parse(l)));
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, "utf8"), 0);
  for (const t of texts.slice(0, 200)) tokenizer.encode(t, { add_special_tokens: addSpecial }); // warm up
  const t0 = process.hrtime.bigint();
  for (const t of texts) tokenizer.encode(t, { add_special_tokens: addSpecial });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  out.push(JSON.stringify({ bytes, seconds }));
} else {
  for (const line of lines) {
    const v = JSON.parse(line);
    if (mode === "decode") {
      out.push(JSON.stringify(v.length ? tokenizer.decode(v) : ""));
      continue;
    }
    const ids = tokenizer.encode(asText(v), { add_special_tokens: addSpecial });
    if (mode === "both") out.push(JSON.stringify({ ids, decoded: ids.length ? tokenizer.decode(ids) : "" }));
    else out.push(JSON.stringify(ids));
  }
}
process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
