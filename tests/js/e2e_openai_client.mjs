// e2e_openai_client.mjs BASE_URL MODEL: drives a tmrun server with the official `openai`
// npm client and prints one JSON object with what came back (checked by serve_spec.lua).
import OpenAI from "openai";

const [baseURL, model, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: apiKey || "none", maxRetries: 0, timeout: 60000 });
const out = {};
const messages = [{ role: "user", content: "Tell me about the sea." }];

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

const chat = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
out.chat = chat.choices[0].message.content;
out.chat_finish = chat.choices[0].finish_reason;
out.chat_usage = chat.usage;

const stream = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, stream: true,
  stream_options: { include_usage: true } });
let text = "";
let chunks = 0;
for await (const c of stream) {
  chunks++;
  if (c.choices.length) text += c.choices[0].delta.content ?? "";
  if (c.usage) out.chat_stream_usage = c.usage;
}
out.chat_stream = text;
out.chat_stream_chunks = chunks;

const comp = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 10, temperature: 0 });
out.completion = comp.choices[0].text;
const cstream = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 10, temperature: 0, stream: true });
let ctext = "";
for await (const c of cstream) ctext += c.choices[0]?.text ?? "";
out.completion_stream = ctext;

const multi = await client.chat.completions.create({ model, messages, max_tokens: 6, temperature: 1, n: 3, seed: 5 });
out.n_choices = multi.choices.length;
out.n_texts = multi.choices.map((c) => c.message.content);

const lp = await client.chat.completions.create({ model, messages, max_tokens: 3, temperature: 0, logprobs: true, top_logprobs: 2 });
out.logprobs = lp.choices[0].logprobs.content.map((t) => ({ lp: t.logprob, top: t.top_logprobs.length }));

try {
  await client.chat.completions.create({ model: "no-such-model", messages, max_tokens: 2 });
  out.unknown_model = "accepted";
} catch (e) {
  out.unknown_model = e.status;
}
console.log(JSON.stringify(out));
