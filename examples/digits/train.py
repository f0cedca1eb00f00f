"""Train a handwritten-digit classifier on scikit-learn's bundled 8x8 digits and save it for flaskserve.

The model is an RBF support vector machine wrapped in ``CalibratedClassifierCV``,
so that it answers ``predict_proba`` with calibrated confidences (``SVC``'s own
``probability=True`` is deprecated). It is fit on a DataFrame whose columns are
the 64 pixels, ``pixel_0_0`` … ``pixel_7_7``, so the served model takes them by
name as well as by position. A quarter of the images is held out, with a fixed
seed, for the client and the test to score on.

The training pixels are then profiled with ``flaskserve profile``: the
``reference.json`` it writes beside the model is what the server compares the
images it is sent with, so a drift (a new scanner, thicker pens) shows on
``/metrics`` and ``/models/digits/monitoring``.

Run from this folder::

    python train.py            # writes models/digits/1/model.skops and reference.json
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEED = 0


def load_split() -> tuple[Any, Any, Any, Any]:
    """``(train_images, test_images, train_digits, test_digits)``: the same split on every run."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits(as_frame=True)
    split: tuple[Any, Any, Any, Any] = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=SEED, stratify=digits.target
    )
    return split


def train(images: Any, digits: Any) -> Any:
    """An RBF SVM (gamma suits pixel values 0..16) with sigmoid-calibrated probabilities."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    model = CalibratedClassifierCV(SVC(gamma=0.001, C=10.0), ensemble=False)
    return model.fit(images, digits)


def save(model: Any, repository: Path) -> Path:
    """Write ``repository/digits/1/model.skops``: skops loads it without running code."""
    import skops.io as sio

    path = repository / "digits" / "1" / "model.skops"
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)
    return path


def profile(model_file: Path, images: Any) -> Path:
    """Write the training pixels' reference profile beside ``model_file``, with ``flaskserve profile``.

    The command is the one a shell would run, called in this process (scikit-learn is
    already imported here); the example's ``flaskserve.toml`` names the calibration
    types it trusts.
    """
    from flaskserve.cli import main as flaskserve

    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "train.csv"
        images.to_csv(data, index=False)
        config = str(HERE / "flaskserve.toml")
        flaskserve(
            ["profile", str(model_file), "--data", str(data), "--config", config], standalone_mode=False
        )
    return model_file.parent / "reference.json"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "models", help="repository folder to write")
    args = parser.parse_args(argv)
    train_images, test_images, train_digits, test_digits = load_split()
    model = train(train_images, train_digits)
    path = save(model, args.out)
    profile(path, train_images)
    accuracy = model.score(test_images, test_digits)
    print(f"held-out accuracy {accuracy:.3f} on {len(test_digits)} images; saved {path}")


if __name__ == "__main__":
    main()
