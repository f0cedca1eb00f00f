// "Use it from code": the exact request on screen as curl, Python requests and tritonclient.
// The key itself is never printed: the snippets read it from FLASKSERVE_API_KEY.

function shellQuote(text) {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

function pythonLiteral(value) {
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (Array.isArray(value)) return `[${value.map(pythonLiteral).join(", ")}]`;
  if (typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${pythonLiteral(v)}`).join(", ")}}`;
  }
  return JSON.stringify(value);
}

// request: {origin, name, version, method, row (by feature name), features, text (bool), keyed (bool),
// image (bool: the model also takes PNG and JPEG bodies)}
export function snippets(request) {
  const { origin, name, version, method, row, features, text, keyed, image } = request;
  const path = `/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/predict`;
  const url = `${origin}${path}?method=${encodeURIComponent(method)}`;
  const body = { instances: [row] };
  const curl = [`curl -s ${shellQuote(url)} \\`, "  -H 'content-type: application/json' \\"];
  if (keyed) curl.push('  -H "authorization: Bearer $FLASKSERVE_API_KEY" \\');
  curl.push(`  -d ${shellQuote(JSON.stringify(body))}`);
  if (image) {
    curl.push("", "# or an image file, read like the drawing on the pad:", `curl -s ${shellQuote(url)} \\`,
      "  -H 'content-type: image/png' --data-binary @drawing.png");
    if (keyed) curl.splice(curl.length - 1, 0, '  -H "authorization: Bearer $FLASKSERVE_API_KEY" \\');
  }

  const requests = ["import requests", ""];
  if (keyed) requests.splice(0, 0, "import os");
  requests.push(`body = ${pythonLiteral(body)}`);
  requests.push(`answer = requests.post(${JSON.stringify(url)}, json=body${keyed
    ? ',\n                       headers={"Authorization": "Bearer " + os.environ["FLASKSERVE_API_KEY"]}' : ""})`);
  requests.push("answer.raise_for_status()", 'print(answer.json()["predictions"][0])');

  const values = features.map((feature) => row[feature]);
  const host = origin.replace(/^https?:\/\//, "");
  const triton = ["import numpy as np", "import tritonclient.http as httpclient"];
  if (keyed) triton.splice(0, 0, "import os");
  triton.push("", `client = httpclient.InferenceServerClient(url=${JSON.stringify(host)}${
    origin.startsWith("https:") ? ', ssl=True' : ""})`);
  if (text) {
    triton.push(`data = np.array([${pythonLiteral(values[0])}.encode()], dtype=np.object_)`,
      `tensor = httpclient.InferInput(${JSON.stringify(features[0])}, [1], "BYTES")`);
  } else {
    triton.push(`data = np.array([${pythonLiteral(values)}], dtype=np.float64)`,
      'tensor = httpclient.InferInput("input", list(data.shape), "FP64")');
  }
  triton.push("tensor.set_data_from_numpy(data)",
    `result = client.infer(${JSON.stringify(name)}, [tensor], model_version=${JSON.stringify(version)},`,
    `                      outputs=[httpclient.InferRequestedOutput(${JSON.stringify(method)})]${keyed
      ? ',\n                      headers={"Authorization": "Bearer " + os.environ["FLASKSERVE_API_KEY"]}' : ""})`,
    `print(result.as_numpy(${JSON.stringify(method)}))`);
  return { curl: curl.join("\n"), python: requests.join("\n"), tritonclient: triton.join("\n") };
}
