"""Send a few held-out digit images to flaskserve over the Open Inference Protocol (V2).

The images travel as one FP32 tensor of shape ``[N, 64]`` (row-major pixels);
the answer carries two outputs, ``predict`` (the digit) and ``predict_proba``
(one probability per class, the confidence). Run from this folder while the
server is up (it needs ``requests``: ``pip install requests``)::

    python client.py --count 8 --port 5000

The port is ``--port``, else ``FLASKSERVE_PORT`` (the variable the server reads too),
else 5000; ``--url`` names another host. An error answer is shown as the server's
message, not a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import requests
from train import load_split


class ServerError(Exception):
    """The server refused the request; the message is its own, with the status and code."""


def answer(response: requests.Response) -> Any:
    """The JSON body of a successful answer; otherwise :class:`ServerError` with the server's message."""
    if response.ok:
        return response.json()
    try:
        error = response.json()
        shown = f"{error['error']} ({error['code']})"
    except (ValueError, KeyError, TypeError):
        shown = response.text.strip() or response.reason
    raise ServerError(f"the server answered {response.status_code}: {shown}")


def server_url(port: int | None, url: str | None) -> str:
    """``url`` if given, else the local server on ``port``, ``FLASKSERVE_PORT`` or 5000."""
    return url or f"http://127.0.0.1:{port or os.environ.get('FLASKSERVE_PORT') or 5000}"


def infer(url: str, images: Any) -> tuple[list[int], list[float]]:
    """The predicted digits and the probability the model gives each, for ``[N, 64]`` pixels."""
    pixels = [float(value) for value in images.to_numpy().reshape(-1)]
    body = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [len(images), 64], "data": pixels}],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    response = requests.post(f"{url}/v2/models/digits/infer", json=body, timeout=10)
    outputs = {output["name"]: output for output in answer(response)["outputs"]}
    digits = [int(d) for d in outputs["predict"]["data"]]
    n_classes = outputs["predict_proba"]["shape"][1]
    probabilities = outputs["predict_proba"]["data"]
    rows = [probabilities[i * n_classes : (i + 1) * n_classes] for i in range(len(digits))]
    return digits, [max(row) for row in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="the server's port (default: $FLASKSERVE_PORT, else 5000)")
    parser.add_argument("--url", help="the server's address, instead of http://127.0.0.1:PORT")
    parser.add_argument("--count", type=int, default=8, help="held-out images to send")
    args = parser.parse_args(argv)
    url = server_url(args.port, args.url)
    _, test_images, _, test_digits = load_split()
    images, truth = test_images.iloc[: args.count], test_digits.iloc[: args.count].tolist()
    try:
        digits, confidences = infer(url, images)
    except ServerError as error:
        sys.exit(str(error))
    except requests.ConnectionError:
        sys.exit(f"no server answers at {url}: start it with 'flaskserve serve --config flaskserve.toml'")
    for predicted, confidence, actual in zip(digits, confidences, truth, strict=True):
        verdict = "ok" if predicted == actual else "WRONG"
        print(f"predicted {predicted}  confidence {confidence:.2f}  truth {actual}  {verdict}")


if __name__ == "__main__":
    main()
