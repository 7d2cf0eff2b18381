// chat.e2e.mjs: the web pages in headless Chromium (Debian's), driven by
// playwright-core, against a running server:
//
//   node tests/e2e/chat.e2e.mjs --base http://127.0.0.1:PORT [--screenshot FILE] [--wait-s 60]
//
// It checks the landing page's links, that /docs lists /v1/chat/completions, and on
// /chat: a message sent with Enter streams in (at least two lengths seen over time),
// Stop during a long turn ends it "cancelled", an API error is shown and the page
// stays usable, New conversation starts a new session that answers again. It also
// fails if any page loads anything from another origin, throws, or misses an asset.
//
// The last line of stdout is one JSON object {ok, skipped, error, steps, ...}.
// Exit code: 0 passed, 1 failed, 2 bad arguments, 77 skipped (no playwright-core
// or no chromium).
import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const report = { ok: false, skipped: false, error: null, steps: [] };

function finish(code) {
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { base: null, screenshot: path.join(ROOT, "build/test-artifacts/chat.png"),
    chromium: "/usr/bin/chromium", waitS: 60 };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === "--base") opts.base = v.replace(/\/$/, "");
    else if (k === "--screenshot") opts.screenshot = path.resolve(v);
    else if (k === "--chromium") opts.chromium = v;
    else if (k === "--wait-s") opts.waitS = Number(v);
    else throw new Error(`unknown option ${k}`);
  }
  if (!opts.base) throw new Error("--base URL is required");
  return opts;
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

function step(name, detail) {
  report.steps.push(detail === undefined ? name : { name, ...detail });
}

// playwright-core lives in tests/js/node_modules (the project's test references).
function loadPlaywright() {
  try {
    return createRequire(path.join(ROOT, "tests/js/package.json"))("playwright-core");
  } catch (_) {
    return null;
  }
}

async function waitForServer(base, seconds) {
  const deadline = Date.now() + seconds * 1000;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(base + "/v1/models");
      if (res.ok) return;
      last = "HTTP " + res.status;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server at ${base} not ready after ${seconds} s: ${last}`);
}

// Records what a page must never do: load from another origin, throw, miss an asset.
function watchPage(page, base, problems) {
  const origin = new URL(base).origin;
  page.on("request", (req) => {
    const u = new URL(req.url());
    if (u.protocol !== "data:" && u.protocol !== "blob:" && u.origin !== origin) problems.push("external request " + req.url());
  });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  // A failed API call is logged by Chromium too; those are checked where they are
  // expected, so only failed page assets count here.
  page.on("response", (res) => {
    const type = res.request().resourceType();
    if (res.status() >= 400 && ["document", "stylesheet", "script", "image", "font"].includes(type)) {
      problems.push(`${res.status()} for ${type} ${res.url()}`);
    }
  });
  page.on("console", (msg) => {
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) problems.push("console error: " + msg.text());
  });
}

async function checkLanding(page, base) {
  await page.goto(base + "/");
  check(await page.locator('a[href="/chat"]').count() > 0, "/ has no link to /chat");
  check(await page.locator('a[href="/docs"]').count() > 0, "/ has no link to /docs");
  await page.waitForFunction(() => document.getElementById("model-name").textContent !== "…");
  step("landing", { model: await page.textContent("#model-name") });
}

async function checkDocs(page, base) {
  await page.goto(base + "/docs");
  await page.waitForSelector('#load-status[data-state="loaded"]', { timeout: 15000 });
  const paths = await page.$$eval('[data-testid="operation-path"]', (els) => els.map((e) => e.textContent));
  check(paths.includes("/v1/chat/completions"), "/docs does not list /v1/chat/completions: " + paths.join(", "));
  // "try it" on the model list: the answer comes back into the page
  const op = page.locator('[data-testid="operation"][data-path="/v1/models"][data-method="get"]');
  if (await op.count() > 0) {
    await op.locator("summary").click();
    await op.locator('[data-testid="try-send"]').click();
    await op.locator('[data-testid="try-response"]').filter({ hasText: '"object"' }).waitFor({ timeout: 10000 });
    check((await op.locator('[data-testid="try-status"]').textContent()).startsWith("200"), "try it: GET /v1/models not 200");
  }
  step("docs", { operations: paths.length });
}

// Samples the length of the newest assistant text every 5 ms inside the page, so
// that streaming is seen as text growing over time, not inferred from the result.
async function startSampling(page) {
  await page.evaluate(() => {
    window.__lengths = [];
    clearInterval(window.__sampler);
    window.__sampler = setInterval(() => {
      const all = document.querySelectorAll('[data-role="assistant"] [data-testid="message-text"]');
      const last = all[all.length - 1];
      if (last) window.__lengths.push(last.textContent.length);
    }, 5);
  });
}

async function stopSampling(page) {
  return page.evaluate(() => { clearInterval(window.__sampler); return window.__lengths; });
}

const assistantCount = (page) => page.locator('[data-role="assistant"]').count();

// Waits until turn number n (0-based, counting assistant bubbles) has ended, or an
// error bubble came after it; returns its finish reason, text and the status line.
async function waitTurnDone(page, n, timeout) {
  await page.waitForFunction((n) => {
    const all = document.querySelectorAll('[data-role="assistant"]');
    const last = document.querySelector("#messages .message:last-child");
    return (all[n] && all[n].dataset.state === "done") || (all.length <= n + 1 && last && last.dataset.role === "error");
  }, n, { timeout });
  return page.evaluate((n) => {
    const b = document.querySelectorAll('[data-role="assistant"]')[n];
    return { finish: b ? b.dataset.finish : "error", text: b ? b.querySelector(".text").textContent : "",
      status: document.getElementById("status").textContent };
  }, n);
}

async function setMaxTokens(page, n) {
  await page.fill("#max-tokens", String(n));
}

// Sends with Enter and watches the reply stream in; retried when the random model
// happens to end its reply (EOS) before two lengths could be seen.
async function checkStreaming(page) {
  await page.fill("#input", "line one");
  await page.press("#input", "Shift+Enter");
  await page.type("#input", "line two");
  check((await page.inputValue("#input")) === "line one\nline two", "Shift+Enter did not insert a newline");
  check(await page.locator('[data-role="user"]').count() === 0, "Shift+Enter sent the message");
  await setMaxTokens(page, 2000); // long enough to span many frames on a fast machine
  for (let attempt = 1; attempt <= 3; attempt++) {
    await page.fill("#input", "Tell me a story about a brave little fox, please.");
    const n = await assistantCount(page);
    await startSampling(page);
    await page.press("#input", "Enter");
    const turn = await waitTurnDone(page, n, 60000);
    const lengths = await stopSampling(page);
    const distinct = [...new Set(lengths.filter((n) => n > 0))];
    if (distinct.length >= 2) {
      check(turn.finish !== "error", "the first turn failed: " + turn.status);
      check(distinct[distinct.length - 1] === turn.text.length, "the text kept changing after the turn ended");
      step("streaming", { attempt, finish: turn.finish, distinct_lengths: distinct.length, chars: turn.text.length });
      return;
    }
    check(turn.finish === "stop", `saw ${distinct.length} lengths of the reply (finish ${turn.finish}): not streamed`);
  }
  throw new Error("every attempt ended (EOS) before the reply was seen growing");
}

// Stop during a long turn: the turn must end "cancelled", with Stop enabled (and
// Send disabled) only while streaming. The fixture model is fast (a 2000-token
// turn can end within a second), so Stop is pressed as soon as text shows; the
// attempt is retried if the reply still ended by itself first.
async function checkStop(page) {
  await setMaxTokens(page, 2000);
  const tries = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    check(await page.isDisabled("#stop"), "Stop is enabled while idle");
    await page.fill("#input", "Now write a very long poem about the sea.");
    const n = await assistantCount(page);
    await page.click("#send");
    const seen = await (await page.waitForFunction((n) => {
      const b = document.querySelectorAll('[data-role="assistant"]')[n];
      if (!b || (b.dataset.state !== "done" && b.querySelector(".text").textContent.length === 0)) return null;
      return { streaming: b.dataset.state === "streaming", stop: !document.getElementById("stop").disabled,
        send: !document.getElementById("send").disabled };
    }, n, { timeout: 60000, polling: 5 })).jsonValue();
    let pressed = false;
    const t0 = Date.now();
    if (seen.streaming) {
      check(seen.stop && !seen.send, "while streaming, Stop must be enabled and Send disabled");
      pressed = await page.click("#stop", { timeout: 2000 }).then(() => true, () => false);
    }
    const turn = await waitTurnDone(page, n, 30000);
    tries.push({ pressed, click_ms: Date.now() - t0, finish: turn.finish });
    if (turn.finish === "cancelled") {
      check(pressed, "a turn ended cancelled without Stop");
      check(await page.isDisabled("#stop"), "Stop stays enabled after the turn ended");
      check(/cancelled/.test(turn.status), "the status line does not say cancelled: " + turn.status);
      step("stop", { attempt, tries, chars: turn.text.length, status: turn.status });
      return;
    }
    check(turn.finish === "stop" || turn.finish === "length", "the long turn failed: " + turn.status);
    await startOver(page);   // a whole session_len for the next attempt
  }
  throw new Error("the long turn always finished before Stop could be pressed: " + JSON.stringify(tries));
}

// An API error (here a 400 context_length_exceeded injected for one request) is
// shown in the page, and the page stays usable.
async function checkErrorShown(page) {
  const body = JSON.stringify({ error: { message: "the session is too long", type: "invalid_request_error",
    param: null, code: "context_length_exceeded" } });
  await page.route("**/v1/chat/interactive", (route) => route.fulfill({ status: 400, contentType: "application/json", body }),
    { times: 1 });
  await page.fill("#input", "this one fails");
  await page.click("#send");
  const err = page.locator('[data-role="error"]').last();
  await err.waitFor({ timeout: 10000 });
  const text = await err.textContent();
  check(text.includes("the session is too long") && text.includes("context_length_exceeded"), "error bubble: " + text);
  check(await page.getAttribute("#status", "data-state") === "error", "the status line does not show the error");
  check(await page.isEnabled("#send") && await page.isDisabled("#stop"), "the page is not usable after an error");
  step("error shown");
}

// New conversation: a new session id and an empty message list.
async function startOver(page) {
  const before = await page.evaluate(() => document.body.dataset.sessionId);
  await page.click("#new-chat");
  await page.waitForFunction((old) => document.body.dataset.sessionId !== old &&
    document.querySelectorAll("#messages .message").length === 0, before);
}

async function checkNewConversation(page) {
  await startOver(page);
  await setMaxTokens(page, 48);
  for (let attempt = 1; attempt <= 3; attempt++) {
    await page.fill("#input", "Hello again!");
    await page.click("#send");
    const turn = await waitTurnDone(page, attempt - 1, 60000);
    check(turn.finish !== "error", "the new conversation failed: " + turn.status);
    if (turn.text.length > 0) {
      check(await page.locator('[data-role="user"]').count() === attempt, "old messages are still shown");
      step("new conversation", { attempt, finish: turn.finish, chars: turn.text.length });
      return;
    }
  }
  throw new Error("the new conversation never answered with text");
}

async function checkChat(page, base) {
  await page.goto(base + "/chat");
  await page.waitForFunction(() => !/loading/.test(document.getElementById("model-name").textContent));
  await checkStreaming(page);
  await checkStop(page);
  await checkErrorShown(page);
  await checkNewConversation(page);
}

async function main() {
  let opts;
  try { opts = parseArgs(process.argv.slice(2)); } catch (e) { report.error = e.message; finish(2); }
  const pw = loadPlaywright();
  if (!pw) { report.skipped = true; report.error = "playwright-core is not installed in tests/js"; finish(77); }
  if (!fs.existsSync(opts.chromium)) { report.skipped = true; report.error = opts.chromium + " not found"; finish(77); }
  await waitForServer(opts.base, opts.waitS);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "tmrun-chromium-"));
  const context = await pw.chromium.launchPersistentContext(profile, {
    executablePath: opts.chromium, headless: true, viewport: { width: 1100, height: 800 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const problems = [];
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(30000);
  watchPage(page, opts.base, problems);
  fs.mkdirSync(path.dirname(opts.screenshot), { recursive: true });
  try {
    await checkLanding(page, opts.base);
    await checkDocs(page, opts.base);
    await checkChat(page, opts.base);
    await page.screenshot({ path: opts.screenshot });
    report.screenshot = opts.screenshot;
    report.ok = problems.length === 0;
    if (!report.ok) report.error = problems.join("; ");
  } catch (e) {
    report.error = e.message + (problems.length ? " [also: " + problems.join("; ") + "]" : "");
    const failed = opts.screenshot.replace(/\.png$/, "") + "-failure.png";
    await page.screenshot({ path: failed }).then(() => { report.screenshot = failed; }, () => {});
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  finish(report.ok ? 0 : 1);
}

main().catch((e) => { report.error = e.stack || String(e); finish(1); });
