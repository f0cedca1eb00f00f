"""Build a "more like this" recommender over scikit-learn's bundled wine catalogue.

The catalogue is the 178 wines of ``load_wine``: each item is described by 13
chemical measurements (alcohol, flavanoids, colour intensity…), and item ``i``
is row ``i``. There is no user data here, so this is content-based
recommendation: items are similar when their standardised measurements are
close. The three grape cultivars are *not* given to the model; they are kept
only to check, honestly, that neighbours by chemistry tend to share a cultivar.

The index is a brute-force ``NearestNeighbors`` (exact, and nothing but arrays
to store, so skops loads it without extra trust) with the standardised item
vectors beside it, in one skops file next to ``model.py``.

The served input is an item id, and there are no past requests to learn from,
so the reference profile that ``flaskserve profile`` writes beside the model
describes the catalogue asked about evenly: every item id once. Drift on
``/models/wines/monitoring`` then says how far the requests have gathered on
part of the catalogue (a few best-sellers, a new range of ids) rather than
spreading over it.

Run from this folder::

    python train.py            # writes models/wines/1/{model.py, index.skops, reference.json}
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load_catalogue() -> tuple[Any, Any, list[str]]:
    """``(features, cultivars, feature_names)`` of the 178 wines, in item-id order."""
    from sklearn.datasets import load_wine

    wine = load_wine()
    return wine.data, wine.target, list(wine.feature_names)


def build_index(features: Any) -> dict[str, Any]:
    """Standardise every measurement (they range from 0.1 to 1,680) and index the items."""
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    items = StandardScaler().fit_transform(features)
    neighbours = NearestNeighbors(algorithm="brute", metric="euclidean").fit(items)
    return {"neighbours": neighbours, "items": items}


def save(index: dict[str, Any], repository: Path) -> Path:
    """Write ``repository/wines/1/``: the model class and the index it loads."""
    import skops.io as sio

    folder = repository / "wines" / "1"
    folder.mkdir(parents=True, exist_ok=True)
    sio.dump(index, folder / "index.skops")
    shutil.copyfile(HERE / "model.py", folder / "model.py")
    return folder


def profile(folder: Path, items: int) -> Path:
    """Write the reference profile beside the model in ``folder``, with ``flaskserve profile``.

    The command is the one a shell would run, called in this process, on a CSV of
    the model's one column, ``item_id``: each of the ``items`` ids once.
    ``model.py`` runs code when it loads, so the command is given ``--allow-code``,
    as the server is.
    """
    from flaskserve.cli import main as flaskserve

    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "items.csv"
        with data.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["item_id"])
            writer.writerows([item] for item in range(items))
        config = str(HERE / "flaskserve.toml")
        flaskserve(
            ["profile", str(folder / "model.py"), "--data", str(data), "--config", config, "--allow-code"],
            standalone_mode=False,
        )
    return folder / "reference.json"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "models", help="repository folder to write")
    args = parser.parse_args(argv)
    features, _, _ = load_catalogue()
    folder = save(build_index(features), args.out)
    profile(folder, len(features))
    print(f"indexed {len(features)} wines; saved {folder}")


if __name__ == "__main__":
    main()
