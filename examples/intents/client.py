"""A tiny chat loop: each line you type is classified by the served intent model.

The client asks for ``predict_proba`` and takes the likeliest intent; below the
threshold it answers "not sure" instead of guessing, which is what a real bot
would hand to a human or a clarifying question. Run from this folder while the
server is up (it needs ``requests``: ``pip install requests``), then type (Ctrl-D
to stop)::

    python client.py --port 5000 --threshold 0.5

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

NOT_SURE = "not sure"


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


def classify(url: str, text: str, threshold: float) -> tuple[str, float]:
    """The intent of ``text`` and its probability, or ``"not sure"`` when the best is below ``threshold``."""
    response = requests.post(
        f"{url}/models/intents/predict", json={"text": text, "method": "predict_proba"}, timeout=10
    )
    probabilities: dict[str, float] = answer(response)["prediction"]
    intent = max(probabilities, key=lambda name: probabilities[name])
    confidence = probabilities[intent]
    return (intent if confidence >= threshold else NOT_SURE), confidence


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="the server's port (default: $FLASKSERVE_PORT, else 5000)")
    parser.add_argument("--url", help="the server's address, instead of http://127.0.0.1:PORT")
    parser.add_argument("--threshold", type=float, default=0.5, help="lowest probability to trust")
    args = parser.parse_args(argv)
    url = server_url(args.port, args.url)
    if sys.stdin.isatty():
        print("type a message (Ctrl-D to stop)")
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        try:
            intent, confidence = classify(url, text, args.threshold)
        except ServerError as error:
            # One message the server refuses (too long, say) does not end the chat.
            print(f"{text[:40]}: {error}", file=sys.stderr)
            continue
        except requests.ConnectionError:
            sys.exit(f"no server answers at {url}: start it with 'flaskserve serve --config flaskserve.toml'")
        print(f"{intent:<14} {confidence:.2f}  {text}")


if __name__ == "__main__":
    main()
