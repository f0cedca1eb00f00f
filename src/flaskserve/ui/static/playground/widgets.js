// Scenario widgets above the form: a drawing pad for image models, a chat box for text models,
// and the recommended items of a recommender.
import { el, formatNumber } from "./dom.js";

const PAD_PIXELS = 224;

// A pixel grid at the model's input resolution. The pointer (or the arrow keys and Space) inks it;
// every stroke ends with done(values, png), the pixel row scaled to max_value, row by row, and a
// function that resolves to the drawing as a PNG Blob (dark ink on white, as a user draws on paper).
export function drawingPad({ width, height, max_value: maxValue }, done, { hint = "Draw in the box; the model sees these pixels." } = {}) {
  const cell = Math.max(4, Math.floor(PAD_PIXELS / Math.max(width, height)));
  const ink = new Float64Array(width * height);
  const canvas = el("canvas", {
    width: cell * width, height: cell * height, tabIndex: 0, className: "pad",
    "aria-label": `Drawing pad, ${width} by ${height} pixels: draw with the pointer, or move with the arrow keys and ink with Space; Enter predicts`,
    role: "img",
  });
  const context = canvas.getContext("2d");
  let cursor = { x: Math.floor(width / 2), y: Math.floor(height / 2) };
  let focused = false;
  let drawing = false;

  function paintInk(target) {
    target.fillStyle = "#fff";
    target.fillRect(0, 0, canvas.width, canvas.height);
    for (let y = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1) {
        const shade = Math.round(255 * (1 - ink[y * width + x]));
        target.fillStyle = `rgb(${shade},${shade},${shade})`;
        target.fillRect(x * cell, y * cell, cell, cell);
      }
    }
  }

  function paint() {
    paintInk(context);
    if (focused) {
      context.strokeStyle = "#1f5fbf";
      context.lineWidth = 2;
      context.strokeRect(cursor.x * cell + 1, cursor.y * cell + 1, cell - 2, cell - 2);
    }
  }

  // A soft brush: full ink at the cell, half on its four neighbours.
  function dab(x, y) {
    const spots = [[x, y, 1], [x - 1, y, 0.5], [x + 1, y, 0.5], [x, y - 1, 0.5], [x, y + 1, 0.5]];
    for (const [sx, sy, amount] of spots) {
      if (sx < 0 || sy < 0 || sx >= width || sy >= height) continue;
      ink[sy * width + sx] = Math.min(1, ink[sy * width + sx] + amount);
    }
    paint();
  }

  function cellAt(event) {
    const box = canvas.getBoundingClientRect();
    const x = Math.floor(((event.clientX - box.left) / box.width) * width);
    const y = Math.floor(((event.clientY - box.top) / box.height) * height);
    return [Math.min(width - 1, Math.max(0, x)), Math.min(height - 1, Math.max(0, y))];
  }

  const values = () => Array.from(ink, (v) => Math.round(v * maxValue * 100) / 100);
  // The ink alone, without the keyboard cursor, on a canvas of its own.
  const png = () => new Promise((resolve, reject) => {
    const copy = el("canvas", { width: canvas.width, height: canvas.height });
    paintInk(copy.getContext("2d"));
    copy.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the drawing could not be made a PNG"))), "image/png");
  });
  const finish = () => done(values(), png);
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    dab(...cellAt(event));
  });
  canvas.addEventListener("pointermove", (event) => { if (drawing) dab(...cellAt(event)); });
  canvas.addEventListener("pointerup", () => { if (drawing) { drawing = false; finish(); } });
  canvas.addEventListener("focus", () => { focused = true; paint(); });
  canvas.addEventListener("blur", () => { focused = false; paint(); });
  canvas.addEventListener("keydown", (event) => {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[event.key]) {
      const [dx, dy] = moves[event.key];
      cursor = { x: Math.min(width - 1, Math.max(0, cursor.x + dx)), y: Math.min(height - 1, Math.max(0, cursor.y + dy)) };
      paint();
    } else if (event.key === " ") dab(cursor.x, cursor.y);
    else if (event.key === "Enter") finish();
    else return;
    event.preventDefault();
  });
  const clear = el("button", { type: "button", textContent: "Clear" });
  clear.addEventListener("click", () => { ink.fill(0); paint(); finish(); });
  paint();
  return el("div", { className: "widget drawing" },
    el("p", { className: "hint", textContent: hint }), canvas, clear);
}

// A chat log and a message box. send(text) resolves to {label, confidence} (confidence may be null).
export function chatBox(send) {
  const log = el("ol", { className: "chat-log", "aria-label": "Conversation", "aria-live": "polite" });
  const input = el("input", { id: "chat-message", type: "text", autocomplete: "off", required: true });
  const form = el("form", { className: "chat-form" },
    el("label", { htmlFor: "chat-message", textContent: "Message" }), input,
    el("button", { type: "submit", textContent: "Send message" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    log.append(el("li", { className: "from-user", textContent: text }));
    const reply = el("li", { className: "from-model", textContent: "…" });
    log.append(reply);
    try {
      const { label, confidence } = await send(text);
      reply.textContent = confidence === null ? String(label) : `${label} (${formatNumber(confidence)})`;
      reply.dataset.label = String(label);
    } catch (error) {
      reply.textContent = error.message;
      reply.classList.add("error");
    }
  });
  return el("div", { className: "widget chat" }, log, form);
}

// The items a recommender answered, each a button that asks for more like it.
export function recommendations(items, pick) {
  const list = el("ol", { className: "items", "aria-label": "Recommended items" });
  for (const item of items) {
    const button = el("button", { type: "button", textContent: `Item ${item}` });
    button.addEventListener("click", () => pick(item));
    list.append(el("li", {}, button));
  }
  return el("div", { className: "widget recommendations" },
    el("h3", { textContent: "Recommended items" }), list,
    el("p", { className: "hint", textContent: "Pick one to see what is like it." }));
}
