"""pickle and joblib files: the formats most tutorials save, and the least safe."""

from __future__ import annotations

import pickle
from pathlib import Path

from flaskserve.errors import ModelLoadError
from flaskserve.models.loaders import LoadedFile
from flaskserve.models.trust import TrustPolicy


class PickleLoader:
    suffixes: tuple[str, ...] = (".joblib", ".pkl", ".pickle")

    def load(self, path: Path, *, sha256: str, display_name: str, trust: TrustPolicy) -> LoadedFile:
        trust.check_pickle(display_name, sha256)
        try:
            if path.suffix.lower() == ".joblib":
                import joblib

                model = joblib.load(path)
            else:
                with path.open("rb") as stream:
                    model = pickle.load(stream)
        except Exception as exc:  # the file may be corrupt or need a missing class
            raise ModelLoadError(f"{display_name} could not be unpickled: {type(exc).__name__}") from exc
        return LoadedFile(
            model=model, platform="sklearn_joblib" if path.suffix == ".joblib" else "sklearn_pickle"
        )
