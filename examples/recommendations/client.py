"""Ask the served recommender for wines like a given one, and show how alike they are.

Each recommendation is printed with its cultivar (from the same bundled data
set), which the model never saw: neighbours that share the item's cultivar are
a sign the chemistry-based similarity means something. Run from this folder
while the server is up::

    python client.py 0 60 130 --url http://127.0.0.1:5000
"""

from __future__ import annotations

import argparse

import requests
from train import load_catalogue


def recommend(url: str, item_ids: list[int]) -> list[list[int]]:
    """The recommended item ids for each of ``item_ids``, most similar first."""
    body = {"instances": [{"item_id": item} for item in item_ids]}
    response = requests.post(f"{url}/models/wines/predict", json=body, timeout=10)
    response.raise_for_status()
    predictions: list[list[int]] = response.json()["predictions"]
    return predictions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("items", type=int, nargs="+", help="item ids, 0..177")
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    args = parser.parse_args(argv)
    _, cultivars, _ = load_catalogue()
    for item, similar in zip(args.items, recommend(args.url, args.items), strict=True):
        same = sum(cultivars[other] == cultivars[item] for other in similar)
        shown = ", ".join(f"{other} (cultivar {cultivars[other]})" for other in similar)
        print(f"item {item} (cultivar {cultivars[item]}): {shown}  [{same}/{len(similar)} same cultivar]")


if __name__ == "__main__":
    main()
