"""Send a few held-out digit images to flaskserve over the Open Inference Protocol (V2).

The images travel as one FP32 tensor of shape ``[N, 64]`` (row-major pixels);
the answer carries two outputs, ``predict`` (the digit) and ``predict_proba``
(one probability per class, the confidence). Run from this folder while the
server is up::

    python client.py --count 8 --url http://127.0.0.1:5000
"""

from __future__ import annotations

import argparse
from typing import Any

import requests
from train import load_split


def infer(url: str, images: Any) -> tuple[list[int], list[float]]:
    """The predicted digits and the probability the model gives each, for ``[N, 64]`` pixels."""
    pixels = [float(value) for value in images.to_numpy().reshape(-1)]
    body = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [len(images), 64], "data": pixels}],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    response = requests.post(f"{url}/v2/models/digits/infer", json=body, timeout=10)
    response.raise_for_status()
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    digits = [int(d) for d in outputs["predict"]["data"]]
    n_classes = outputs["predict_proba"]["shape"][1]
    probabilities = outputs["predict_proba"]["data"]
    rows = [probabilities[i * n_classes : (i + 1) * n_classes] for i in range(len(digits))]
    return digits, [max(row) for row in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--count", type=int, default=8, help="held-out images to send")
    args = parser.parse_args(argv)
    _, test_images, _, test_digits = load_split()
    images, truth = test_images.iloc[: args.count], test_digits.iloc[: args.count].tolist()
    digits, confidences = infer(args.url, images)
    for predicted, confidence, actual in zip(digits, confidences, truth, strict=True):
        verdict = "ok" if predicted == actual else "WRONG"
        print(f"predicted {predicted}  confidence {confidence:.2f}  truth {actual}  {verdict}")


if __name__ == "__main__":
    main()
