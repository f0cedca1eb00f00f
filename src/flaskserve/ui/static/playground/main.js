// The playground: /ui lists the models as cards with live figures; /ui/models/NAME[/versions/V]
// is a form built from the model's signature, with its scenario widget, batch CSV, explanations
// and the same request as code.
import { call, setKey, hasKey, ServerError, modelPath } from "./api.js";
import { el, formatNumber } from "./dom.js";
import { barChart, signedBars, sparkline } from "./charts.js";
import { parseCsv, formatCsv } from "./csv.js";
import { snippets } from "./snippets.js";
import { drawingPad, chatBox, recommendations } from "./widgets.js";
import { driftSection } from "./drift.js";

const main = document.getElementById("main");
const statusLine = document.getElementById("status");
const FIGURES_EVERY_MS = 3000;
const FIGURES_KEPT = 30;
const BATCH_MAX_ROWS = 1000;
let figuresTimer = null;

function say(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function explainFailure(error) {
  if (error instanceof ServerError && error.status === 401) {
    return hasKey() ? "The server refused this API key (401): check it and press Use key again."
      : "This server needs an API key (401): type one above and press Use key.";
  }
  if (error instanceof ServerError && error.status === 403) {
    return `This key may not do that (403): ${error.message}`;
  }
  return error instanceof ServerError ? `${error.status}: ${error.message}` : String(error.message || error);
}

async function show() {
  clearInterval(figuresTimer);
  main.replaceChildren();
  const parts = window.location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[1] === "models" && parts[2]) await modelPage(parts[2], parts[4] || null);
    else await overview();
  } catch (error) {
    say(explainFailure(error), true);
  }
}

document.getElementById("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  setKey(document.getElementById("api-key").value.trim());
  show();
});

// -- the overview --------------------------------------------------------------------------

function describeList(values, limit = 6) {
  if (!values || values.length === 0) return "—";
  const shown = values.slice(0, limit).map(String).join(", ");
  return values.length > limit ? `${shown}, … (${values.length})` : shown;
}

function definition(term, value) {
  return [el("dt", { textContent: term }), el("dd", { textContent: value })];
}

async function overview() {
  const { models } = await call("/models");
  say(`${models.length} model${models.length === 1 ? "" : "s"} served`);
  const cards = el("div", { className: "cards" });
  const figureSlots = new Map();
  for (const model of models) {
    const latest = model.versions.find((v) => v.version === model.default_version) || model.versions[0];
    const signature = (latest && latest.signature) || {};
    const slot = el("div", { className: "figures", "aria-label": `Live figures of ${model.name}` });
    figureSlots.set(model.name, slot);
    cards.append(el("article", { className: "card", "data-model": model.name },
      el("h2", {}, el("a", { href: `/ui/models/${encodeURIComponent(model.name)}`, textContent: model.name })),
      el("dl", {},
        ...definition("Versions", model.versions.map((v) => `${v.version} (${v.state})`).join(", ")),
        ...definition("Format", (latest && latest.platform) || "—"),
        ...definition("Input", `${signature.input || "—"}, ${signature.n_features ?? 0} feature(s)`),
        ...definition("Features", describeList(signature.features)),
        ...definition("Classes", describeList(signature.classes)),
        ...definition("Methods", describeList(signature.methods))),
      slot));
  }
  main.append(el("h2", { className: "page-title", textContent: "Models" }), cards);
  const history = new Map();
  const refresh = async () => {
    try {
      const { models: figures } = await call("/ui/api/figures");
      for (const [name, slot] of figureSlots) {
        const readings = history.get(name) || [];
        readings.push(figures[name]);
        if (readings.length > FIGURES_KEPT) readings.shift();
        history.set(name, readings);
        slot.replaceChildren(...figureRows(readings));
      }
    } catch (error) {
      clearInterval(figuresTimer);
      for (const slot of figureSlots.values()) {
        slot.replaceChildren(el("p", { className: "hint", textContent: `Live figures unavailable: ${explainFailure(error)}` }));
      }
    }
  };
  await refresh();
  figuresTimer = setInterval(refresh, FIGURES_EVERY_MS);
}

// Rows of figure, current value and a sparkline of its change between readings.
function figureRows(readings) {
  const last = readings[readings.length - 1];
  const deltas = (key) => readings.map((r, i) => (i === 0 ? null : Math.max(0, r[key] - readings[i - 1][key])));
  const ms = (value) => (value === null ? "—" : `${formatNumber(value)} ms`);
  const ratio = last.cache_hit_ratio === null ? "—" : `${Math.round(last.cache_hit_ratio * 100)}%`;
  const rows = [
    ["Requests", formatNumber(last.requests), deltas("requests"), "requests per reading"],
    ["p50 / p99", `${ms(last.p50_ms)} / ${ms(last.p99_ms)}`, readings.map((r) => r.p99_ms), "p99 latency"],
    ["Errors (4xx / 5xx)", `${formatNumber(last.client_errors)} / ${formatNumber(last.server_errors)}`,
      readings.map((r, i) => (i === 0 ? null : Math.max(0, r.client_errors + r.server_errors
        - readings[i - 1].client_errors - readings[i - 1].server_errors))), "errors per reading"],
    ["Cache hits", ratio, readings.map((r) => r.cache_hit_ratio), "cache hit ratio"],
  ];
  return [el("table", { className: "figure-table" },
    el("tbody", {}, ...rows.map(([name, value, series, title]) => el("tr", { "data-figure": name },
      el("th", { scope: "row", textContent: name }),
      el("td", { className: "figure-value", textContent: value }),
      el("td", {}, sparkline(series, { title })))))),
  ];
}

// -- one model ---------------------------------------------------------------------------

function fieldInput(field, index) {
  const id = `feature-${index}`;
  const described = field.description ? `${id}-help` : null;
  let input;
  if (field.input === "text") {
    input = el("textarea", { id, value: String(field.value ?? ""), rows: 3 });
  } else if (field.input === "select") {
    input = el("select", { id }, ...field.choices.map((choice) =>
      el("option", { value: String(choice), textContent: formatNumber(choice) })));
    input.value = String(field.value);
  } else {
    input = el("input", { id, type: "number", inputMode: "decimal", value: String(field.value), required: true,
      step: field.step === null ? "any" : String(field.step) });
    if (field.min !== null) input.min = String(field.min);
    if (field.max !== null) input.max = String(field.max);
  }
  input.dataset.feature = field.name;
  if (described) input.setAttribute("aria-describedby", described);
  const range = field.min !== null && field.max !== null ? ` (${formatNumber(field.min)} to ${formatNumber(field.max)})` : "";
  return el("div", { className: "field" },
    el("label", { htmlFor: id, textContent: field.name }),
    input,
    described ? el("small", { id: described, textContent: field.description + range }) :
      (range ? el("small", { textContent: range.trim() }) : null));
}

// The value of one cell as the model takes it: text as typed, numbers as numbers; anything else is
// sent as typed, so that the server's message names it.
function cellValue(text, isText) {
  if (isText) return text;
  const trimmed = text.trim();
  if (trimmed === "") return null;
  const number = Number(trimmed);
  return Number.isFinite(number) ? number : trimmed;
}

function topClass(answer) {
  const [label, score] = Object.entries(answer).sort((a, b) => b[1] - a[1])[0];
  return { label, score };
}

async function modelPage(name, wanted) {
  const description = await call(`/models/${encodeURIComponent(name)}`);
  const version = wanted || description.default_version;
  const entry = description.versions.find((v) => v.version === version);
  if (!entry) throw new Error(`model '${name}' has no version '${version}'`);
  if (entry.state !== "READY" || !entry.signature) {
    say(`Model ${name} version ${version} is ${entry.state}${entry.reason ? `: ${entry.reason}` : ""}`, true);
    return;
  }
  const form = await call(`/ui/api/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/form`);
  const signature = entry.signature;
  const isText = signature.input === "text";
  const explainable = Boolean(entry.explainable ?? description.explainable ?? false);
  say(`Model ${name}, version ${version}: ${entry.platform}, ${signature.n_features} feature(s)`);

  // Header: version and method.
  const versionSelect = el("select", { id: "version" }, ...description.versions.map((v) =>
    el("option", { value: v.version, textContent: `${v.version} (${v.state})` })));
  versionSelect.value = version;
  versionSelect.addEventListener("change", () => {
    window.location.assign(`/ui/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(versionSelect.value)}`);
  });
  const methods = signature.methods;
  const methodSelect = el("select", { id: "method" }, ...methods.map((m) => el("option", { value: m, textContent: m })));
  methodSelect.value = signature.classes && methods.includes("predict_proba") ? "predict_proba"
    : (entry.default_method || methods[0]);

  const fields = form.fields.map(fieldInput);
  const inputs = () => [...main.querySelectorAll("#predict-form [data-feature]")];
  const readRow = () => Object.fromEntries(inputs().map((input) =>
    [input.dataset.feature, cellValue(input.value, input.tagName === "TEXTAREA")]));
  const writeRow = (values) => inputs().forEach((input, i) => { input.value = String(values[i]); });

  const resultPane = el("section", { id: "result", className: "result", "aria-live": "polite", "aria-label": "Answer" });
  const explanationPane = el("section", { id: "explanation", className: "explanation", "aria-label": "Explanation" });
  explanationPane.hidden = !explainable;
  const scenario = el("div", { id: "scenario" });
  const drift = driftSection(name, version);

  async function predictRows(rows, method) {
    const path = `${modelPath(name, version, "predict")}?method=${encodeURIComponent(method)}`;
    return (await call(path, { method: "POST", body: { instances: rows } })).predictions;
  }

  function showAnswer(answer) {
    const method = methodSelect.value;
    resultPane.replaceChildren(el("h3", { textContent: `Answer (${method})` }));
    if (answer !== null && typeof answer === "object" && !Array.isArray(answer)) {
      const { label } = topClass(answer);
      resultPane.append(el("p", { className: "answer", "data-answer": label, textContent: `Top class: ${label}` }),
        barChart(Object.entries(answer), { label: `Top classes by ${method}` }));
    } else if (Array.isArray(answer) && form.widget === "recommendations") {
      resultPane.append(recommendations(answer, (item) => { writeRow([item]); predictNow(); }));
    } else {
      const text = Array.isArray(answer) ? answer.map(formatNumber).join(", ") : formatNumber(answer);
      resultPane.append(el("p", { className: "answer", "data-answer": JSON.stringify(answer), textContent: text }));
    }
  }

  // body: {instances: [row]}, or the image a prediction was made from.
  async function explain(body) {
    if (!explainable) return;
    explanationPane.replaceChildren(el("h3", { textContent: "Why" }), el("p", { className: "hint", textContent: "Explaining…" }));
    try {
      const answer = await call(modelPath(name, version, "explain"), { method: "POST", body });
      const explanation = answer.explanations[0];
      const total = Object.values(explanation.contributions).reduce((a, b) => a + b, 0);
      explanationPane.replaceChildren(el("h3", { textContent: `Why ${explanation.output}` }),
        el("p", { className: "explain-sum", "data-base": String(explanation.base_value), "data-value": String(explanation.value),
          textContent: `base ${formatNumber(explanation.base_value)} + contributions ${formatNumber(total)} = `
            + `${formatNumber(explanation.value)} (${answer.scale}, ${answer.explainer})` }),
        signedBars(explanation.contributions, { label: `Contributions to ${explanation.output}` }));
    } catch (error) {
      explanationPane.replaceChildren(el("h3", { textContent: "Why" }), el("p", { className: "error", textContent: explainFailure(error) }));
    }
  }

  async function predictNow() {
    const row = readRow();
    updateSnippets();
    resultPane.replaceChildren(el("p", { className: "hint", textContent: "Predicting…" }));
    try {
      const [answer] = await predictRows([row], methodSelect.value);
      showAnswer(answer);
      drift.refresh();
      await explain({ instances: [row] });
    } catch (error) {
      resultPane.replaceChildren(el("p", { className: "error", role: "alert", textContent: explainFailure(error) }));
    }
  }

  // A drawing sent as a PNG body: the server decodes, resizes and scales it as for any image client.
  async function predictImage(png) {
    updateSnippets();
    resultPane.replaceChildren(el("p", { className: "hint", textContent: "Predicting…" }));
    try {
      const image = await png();
      const path = `${modelPath(name, version, "predict")}?method=${encodeURIComponent(methodSelect.value)}`;
      showAnswer((await call(path, { method: "POST", body: image })).prediction);
      drift.refresh();
      await explain(image);
    } catch (error) {
      resultPane.replaceChildren(el("p", { className: "error", role: "alert", textContent: explainFailure(error) }));
    }
  }

  // Scenario widgets.
  if (form.widget === "drawing") {
    const hint = form.image ? "Draw in the box; the drawing goes to the model as a PNG image." : undefined;
    scenario.append(drawingPad(form.drawing, (values, png) => {
      writeRow(values);
      if (form.image) predictImage(png);
      else predictNow();
    }, { hint }));
  } else if (form.widget === "chat" && isText) {
    const canScore = methods.includes("predict_proba");
    scenario.append(chatBox(async (text) => {
      const [answer] = await predictRows([{ [form.fields[0].name]: text }], canScore ? "predict_proba" : "predict");
      if (!canScore) return { label: answer, confidence: null };
      const { label, score } = topClass(answer);
      return { label, confidence: score };
    }));
  }

  const fieldset = form.widget === "drawing"
    ? el("details", { className: "fields" }, el("summary", { textContent: `Pixel values (${fields.length})` }), ...fields)
    : el("div", { className: "fields" }, ...fields);
  const predictForm = el("form", { id: "predict-form", noValidate: true },
    el("fieldset", {}, el("legend", { textContent: "Input" }), fieldset),
    el("button", { type: "submit", className: "primary", textContent: "Predict" }));
  predictForm.addEventListener("submit", (event) => { event.preventDefault(); predictNow(); });
  predictForm.addEventListener("input", () => updateSnippets());

  // "Use it from code".
  const code = { curl: el("pre", { id: "code-curl" }), python: el("pre", { id: "code-python" }),
    tritonclient: el("pre", { id: "code-tritonclient" }) };
  function updateSnippets() {
    const texts = snippets({ origin: window.location.origin, name, version, method: methodSelect.value,
      row: readRow(), features: signature.features, text: isText, keyed: hasKey(), image: form.image });
    for (const [key, pre] of Object.entries(code)) pre.textContent = texts[key];
  }
  methodSelect.addEventListener("change", updateSnippets);

  main.append(
    el("h2", { className: "page-title", textContent: name }),
    el("div", { className: "controls" },
      el("label", { htmlFor: "version", textContent: "Version" }), versionSelect,
      el("label", { htmlFor: "method", textContent: "Method" }), methodSelect),
    scenario, predictForm, resultPane, explanationPane, drift.section,
    batchSection(name, signature, isText, () => methodSelect.value, predictRows),
    el("section", { className: "code", "aria-label": "Use it from code" }, el("h3", { textContent: "Use it from code" }),
      el("h4", { textContent: "curl" }), code.curl, el("h4", { textContent: "Python (requests)" }), code.python,
      el("h4", { textContent: "tritonclient (Open Inference Protocol)" }), code.tritonclient));
  updateSnippets();
}

// -- batch CSV ---------------------------------------------------------------------------

function answerCells(answer) {
  if (answer !== null && typeof answer === "object" && !Array.isArray(answer)) {
    const { label, score } = topClass(answer);
    return [label, score];
  }
  return [Array.isArray(answer) ? JSON.stringify(answer) : answer, ""];
}

function batchSection(name, signature, isText, method, predictRows) {
  const features = signature.features;
  const fileInput = el("input", { id: "batch-file", type: "file", accept: ".csv,text/csv" });
  const output = el("div", { id: "batch-result", "aria-live": "polite" });
  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    if (!file) return;
    output.replaceChildren(el("p", { className: "hint", textContent: "Predicting…" }));
    try {
      output.replaceChildren(...await runBatch(await file.text()));
    } catch (error) {
      output.replaceChildren(el("p", { className: "error", role: "alert", textContent: explainFailure(error) }));
    }
  });

  async function runBatch(text) {
    const [header, ...lines] = parseCsv(text);
    if (!header) throw new Error("the file is empty; it needs a header row naming the features");
    const columns = header.map((h) => h.trim());
    const missing = features.filter((f) => !columns.includes(f));
    if (missing.length) throw new Error(`the header lacks ${missing.join(", ")}; it needs ${features.join(", ")}`);
    if (lines.length > BATCH_MAX_ROWS) throw new Error(`${lines.length} rows; the page sends at most ${BATCH_MAX_ROWS}`);
    const records = lines.map((cells) => Object.fromEntries(features.map((f) =>
      [f, cellValue(cells[columns.indexOf(f)] ?? "", isText)])));
    const chosen = method();
    let results;
    try {
      results = (await predictRows(records, chosen)).map((answer) => ({ answer }));
    } catch (error) {
      // One bad row refuses the whole batch: send the rows one by one to put each error by its row.
      if (!(error instanceof ServerError) || error.status !== 400) throw error;
      results = [];
      for (const record of records) {
        try {
          results.push({ answer: (await predictRows([record], chosen))[0] });
        } catch (rowError) {
          if (!(rowError instanceof ServerError) || rowError.status !== 400) throw rowError;
          results.push({ error: rowError.message });
        }
      }
    }
    const table = [[...features, "prediction", "score", "error"]];
    records.forEach((record, i) => {
      const { answer, error } = results[i];
      table.push([...features.map((f) => record[f]), ...(error ? ["", ""] : answerCells(answer)), error || ""]);
    });
    const failed = results.filter((r) => r.error).length;
    const link = el("a", { id: "batch-download", download: `${name}-predictions.csv`, textContent: "Download as CSV",
      href: URL.createObjectURL(new Blob([formatCsv(table)], { type: "text/csv" })) });
    return [
      el("p", { textContent: `${records.length} row(s), ${failed} refused. ` }, link),
      el("div", { className: "table-scroll" }, el("table", { className: "batch" },
        el("thead", {}, el("tr", {}, ...table[0].map((h) => el("th", { scope: "col", textContent: h })))),
        el("tbody", {}, ...table.slice(1).map((row) => el("tr", { className: row[row.length - 1] ? "refused" : "" },
          ...row.map((cell) => el("td", { textContent: typeof cell === "number" ? formatNumber(cell) : String(cell ?? "") }))))))),
    ];
  }

  return el("section", { className: "batch-section", "aria-label": "Batch" },
    el("h3", { textContent: "Batch from a CSV file" }),
    el("label", { htmlFor: "batch-file", textContent: "CSV file with a header row naming the features" }),
    fileInput, output);
}

show();
