// Drift of one model version against its training profile, from GET /models/NAME/monitoring:
// shown only for a version that has a reference profile (flaskserve profile writes one).
import { call } from "./api.js";
import { el, formatNumber } from "./dom.js";

const SHOWN = 10;
// Below this many rows a PSI says little (the example alert rules wait for as many).
const FEW_ROWS = 200;

function percent(value) {
  return value === null || value === undefined ? "—" : `${formatNumber(Math.round(value * 1000) / 10)}%`;
}

function featureRow(entry) {
  const name = entry.role === "input" ? entry.feature : `${entry.feature} (${entry.role})`;
  return el("tr", { className: entry.band ? `band-${entry.band}` : "", "data-drift-feature": entry.feature },
    el("th", { scope: "row", textContent: name }),
    el("td", { textContent: formatNumber(entry.rows) }),
    el("td", { textContent: entry.psi === null ? "—" : formatNumber(entry.psi) }),
    el("td", { className: "band", textContent: entry.band || "—" }),
    el("td", { textContent: percent(entry.out_of_range) }),
    el("td", { textContent: percent(entry.missing) }));
}

// The most drifted features first, then the table of the SHOWN worst.
function report(version, windowSeconds) {
  const ranked = [...version.features].sort((a, b) => (b.psi ?? -1) - (a.psi ?? -1));
  const minutes = formatNumber(Math.round(windowSeconds / 6) / 10);
  const summary = el("p", { className: "drift-summary", "data-rows": String(version.window_rows),
    textContent: `${formatNumber(version.window_rows)} row(s) served in the last ${minutes} min, against the training profile`
      + (ranked.length > SHOWN ? ` (the ${SHOWN} most drifted of ${ranked.length} shown)` : "")
      + (version.window_rows < FEW_ROWS ? `; with fewer than ${FEW_ROWS} rows the PSI is mostly noise` : "") });
  if (ranked.length === 0) return [summary];
  return [summary, el("div", { className: "table-scroll" }, el("table", { className: "drift" },
    el("thead", {}, el("tr", {}, ...["Feature", "Rows", "PSI", "Band", "Out of range", "Missing"].map((h) =>
      el("th", { scope: "col", textContent: h })))),
    el("tbody", {}, ...ranked.slice(0, SHOWN).map(featureRow))))];
}

// A worker counts its rows into the shared window at least this often: a read answered by another
// worker sees a prediction within that time.
const COUNTED_WITHIN_MS = 600;

// A section that fills itself in, and again on refresh() (after each prediction, which it counts: once at
// once, and once more when any worker has counted it); it stays hidden when the version has no profile or
// the key may not read it.
export function driftSection(name, version) {
  const body = el("div", { id: "drift-report", "aria-live": "polite" });
  const refresh = el("button", { type: "button", textContent: "Refresh drift" });
  const section = el("section", { id: "drift", className: "drift-section", "aria-label": "Drift" },
    el("h3", { textContent: "Drift" }), body, refresh);
  section.hidden = true;
  async function load() {
    try {
      const answer = await call(`/models/${encodeURIComponent(name)}/monitoring`);
      const entry = answer.versions.find((v) => v.version === version);
      section.hidden = !(entry && entry.profiled);
      if (!section.hidden) body.replaceChildren(...report(entry, answer.window_s));
    } catch (_) {
      section.hidden = true;
    }
  }
  refresh.addEventListener("click", load);
  load();
  return { section, refresh: () => { load(); setTimeout(load, COUNTED_WITHIN_MS); } };
}
