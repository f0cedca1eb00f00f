"""Which of a model's outputs an explanation explains, and the row layout it is returned in.

An explanation runs through the inference service like any method, so it is a
numeric matrix with one row per input row; :data:`OUTPUT`, :data:`BASE`,
:data:`VALUE` and :data:`FIRST_CONTRIBUTION` name its columns. The protocols
turn those rows into the documented JSON answer.

A regressor's output is its one score. A classifier's is its predicted class:

- probabilities and per-class scores (one column per class): the likeliest column;
- a binary model's single margin (log-odds of the second class): the second
  class when the margin is positive, as the model predicts, else the first —
  whose log-odds are the margin negated, so every figure changes sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Scale = Literal["probability", "log_odds", "raw"]

#: The index of the explained class in the model's classes; -1 for a regressor.
OUTPUT = 0
#: The expected output over the reference (training cover, or the reference row).
BASE = 1
#: The model's output for this row, on the explanation's scale.
VALUE = 2
#: Then one column per feature, in signature order.
FIRST_CONTRIBUTION = 3
REGRESSOR_OUTPUT = -1


@dataclass(frozen=True)
class Outputs:
    """How a model's scores (rows * columns) map to the one output explained per row."""

    classifier: bool
    #: A binary classifier answering one margin column.
    single_margin: bool = False

    def column(self, scores: Floats) -> npt.NDArray[np.intp]:
        """The score column explained for each row."""
        if self.classifier and not self.single_margin:
            found: npt.NDArray[np.intp] = np.argmax(scores, axis=1)
            return found
        return np.zeros(scores.shape[0], dtype=np.intp)

    def rows(
        self, scores: Floats, column: npt.NDArray[np.intp], base: Floats, contributions: Floats
    ) -> Floats:
        """The explanation rows: output, base, value, contributions (see the module's layout)."""
        value = scores[np.arange(scores.shape[0]), column]
        if not self.classifier:
            output = np.full(scores.shape[0], REGRESSOR_OUTPUT, dtype=np.float64)
        elif self.single_margin:
            positive = value > 0
            output = positive.astype(np.float64)
            sign = np.where(positive, 1.0, -1.0)
            value, base, contributions = value * sign, base * sign, contributions * sign[:, None]
        else:
            output = column.astype(np.float64)
        return np.column_stack([output, base, value, contributions])
