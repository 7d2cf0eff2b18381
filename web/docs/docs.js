// docs.js: a small OpenAPI 3 viewer for /docs. It fetches the server's
// /openapi.json and renders every operation (method, path, summary, parameters,
// request body schema, responses) with a "try it" form that sends the request to
// this server and shows the response as it streams in.
//
// The document is rendered through textContent only, never innerHTML, so a
// description can't inject markup.
(function () {
  "use strict";

  const METHODS = ["get", "post", "put", "patch", "delete", "head", "options"];
  const MAX_DEPTH = 8;   // schema nesting rendered; deeper (or cyclic) refs print their name

  let spec = null;

  // h("div", {class: "x", "data-testid": "y"}, child, "text", ...) -> element
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  // '#/components/schemas/Name' -> [object, "Name"]; other refs are not followed.
  function resolveRef(ref) {
    if (typeof ref !== "string" || !ref.startsWith("#/")) return [null, ref];
    let cur = spec;
    for (const part of ref.slice(2).split("/")) {
      const key = part.replace(/~1/g, "/").replace(/~0/g, "~");
      cur = cur && typeof cur === "object" ? cur[key] : undefined;
    }
    return [cur || null, ref.split("/").pop()];
  }

  // A list field of the document; an encoder may write an empty list as {}.
  function list(v) { return Array.isArray(v) ? v : []; }

  function deref(obj) {
    return obj && obj.$ref ? resolveRef(obj.$ref)[0] || {} : obj || {};
  }

  function typeName(s) {
    if (!s) return "any";
    if (s.$ref) return resolveRef(s.$ref)[1];
    let t = Array.isArray(s.type) ? s.type.join(" | ") : s.type;
    if (!t && s.properties) t = "object";
    if (t === "array") t = "array of " + typeName(s.items);
    if (!t) t = s.oneOf ? "oneOf" : s.anyOf ? "anyOf" : s.allOf ? "allOf" : "any";
    if (s.nullable) t += " | null";
    return t;
  }

  // " [0, 2]" or " (0, 1]": exclusive bounds are numbers in OpenAPI 3.1, flags in 3.0.
  function rangeText(p) {
    const exMin = typeof p.exclusiveMinimum === "number" ? p.exclusiveMinimum : null;
    const exMax = typeof p.exclusiveMaximum === "number" ? p.exclusiveMaximum : null;
    const lo = exMin ?? p.minimum, hi = exMax ?? p.maximum;
    if (lo === undefined && hi === undefined) return "";
    const open = exMin !== null || p.exclusiveMinimum === true ? "(" : "[";
    const close = exMax !== null || p.exclusiveMaximum === true ? ")" : "]";
    return ` ${open}${lo ?? ""}, ${hi ?? ""}${close}`;
  }

  // A readable outline of a schema, one property a line:
  //   model: string (required) — the model id
  function schemaLines(s, indent, depth, seen, out) {
    const pad = "  ".repeat(indent);
    if (s && s.$ref) {
      const [target, name] = resolveRef(s.$ref);
      if (!target || seen.has(s.$ref) || depth > MAX_DEPTH) { out.push(pad + "→ " + name); return; }
      seen = new Set(seen).add(s.$ref);
      s = target;
    }
    s = s || {};
    for (const key of ["oneOf", "anyOf", "allOf"]) {
      if (!Array.isArray(s[key])) continue;
      out.push(pad + key + ":");
      s[key].forEach((sub, i) => {
        out.push(pad + "  [" + i + "] " + typeName(sub));
        schemaLines(sub, indent + 2, depth + 1, seen, out);
      });
    }
    if (Array.isArray(s.enum)) out.push(pad + "one of: " + s.enum.map((v) => JSON.stringify(v)).join(", "));
    const props = s.properties || {};
    const required = new Set(list(s.required));
    for (const [name, p0] of Object.entries(props)) {
      const p = deref(p0);
      let line = `${pad}${name}: ${typeName(p0)}`;
      if (required.has(name)) line += " (required)";
      if (p.default !== undefined) line += " = " + JSON.stringify(p.default);
      line += rangeText(p);
      if (p.description) line += " — " + p.description;
      out.push(line);
      const nested = p.type === "array" ? p.items : p0;
      if (nested && (nested.$ref || deref(nested).properties || deref(nested).oneOf || deref(nested).anyOf)) {
        schemaLines(nested, indent + 1, depth + 1, seen, out);
      }
    }
    if (s.type === "array" && s.items && !Object.keys(props).length) {
      out.push(pad + "items: " + typeName(s.items));
      schemaLines(s.items, indent + 1, depth + 1, seen, out);
    }
  }

  function schemaText(s) {
    const out = [typeName(s)];
    schemaLines(s, 1, 0, new Set(), out);
    return out.join("\n");
  }

  // An example value for a schema: its example or default, else an instance with the
  // required properties (when none is marked required: those with an example or a
  // default, else all).
  function exampleOf(s, depth) {
    if (depth > MAX_DEPTH) return null;
    if (s && s.$ref) s = resolveRef(s.$ref)[0] || {};
    s = s || {};
    if (s.example !== undefined) return s.example;
    if (s.default !== undefined) return s.default;
    if (Array.isArray(s.enum) && s.enum.length) return s.enum[0];
    const alt = [s.oneOf, s.anyOf, s.allOf].find(Array.isArray);
    if (alt && alt.length) return exampleOf(alt[0], depth + 1);
    const t = Array.isArray(s.type) ? s.type[0] : s.type || (s.properties ? "object" : null);
    if (t === "object") {
      const out = {};
      const props = s.properties || {};
      const given = Object.keys(props).filter((k) => deref(props[k]).example !== undefined || deref(props[k]).default !== undefined);
      const keys = list(s.required).length ? list(s.required) : given.length ? given : Object.keys(props);
      for (const k of keys) out[k] = exampleOf(props[k], depth + 1);
      return out;
    }
    if (t === "array") return [exampleOf(s.items, depth + 1)];
    if (t === "string") return "string";
    if (t === "integer" || t === "number") return s.minimum !== undefined ? s.minimum : 0;
    if (t === "boolean") return false;
    return null;
  }

  function requestExample(body) {
    const media = (body.content || {})["application/json"];
    if (!media) return null;
    if (media.example !== undefined) return media.example;
    const ex = media.examples && Object.values(media.examples)[0];
    if (ex && ex.value !== undefined) return ex.value;
    return exampleOf(media.schema, 0);
  }

  function paramsTable(params) {
    const rows = params.map((p0) => {
      const p = deref(p0);
      return h("tr", null, h("td", null, h("code", null, p.name)), h("td", null, p.in),
        h("td", null, typeName(p.schema) + (p.required ? " (required)" : "")), h("td", null, p.description || ""));
    });
    return h("table", null, h("tr", null, h("th", null, "name"), h("th", null, "in"), h("th", null, "type"),
      h("th", null, "description")), ...rows);
  }

  function responsesTable(responses) {
    const rows = Object.entries(responses || {}).map(([code, r0]) => {
      const r = deref(r0);
      const types = Object.entries(r.content || {}).map(([t, m]) => t + (m.schema ? ": " + typeName(m.schema) : ""));
      return h("tr", null, h("td", null, h("code", null, code)), h("td", null, r.description || ""),
        h("td", null, types.join(", ")));
    });
    return h("table", { "data-testid": "responses" }, ...rows);
  }

  // The "try it" form: path/query parameter inputs, a JSON body, Send; the answer is
  // read as a stream so SSE and NDJSON responses show up as they are produced.
  function tryItForm(path, method, op, params) {
    const inputs = params.map(deref).filter((p) => p.in === "path" || p.in === "query").map((p) => {
      const input = h("input", { type: "text", name: p.name, placeholder: p.in + " parameter" });
      if (p.example !== undefined) input.value = String(p.example);
      return [p, input];
    });
    const body = op.requestBody ? deref(op.requestBody) : null;
    const example = body ? requestExample(body) : null;
    const textarea = body ? h("textarea", { class: "body", "data-testid": "try-body", spellcheck: "false" }) : null;
    if (textarea) textarea.value = example === null ? "{}" : JSON.stringify(example, null, 2);
    const send = h("button", { type: "submit", "data-testid": "try-send" }, "Send");
    const status = h("div", { class: "response-status", "data-testid": "try-status" });
    const output = h("pre", { "data-testid": "try-response", hidden: "" });
    const form = h("form", { class: "try" }, ...inputs.map(([p, i]) => h("label", null, h("code", null, p.name), i)),
      textarea, send, status, output);
    let controller = null;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (controller) { controller.abort(); return; }
      let url = path;
      const query = new URLSearchParams();
      for (const [p, i] of inputs) {
        if (p.in === "path") url = url.replace("{" + p.name + "}", encodeURIComponent(i.value));
        else if (i.value !== "") query.set(p.name, i.value);
      }
      if ([...query].length) url += "?" + query;
      const init = { method: method.toUpperCase() };
      if (textarea) {
        try { JSON.parse(textarea.value); } catch (e) { status.textContent = "The body is not valid JSON: " + e.message; return; }
        init.body = textarea.value;
        init.headers = { "content-type": "application/json" };
      }
      controller = new AbortController();
      init.signal = controller.signal;
      send.textContent = "Abort";
      output.hidden = false;
      output.textContent = "";
      status.textContent = init.method + " " + url + " …";
      try {
        const res = await fetch(url, init);
        status.textContent = `${res.status} ${res.statusText} · ${res.headers.get("content-type") || "no content-type"}`;
        const reader = res.body ? res.body.getReader() : null;
        const decoder = new TextDecoder();
        for (;;) {
          const { done, value } = reader ? await reader.read() : { done: true };
          if (done) break;
          output.append(decoder.decode(value, { stream: true }));
        }
        output.append(decoder.decode());
        prettyPrint(output);
      } catch (e) {
        status.textContent += e.name === "AbortError" ? " · aborted" : " · " + e.message;
      }
      controller = null;
      send.textContent = "Send";
    });
    return form;
  }

  // A whole-JSON response is re-indented; streams (several objects) stay as sent.
  function prettyPrint(pre) {
    try { pre.textContent = JSON.stringify(JSON.parse(pre.textContent), null, 2); } catch (_) { /* not one JSON value */ }
  }

  function operationCard(path, method, op, shared) {
    const params = list(shared).concat(list(op.parameters));
    const body = op.requestBody ? deref(op.requestBody) : null;
    const parts = [];
    if (op.description) parts.push(h("p", null, op.description));
    if (params.length) parts.push(h("h3", null, "Parameters"), paramsTable(params));
    if (body) {
      for (const [type, media] of Object.entries(body.content || {})) {
        parts.push(h("h3", null, "Request body · " + type + (body.required ? " (required)" : "")),
          h("pre", { "data-testid": "request-schema" }, media.schema ? schemaText(media.schema) : "(no schema)"));
      }
    }
    if (op.responses) parts.push(h("h3", null, "Responses"), responsesTable(op.responses));
    parts.push(h("h3", null, "Try it"), tryItForm(path, method, op, params));
    return h("details", { class: "op", "data-testid": "operation", "data-path": path, "data-method": method },
      h("summary", null, h("span", { class: "method", "data-method": method }, method),
        h("span", { class: "path", "data-testid": "operation-path" }, path),
        h("span", { class: "summary" }, op.summary || "")),
      h("div", { class: "op-body" }, ...parts));
  }

  function render() {
    const info = spec.info || {};
    document.getElementById("title").textContent = info.title || "API";
    document.title = (info.title || "API") + " · tmrun";
    document.getElementById("version").textContent =
      [info.version && "version " + info.version, spec.openapi && "OpenAPI " + spec.openapi].filter(Boolean).join(" · ");
    document.getElementById("description").textContent = info.description || "";
    const list = document.getElementById("operations");
    let count = 0;
    for (const [path, item0] of Object.entries(spec.paths || {})) {
      const item = deref(item0);
      for (const method of METHODS) {
        if (!item[method]) continue;
        list.append(operationCard(path, method, item[method], item.parameters));
        count += 1;
      }
    }
    const status = document.getElementById("load-status");
    status.textContent = count + " operations";
    status.dataset.state = "loaded";
  }

  async function load() {
    const status = document.getElementById("load-status");
    try {
      const res = await fetch("/openapi.json");
      if (!res.ok) throw new Error("GET /openapi.json: HTTP " + res.status);
      spec = await res.json();
      render();
    } catch (e) {
      status.textContent = "Could not load the API description: " + e.message;
      status.className = "error";
      status.dataset.state = "error";
    }
  }

  load();
})();
