"""One loaded model version, ready to be called with a validated matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from flaskserve.errors import UnsupportedMethod, clip
from flaskserve.models.signature import Signature
from flaskserve.settings import ModelSettings


@dataclass(frozen=True)
class ServedModel:
    """A model version as the server holds it: the estimator, its signature and where it came from."""

    name: str
    version: str
    estimator: Any
    signature: Signature
    platform: str
    sha256: str
    source: Path = field(repr=False)
    settings: ModelSettings = field(default_factory=ModelSettings)
    #: The estimator needs a DataFrame (e.g. a ColumnTransformer that selects columns by name).
    wants_dataframe: bool = False

    @property
    def default_method(self) -> str:
        return self.settings.default_method

    def check_method(self, method: str) -> str:
        if method not in self.signature.methods:
            raise UnsupportedMethod(
                f"model '{self.name}' has no method '{clip(method)}'; "
                f"it offers {', '.join(self.signature.methods)}"
            )
        return method

    def call(self, method: str, matrix: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Run one method on a matrix that the signature has already validated.

        Finiteness was checked while decoding, so scikit-learn's own check is skipped.
        """
        import sklearn

        inputs: Any = self._as_frame(matrix) if self.wants_dataframe else matrix
        with sklearn.config_context(assume_finite=True):
            result = getattr(self.estimator, method)(inputs)
        return np.asarray(result)

    def _as_frame(self, matrix: npt.NDArray[Any]) -> Any:
        import pandas as pd

        return pd.DataFrame(matrix, columns=list(self.signature.feature_names))
