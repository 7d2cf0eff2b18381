// make_spm_model.mjs - writes a SentencePiece tokenizer.model (BPE) equivalent to a
// SentencePiece-style tokenizer.json (Llama 2's), so tmrun's tokenizer.model reader
// can be checked against the tokenizer.json path on the same corpus.
//
//   node make_spm_model.mjs TOKENIZER_JSON OUT_MODEL
//
// Pieces keep their ids; a normal piece's score is minus the rank of the first merge
// that makes it (single characters: below every merge), so SentencePiece's
// best-score-first order is the merges' order; <unk> is UNKNOWN, other
// special added tokens CONTROL, <0xXX> BYTE.  TrainerSpec: BPE, byte_fallback, unk 0.
// NormalizerSpec: add_dummy_prefix, no remove_extra_whitespaces, escape_whitespaces.
import fs from "node:fs";

const [src, out] = process.argv.slice(2);
if (!src || !out) {
  console.error("usage: node make_spm_model.mjs TOKENIZER_JSON OUT_MODEL");
  process.exit(2);
}
const tj = JSON.parse(fs.readFileSync(src, "utf8"));
const pieces = [];
for (const [piece, id] of Object.entries(tj.model.vocab)) pieces[id] = piece;
const firstRank = new Map();
tj.model.merges.forEach((m, r) => {
  const [a, b] = Array.isArray(m) ? m : m.split(" ", 2);
  if (!firstRank.has(a + b)) firstRank.set(a + b, r);
});
const nMerges = tj.model.merges.length;
const special = new Set(tj.added_tokens.filter((t) => t.special).map((t) => t.content));

const varint = (v) => {
  const b = [];
  do {
    b.push((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v = Math.floor(v / 128);
  } while (v > 0);
  return b;
};
const field = (num, wire) => varint((num << 3) | wire);
const bytesField = (num, buf) => [...field(num, 2), ...varint(buf.length), ...buf];

const chunks = [];
pieces.forEach((piece, id) => {
  const type = piece === tj.model.unk_token ? 2 : special.has(piece) ? 3 : /^<0x[0-9A-F]{2}>$/.test(piece) ? 6 : 1;
  const score = Buffer.alloc(4);
  score.writeFloatLE(type !== 1 ? 0 : firstRank.has(piece) ? -firstRank.get(piece) : -(nMerges + id));
  const body = [...bytesField(1, [...Buffer.from(piece, "utf8")]), ...field(2, 5), ...score, ...field(3, 0), ...varint(type)];
  chunks.push(...bytesField(1, body));
});
const trainer = [...field(3, 0), 2, ...field(35, 0), 1, ...field(40, 0), 0];
const normalizer = [...field(3, 0), 1, ...field(4, 0), 0, ...field(5, 0), 1];
chunks.push(...bytesField(2, trainer), ...bytesField(3, normalizer));
fs.writeFileSync(out, Buffer.from(chunks));
