"""Ask the served recommender for wines like a given one, and show how alike they are.

Each recommendation is printed with its cultivar (from the same bundled data
set), which the model never saw: neighbours that share the item's cultivar are
a sign the chemistry-based similarity means something. Run from this folder
while the server is up (it needs ``requests``: ``pip install requests``)::

    python client.py 0 60 130 --port 5000

The port is ``--port``, else ``FLASKSERVE_PORT`` (the variable the server reads too),
else 5000; ``--url`` names another host. An error answer, such as an id outside the
catalogue, is shown as the server's message, not a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import requests
from train import load_catalogue


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


def recommend(url: str, item_ids: list[int]) -> list[list[int]]:
    """The recommended item ids for each of ``item_ids``, most similar first."""
    body = {"instances": [{"item_id": item} for item in item_ids]}
    response = requests.post(f"{url}/models/wines/predict", json=body, timeout=10)
    predictions: list[list[int]] = answer(response)["predictions"]
    return predictions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("items", type=int, nargs="+", help="item ids, 0..177")
    parser.add_argument("--port", type=int, help="the server's port (default: $FLASKSERVE_PORT, else 5000)")
    parser.add_argument("--url", help="the server's address, instead of http://127.0.0.1:PORT")
    args = parser.parse_args(argv)
    url = server_url(args.port, args.url)
    _, cultivars, _ = load_catalogue()
    try:
        recommended = recommend(url, args.items)
    except ServerError as error:
        sys.exit(str(error))
    except requests.ConnectionError:
        sys.exit(
            f"no server answers at {url}: "
            "start it with 'flaskserve serve --config flaskserve.toml --allow-code'"
        )
    for item, similar in zip(args.items, recommended, strict=True):
        same = sum(cultivars[other] == cultivars[item] for other in similar)
        shown = ", ".join(f"{other} (cultivar {cultivars[other]})" for other in similar)
        print(f"item {item} (cultivar {cultivars[item]}): {shown}  [{same}/{len(similar)} same cultivar]")


if __name__ == "__main__":
    main()
