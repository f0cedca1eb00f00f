"""Every example's train.py writes a reference profile beside each model version it saves."""

from __future__ import annotations

from pathlib import Path

import pytest
from example_code import EXAMPLES, load_example

from flaskserve.observability.drift.profile import REFERENCE_FILE, ReferenceProfile


@pytest.mark.parametrize("example", sorted(path.name for path in EXAMPLES.iterdir() if path.is_dir()))
def test_the_examples_training_writes_a_profile_beside_every_model_version(
    example: str, tmp_path: Path
) -> None:
    load_example(example, "train").main(["--out", str(tmp_path)])

    versions = [folder for folder in tmp_path.glob("*/*") if folder.is_dir()]
    assert versions, f"{example}'s train.py saved no model version"
    for version in versions:
        assert (version / REFERENCE_FILE).is_file(), f"{version.name} of {example} has no profile"
        model_file = next(path for path in version.iterdir() if path.name.startswith("model."))
        reference = ReferenceProfile.read_beside(model_file)
        assert reference is not None
        assert reference.rows > 0
