// e2e_concurrent.mjs BASE_URL MODEL N MAX_TOKENS: N streaming chat clients at once, each with
// its own prompt ("request i"); prints the N texts as a JSON array, in order.
const [base, model, n, maxTokens] = process.argv.slice(2);
async function one(i) {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, stream: true, temperature: 0, max_tokens: Number(maxTokens),
      messages: [{ role: "user", content: `request ${i}` }] }),
  });
  if (res.status !== 200) return `HTTP ${res.status}`;
  const body = await res.text();
  let text = "";
  let done = false;
  for (const line of body.split("\n")) {
    if (!line.startsWith("data: ")) continue;
    const data = line.slice(6);
    if (data === "[DONE]") { done = true; continue; }
    const c = JSON.parse(data);
    if (c.choices.length) text += c.choices[0].delta.content ?? "";
  }
  return done ? text : "no [DONE]";
}
const texts = await Promise.all(Array.from({ length: Number(n) }, (_, i) => one(i)));
console.log(JSON.stringify(texts));
