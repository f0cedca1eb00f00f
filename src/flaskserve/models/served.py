"""One loaded model version, ready to be called with a validated matrix.

A served model may carry direct kernels: fast paths that compute one of its
methods without the per-call checks of the framework it came from. Which
kernels exist is knowledge of that framework, so the loading step attaches a
:class:`KernelFinder` for the file's format and the inference service only
asks :meth:`ServedModel.kernel` for one, knowing no format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from flaskserve.errors import ExplainUnsupported, UnsupportedMethod, clip
from flaskserve.models.estimator import Estimator
from flaskserve.models.signature import Signature
from flaskserve.settings import ModelSettings

if TYPE_CHECKING:
    from flaskserve.models.explain import Explainer

Matrix = npt.NDArray[Any]
#: One method of one model computed directly: the validated matrix in, the answer out.
Kernel = Callable[[Matrix], Matrix]


class KernelFinder(Protocol):
    """Finds a direct kernel for one method of a served model, or None to call the model.

    A finder offers a kernel only when its answers equal ``model.call(method, ...)``
    exactly, and may run the model on probe rows to make sure; so it is asked
    lazily, once per model version and method in each serving process.
    """

    def __call__(self, model: ServedModel, method: str, /) -> Kernel | None: ...


@dataclass(frozen=True)
class ServedModel:
    """A model version as the server holds it: the estimator, its signature and where it came from."""

    name: str
    version: str
    estimator: Estimator
    signature: Signature
    platform: str
    sha256: str
    source: Path = field(repr=False)
    settings: ModelSettings = field(default_factory=ModelSettings)
    #: The estimator needs a DataFrame (e.g. a ColumnTransformer that selects columns by name).
    wants_dataframe: bool = False
    #: Direct kernels for the estimator's methods, from its format; None when it is always called.
    kernels: KernelFinder | None = field(default=None, repr=False)

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

    def kernel(self, method: str) -> Kernel | None:
        """A verified direct kernel for ``method``, or None to call the estimator.

        The explanation method's kernel is the model's explainer.
        """
        from flaskserve.models.explain import EXPLAIN

        if method == EXPLAIN:
            return self.explainer()
        return None if self.kernels is None else self.kernels(self, method)

    @property
    def explainable(self) -> bool:
        """Whether :meth:`explainer` has one to give (found, and checked, on first use)."""
        return not isinstance(self._explanation, ExplainUnsupported)

    def explainer(self) -> Explainer:
        """How this model's predictions are explained; :class:`ExplainUnsupported` when they cannot be."""
        found = self._explanation
        if isinstance(found, ExplainUnsupported):
            raise ExplainUnsupported(f"model '{self.name}' cannot be explained: {found.message}")
        return found

    @cached_property
    def _explanation(self) -> Explainer | ExplainUnsupported:
        # Looked for once per model version: finding one runs the model on probe rows.
        from flaskserve.models.explain import find_explainer

        if self.signature.is_text or self.wants_dataframe:
            what = "text" if self.signature.is_text else "whole tables (DataFrames)"
            return ExplainUnsupported(f"it takes {what}, not independent numeric features")
        try:
            return find_explainer(self.estimator, self.signature.n_features)
        except ExplainUnsupported as refused:
            return refused

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
