"""pickle and joblib files: the formats most tutorials save, and the least safe."""

from __future__ import annotations

import io
import pickle

from flaskserve.errors import ModelLoadError
from flaskserve.models.loaders import LoadedFile
from flaskserve.models.trust import ModelFile, TrustPolicy


class PickleLoader:
    suffixes: tuple[str, ...] = (".joblib", ".pkl", ".pickle")
    frameworks: tuple[str, ...] = ("sklearn", "joblib")

    def load(self, file: ModelFile, *, display_name: str, trust: TrustPolicy) -> LoadedFile:
        path = file.path
        trust.check_pickle(display_name, file.sha256, file_name=path.name)
        try:
            if path.suffix.lower() == ".joblib":
                import joblib

                model = joblib.load(io.BytesIO(file.data))
            else:
                model = pickle.loads(file.data)
        except Exception as exc:  # the file may be corrupt or need a missing class
            raise ModelLoadError(f"{display_name} could not be unpickled: {type(exc).__name__}") from exc
        return LoadedFile(
            model=model, platform="sklearn_joblib" if path.suffix == ".joblib" else "sklearn_pickle"
        )
