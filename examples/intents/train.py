"""Train the chat intent classifier on ``intents.csv`` and save it for flaskserve.

``intents.csv`` is small and hand-written for this example: 8 intents of a shop's
support chat, 25 utterances each. With so little data, two views of the text
work better than one: word uni- and bigrams catch phrases ("cancel my"), and
character n-grams within words catch spelling variants and typos ("parcle").
Both are TF-IDF features of the raw string, joined by a ``FeatureUnion``, then a
multinomial logistic regression gives a probability per intent, which the chat
client uses to say "not sure" rather than guess.

The training utterances are then profiled with ``flaskserve profile``: the
``reference.json`` it writes beside the model holds how long the messages were
and how many of their words the model's word vectorizer knows, so messages of
another kind (much longer, or in words the model never saw) show as drift on
``/metrics`` and ``/models/intents/monitoring``.

Run from this folder::

    python train.py            # writes models/intents/1/model.skops and reference.json
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "intents.csv"


def load_intents(path: Path = DATA) -> tuple[list[str], list[str]]:
    """The utterances and their intents, in file order."""
    with path.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    return [row["text"] for row in rows], [row["intent"] for row in rows]


def build() -> Any:
    """The untrained Pipeline: word and character TF-IDF side by side, then logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)),
        ]
    )
    # saga converges in a few milliseconds on these sparse features; the seed fixes its shuffling.
    classifier = LogisticRegression(C=10.0, solver="saga", max_iter=2000, random_state=0)
    return Pipeline([("features", features), ("classifier", classifier)])


def train(texts: list[str], intents: list[str]) -> Any:
    return build().fit(texts, intents)


def save(model: Any, repository: Path) -> Path:
    """Write ``repository/intents/1/model.skops``: every type in it is in skops' safe set."""
    import skops.io as sio

    path = repository / "intents" / "1" / "model.skops"
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)
    return path


def profile(model_file: Path, texts: list[str]) -> Path:
    """Write the training utterances' reference profile beside ``model_file``, with ``flaskserve profile``.

    The command is the one a shell would run, called in this process (scikit-learn
    is already imported here), on a CSV with the model's one column, ``text``.
    """
    from flaskserve.cli import main as flaskserve

    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "train.csv"
        with data.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["text"])
            writer.writerows([text] for text in texts)
        config = str(HERE / "flaskserve.toml")
        flaskserve(
            ["profile", str(model_file), "--data", str(data), "--config", config], standalone_mode=False
        )
    return model_file.parent / "reference.json"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "models", help="repository folder to write")
    args = parser.parse_args(argv)
    texts, intents = load_intents()
    model = train(texts, intents)
    path = save(model, args.out)
    profile(path, texts)
    print(f"trained on {len(texts)} utterances, {len(set(intents))} intents; saved {path}")


if __name__ == "__main__":
    main()
