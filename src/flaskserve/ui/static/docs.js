// The interactive API page: reads /openapi.json, lists its routes, sends requests.
// Everything the document or a response says is inserted as text, never as HTML.
"use strict";

let doc = null;
// The API key lives in this variable only: never in a URL, a cookie or web storage,
// so it is gone when the tab is closed or reloaded.
let apiKey = "";

// Headers for a request to this server: the caller's, plus the API key if one was given.
function withKey(headers) {
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  return headers;
}

// The message of one of our JSON errors ({"error": ..., "code": ...}), or "" for anything else.
async function errorMessage(response) {
  try {
    const body = await response.json();
    return typeof body.error === "string" ? body.error : "";
  } catch (_) {
    return "";
  }
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) node.append(child);
  return node;
}

function resolve(schema) {
  while (schema && schema.$ref) {
    schema = doc.components.schemas[schema.$ref.split("/").pop()];
  }
  return schema || {};
}

// A small example that fits the schema: required fields only, first enum value.
function example(schema, depth) {
  schema = resolve(schema);
  if (depth > 6) return null;
  if (schema.enum) return schema.enum[0];
  if (schema.oneOf || schema.anyOf) return example((schema.oneOf || schema.anyOf)[0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === "object" || schema.properties) {
    const value = {};
    for (const name of schema.required || []) value[name] = example(schema.properties[name], depth + 1);
    return value;
  }
  if (type === "array") return schema.items ? [example(schema.items, depth + 1)] : [];
  if (type === "integer" || type === "number") return 0;
  if (type === "boolean") return false;
  if (type === "string") return "";
  return null;
}

function showOperation(path, verb, op, button) {
  document.querySelectorAll("nav button.active").forEach((b) => b.classList.remove("active"));
  button.classList.add("active");
  const pane = document.getElementById("operation");
  pane.replaceChildren(el("h2", { textContent: `${verb.toUpperCase()} ${path}` }),
    el("p", { textContent: op.summary || "" }));
  if (op.description) pane.append(el("p", { className: "muted", textContent: op.description }));

  const fields = [];
  for (const param of op.parameters || []) {
    const id = `param-${param.in}-${param.name}`;
    const schema = param.schema || {};
    const input = schema.enum
      ? el("select", { id }, ...(param.required ? [] : [el("option", { value: "", textContent: "" })]),
          ...schema.enum.map((v) => el("option", { value: v, textContent: v })))
      : el("input", { id, placeholder: param.description || "" });
    fields.push({ param, input });
    pane.append(el("label", { htmlFor: id, textContent: `${param.name} (${param.in})` }), input);
  }

  let mediaSelect = null;
  let body = null;
  const content = op.requestBody ? op.requestBody.content : null;
  if (content) {
    const types = Object.keys(content);
    mediaSelect = el("select", { id: "media" }, ...types.map((t) => el("option", { value: t, textContent: t })));
    body = el("textarea", { id: "body", spellcheck: false });
    const fill = () => {
      const schema = content[mediaSelect.value].schema;
      body.value = mediaSelect.value.includes("json") ? JSON.stringify(example(schema, 0), null, 2) : "";
    };
    mediaSelect.addEventListener("change", fill);
    fill();
    pane.append(el("label", { htmlFor: "media", textContent: "Content-Type" }), mediaSelect,
      el("label", { htmlFor: "body", textContent: "Body" }), body);
  }

  const output = el("div", { id: "response" });
  const send = el("button", { className: "send", textContent: "Send" });
  send.addEventListener("click", async () => {
    let url = path;
    const query = new URLSearchParams();
    const headers = withKey({});
    for (const { param, input } of fields) {
      if (!input.value) continue;
      if (param.in === "path") url = url.replace(`{${param.name}}`, encodeURIComponent(input.value));
      else if (param.in === "query") query.set(param.name, input.value);
      else if (param.in === "header") headers[param.name] = input.value;
    }
    if ([...query].length) url += `?${query}`;
    const init = { method: verb.toUpperCase(), headers };
    if (body) {
      headers["Content-Type"] = mediaSelect.value;
      init.body = body.value;
    }
    output.replaceChildren(el("p", { className: "muted", textContent: "Sending…" }));
    try {
      const started = performance.now();
      const response = await fetch(url, init);
      const text = await response.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON: show as is */ }
      const headerLines = [...response.headers].map(([k, v]) => `${k}: ${v}`).join("\n");
      output.replaceChildren(
        el("p", { className: `status ${response.ok ? "status-ok" : "status-error"}`,
          textContent: `${response.status} ${response.statusText} · ${Math.round(performance.now() - started)} ms` }),
        el("pre", { className: "response-headers", textContent: headerLines }),
        el("pre", { className: "response-body", textContent: shown }));
    } catch (error) {
      output.replaceChildren(el("p", { className: "status status-error", textContent: String(error) }));
    }
  });
  pane.append(send, output);
}

async function load() {
  const info = document.getElementById("info");
  const nav = document.getElementById("routes");
  nav.replaceChildren();
  document.getElementById("operation").replaceChildren(
    el("p", { className: "hint", textContent: "Pick a route on the left to see it and send a request." }));
  const response = await fetch("/openapi.json", { headers: withKey({}) });
  if (!response.ok) {
    const message = await errorMessage(response);
    const needsKey = response.status === 401 || response.status === 403;
    info.textContent = `Could not load /openapi.json: ${response.status} ${response.statusText}` +
      (message ? ` (${message})` : "") + (needsKey ? ". Enter an API key with the read scope." : "");
    if (needsKey) document.getElementById("api-key").focus();
    return;
  }
  doc = await response.json();
  info.textContent =
    `${doc.info.title} ${doc.info.version} · OpenAPI ${doc.openapi} · ${Object.keys(doc.paths).length} paths`;
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [verb, op] of Object.entries(item)) {
      const tag = (op.tags || ["other"])[0];
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push({ path, verb, op });
    }
  }
  for (const [tag, ops] of groups) {
    nav.append(el("h2", { textContent: tag }));
    for (const { path, verb, op } of ops) {
      const button = el("button", { type: "button", title: op.summary || "" },
        el("span", { className: "verb", textContent: verb.toUpperCase() }),
        el("span", { className: "path", textContent: path }));
      button.addEventListener("click", () => showOperation(path, verb, op, button));
      nav.append(button);
    }
  }
}

function reload() {
  load().catch((error) => {
    document.getElementById("info").textContent = `Could not load /openapi.json: ${error}`;
  });
}

document.getElementById("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey = document.getElementById("api-key").value.trim();
  reload();
});

reload();
