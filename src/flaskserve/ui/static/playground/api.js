// Calls to this server from the playground, with the API key typed into the page.
// The key lives in this module's variable only: never in a URL, a cookie or web storage,
// so it is gone when the tab is closed or reloaded.
let apiKey = "";

export function setKey(key) {
  apiKey = key;
}

export function hasKey() {
  return apiKey !== "";
}

// An answer the server refused: its status, and the message of its JSON error body.
export class ServerError extends Error {
  constructor(status, message, code) {
    super(message || `the server answered ${status}`);
    this.status = status;
    this.code = code || "";
  }
}

// Sends one request and returns the parsed JSON answer, or throws a ServerError. A Blob body
// (an image) is sent as it is, with its own type; anything else as JSON.
export async function call(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  const raw = body instanceof Blob;
  if (body !== undefined) headers["Content-Type"] = raw ? body.type : "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined || raw ? body : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  let answer = null;
  try {
    answer = await response.json();
  } catch (_) {
    answer = null;
  }
  if (!response.ok) {
    const message = answer && typeof answer.error === "string" ? answer.error : "";
    throw new ServerError(response.status, message, answer && answer.code);
  }
  return answer;
}

// The path of a model version's route: /models/NAME/versions/V/VERB.
export function modelPath(name, version, verb) {
  return `/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/${verb}`;
}
