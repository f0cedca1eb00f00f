// Charts drawn as SVG and CSS: horizontal bars for classes and contributions, sparklines for figures.
import { el, svg, formatNumber } from "./dom.js";

// Bars from 0 to 1 (or to the largest value), one row per [label, value], largest first.
export function barChart(entries, { label = "Answer", limit = 5 } = {}) {
  const sorted = [...entries].sort((a, b) => b[1] - a[1]).slice(0, limit);
  const top = Math.max(1, ...sorted.map(([, v]) => Math.abs(v)));
  const list = el("ul", { className: "bars", "aria-label": label });
  for (const [name, value] of sorted) {
    const width = `${Math.max(0, (Math.abs(value) / top) * 100).toFixed(1)}%`;
    const bar = el("span", { className: "bar" });
    bar.style.width = width;
    list.append(el("li", { "data-label": String(name), "data-value": String(value) },
      el("span", { className: "bar-label", textContent: String(name) }),
      el("span", { className: "bar-track" }, bar),
      el("span", { className: "bar-value", textContent: formatNumber(value) })));
  }
  return list;
}

// Signed bars around a centre line: positive contributions go right, negative left.
export function signedBars(contributions, { label = "Contributions" } = {}) {
  const entries = Object.entries(contributions).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  const top = Math.max(1e-12, ...entries.map(([, v]) => Math.abs(v)));
  const list = el("ul", { className: "bars signed", "aria-label": label });
  for (const [name, value] of entries) {
    const bar = el("span", { className: value < 0 ? "bar negative" : "bar positive" });
    bar.style.width = `${((Math.abs(value) / top) * 50).toFixed(1)}%`;
    list.append(el("li", { "data-label": name, "data-value": String(value) },
      el("span", { className: "bar-label", textContent: name }),
      el("span", { className: "bar-track" }, bar),
      el("span", { className: "bar-value", textContent: (value > 0 ? "+" : "") + formatNumber(value) })));
  }
  return list;
}

// A small line over the last readings; null readings are gaps.
export function sparkline(values, { title, width = 120, height = 28 } = {}) {
  const known = values.filter((v) => v !== null && Number.isFinite(v));
  const top = Math.max(1e-9, ...known);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  let path = "";
  values.forEach((value, index) => {
    if (value === null || !Number.isFinite(value)) return;
    const x = (index * step).toFixed(1);
    const y = (height - 2 - (value / top) * (height - 4)).toFixed(1);
    path += `${path && values[index - 1] !== null ? "L" : "M"}${x},${y}`;
  });
  const chart = svg("svg", { class: "spark", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": title || "trend" },
  svg("title", {}, title || ""), svg("path", { d: path || `M0,${height - 2}L${width},${height - 2}` }));
  // The latest reading as a dot, so that a single reading shows too.
  const last = values.length - 1;
  if (last >= 0 && values[last] !== null && Number.isFinite(values[last])) {
    const y = height - 2 - (values[last] / top) * (height - 4);
    chart.append(svg("circle", { cx: (last * step).toFixed(1), cy: y.toFixed(1), r: 2 }));
  }
  return chart;
}
