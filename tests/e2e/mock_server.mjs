// mock_server.mjs: a stand-in for `tmrun serve.lua`, for working on the web pages
// without a model (development only; the committed test runs the real server).
//
//   node tests/e2e/mock_server.mjs [PORT]      # prints "listening on PORT"
//   node tests/e2e/chat.e2e.mjs --base http://127.0.0.1:PORT
//
// It serves web/ the way the server's static handler does (/, /chat, /docs and the
// files under them) and fakes /v1/models, /openapi.json and the interactive API:
// a word every 15 ms, cancel, session end, and context_length_exceeded past
// SESSION_LEN tokens of history.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../web");
const SESSION_LEN = 4096;
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".json": "application/json" };
const WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split(" ");

const sessions = new Map();   // id -> { history, running }

const OPENAPI = {
  openapi: "3.0.3",
  info: { title: "tmrun mock", version: "0", description: "The mock server's API." },
  paths: {
    "/v1/models": { get: { summary: "List models", responses: { 200: { description: "the model list" } } } },
    "/v1/chat/completions": {
      post: {
        summary: "Chat completion (OpenAI)",
        requestBody: { required: true, content: { "application/json": { schema: { $ref: "#/components/schemas/Chat" } } } },
        responses: { 200: { description: "a completion" } },
      },
    },
    "/v1/chat/interactive": {
      post: {
        summary: "Stateful chat (LMDeploy)",
        requestBody: { content: { "application/json": { schema: { type: "object", required: ["prompt", "session_id"],
          properties: { prompt: { type: "string", example: "Hi" }, session_id: { type: "integer", example: 1 } } } } } },
        responses: { 200: { description: "NDJSON stream" } },
      },
    },
  },
  components: { schemas: { Chat: { type: "object", required: ["messages"], properties: {
    model: { type: "string" },
    messages: { type: "array", items: { type: "object", properties: { role: { type: "string", enum: ["user"] }, content: { type: "string" } } } },
    stream: { type: "boolean", default: false } } } } },
};

function json(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function apiError(res, status, message, code) {
  json(res, status, { error: { message, type: "invalid_request_error", param: null, code: code || null } });
}

function serveStatic(req, res) {
  let p = decodeURIComponent(new URL(req.url, "http://x").pathname);
  if (p.includes("..") || p.includes("\0")) return apiError(res, 400, "bad path");
  if (p === "/" || p === "/chat" || p === "/docs" || p.endsWith("/")) p = p.replace(/\/?$/, "/index.html");
  const file = path.join(WEB, p);
  fs.readFile(file, (err, data) => {
    if (err) return apiError(res, 404, "not found: " + p);
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] || "application/octet-stream" });
    res.end(data);
  });
}

function interactive(req, res, body) {
  const id = body.session_id;
  if (!Number.isInteger(id) || id < 1) return apiError(res, 400, "session_id must be a positive integer");
  const s = sessions.get(id) || { history: 0, running: null };
  sessions.set(id, s);
  if (body.cancel) {
    if (s.running) s.running.cancelled = true;
    return json(res, 200, { text: "", tokens: 0, finish_reason: "cancelled" });
  }
  if (body.interactive_mode === false && body.request_output_len === 0) {
    sessions.delete(id);
    return json(res, 200, { text: "", tokens: 0, input_tokens: 0, history_tokens: 0, finish_reason: "stop" });
  }
  const input = String(body.prompt || "").split(/\s+/).length + 4;
  if (s.history + input > SESSION_LEN) {
    return apiError(res, 400, `the session holds ${s.history} tokens; ${input} more exceed session_len ${SESSION_LEN}`,
      "context_length_exceeded");
  }
  const max = body.request_output_len || 64;
  const run = { cancelled: false };
  s.running = run;
  res.writeHead(200, { "content-type": "application/x-ndjson" });
  let n = 0;
  const history = s.history;
  const tick = setInterval(() => {
    const done = run.cancelled ? "cancelled" : n + 1 >= max ? "length" : null;
    if (!run.cancelled) n += 1;
    const text = run.cancelled ? "" : WORDS[n % WORDS.length] + " ";
    res.write(JSON.stringify({ text, tokens: n, input_tokens: input, history_tokens: history, finish_reason: done }) + "\n");
    if (done) {
      clearInterval(tick);
      s.history = history + input + n;
      s.running = null;
      res.end();
    }
  }, 15);
  res.on("close", () => { clearInterval(tick); s.running = null; });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (req.method === "GET" && url.pathname === "/v1/models") {
    return json(res, 200, { object: "list", data: [{ id: "mock-llama", object: "model", owned_by: "tmrun" }] });
  }
  if (req.method === "GET" && url.pathname === "/openapi.json") return json(res, 200, OPENAPI);
  if (req.method === "POST" && url.pathname === "/v1/chat/interactive") {
    let raw = "";
    req.on("data", (c) => { raw += c; });
    req.on("end", () => {
      let body;
      try { body = JSON.parse(raw); } catch (e) { return apiError(res, 400, "body is not JSON: " + e.message); }
      interactive(req, res, body);
    });
    return undefined;
  }
  if (req.method === "GET") return serveStatic(req, res);
  return apiError(res, 404, "no route " + req.method + " " + url.pathname);
});

server.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  console.log("listening on " + server.address().port);
});
