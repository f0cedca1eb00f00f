"""A tiny chat loop: each line you type is classified by the served intent model.

The client asks for ``predict_proba`` and takes the likeliest intent; below the
threshold it answers "not sure" instead of guessing, which is what a real bot
would hand to a human or a clarifying question. Run from this folder while the
server is up, then type (Ctrl-D to stop)::

    python client.py --url http://127.0.0.1:5000 --threshold 0.5
"""

from __future__ import annotations

import argparse
import sys

import requests

NOT_SURE = "not sure"


def classify(url: str, text: str, threshold: float) -> tuple[str, float]:
    """The intent of ``text`` and its probability, or ``"not sure"`` when the best is below ``threshold``."""
    response = requests.post(
        f"{url}/models/intents/predict", json={"text": text, "method": "predict_proba"}, timeout=10
    )
    response.raise_for_status()
    probabilities: dict[str, float] = response.json()["prediction"]
    intent = max(probabilities, key=lambda name: probabilities[name])
    confidence = probabilities[intent]
    return (intent if confidence >= threshold else NOT_SURE), confidence


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--threshold", type=float, default=0.5, help="lowest probability to trust")
    args = parser.parse_args(argv)
    if sys.stdin.isatty():
        print("type a message (Ctrl-D to stop)")
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        intent, confidence = classify(args.url, text, args.threshold)
        print(f"{intent:<14} {confidence:.2f}  {text}")


if __name__ == "__main__":
    main()
