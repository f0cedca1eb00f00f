"""The served recommender: an item id in, the ids of the K most similar items out.

flaskserve imports this file (it must be trusted with ``--allow-code``), builds
``Model()`` and calls ``load`` with its folder once; every request then reaches
``predict`` as a validated float64 matrix with one column, ``item_id``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skops.io as sio

from flaskserve.errors import InvalidValue

#: How many items each answer recommends.
K = 5


class Model:
    feature_names_in_ = ["item_id"]

    def load(self, directory: Path) -> None:
        # Every type in the index is in skops' safe set: nothing is trusted beyond it.
        index = sio.load(directory / "index.skops", trusted=[])
        self.neighbours = index["neighbours"]
        self.items: np.ndarray = index["items"]

    def predict(self, features: np.ndarray) -> np.ndarray:
        """One row of K item ids per requested item, most similar first, never the item itself."""
        ids = features[:, 0]
        known = (ids == np.round(ids)) & (ids >= 0) & (ids < len(self.items))
        if not known.all():
            # A flaskserve error is a 400 that names the value, not a 500 "model failed".
            bad = ids[~known][0]
            raise InvalidValue(
                f"item_id {bad:g} is not in the catalogue; ids are whole numbers 0..{len(self.items) - 1}"
            )
        rows = ids.astype(np.int64)
        # One extra neighbour, since an item is its own nearest; drop it wherever it falls (ties).
        _, found = self.neighbours.kneighbors(self.items[rows], n_neighbors=K + 1)
        similar = [[i for i in near if i != own][:K] for own, near in zip(rows, found, strict=True)]
        return np.array(similar, dtype=np.int64)
