"""Distances between a reference distribution and a served one, both given as bin counts or shares.

* **PSI**, the population stability index: ``Σ (q - p) · ln(q / p)`` over the bins,
  with empty bins given a share of :data:`EMPTY_SHARE` so that one unseen bin does not
  make it infinite. Its customary bands, as Evidently and NannyML use them: under
  0.1 stable, under 0.25 moderate, else major.
* **Kolmogorov-Smirnov**: the largest gap between the two cumulative distributions,
  read at the bin edges (so it is the KS statistic of the binned data, a lower
  bound of the exact one); numeric features only.
* **Jensen-Shannon distance** (base 2, from 0 for equal distributions to 1 for
  disjoint ones), through :func:`scipy.spatial.distance.jensenshannon`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["EMPTY_SHARE", "MAJOR", "MODERATE", "band", "jensen_shannon", "kolmogorov_smirnov", "psi"]

#: The share an empty bin is given in the PSI.
EMPTY_SHARE = 1e-4
#: PSI at or above which a drift is moderate, and major.
MODERATE = 0.1
MAJOR = 0.25

Band = Literal["stable", "moderate", "major"]
Shares = npt.NDArray[np.float64]


def shares(counts: npt.ArrayLike) -> Shares:
    """Counts (or proportions) as shares summing to 1; all zeros when there is nothing."""
    values = np.asarray(counts, dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else np.zeros_like(values)


def psi(reference: npt.ArrayLike, served: npt.ArrayLike) -> float:
    p = np.maximum(shares(reference), EMPTY_SHARE)
    q = np.maximum(shares(served), EMPTY_SHARE)
    return float(np.sum((q - p) * np.log(q / p)))


def kolmogorov_smirnov(reference: npt.ArrayLike, served: npt.ArrayLike) -> float:
    """KS of the present values: the first bin (missing) is left out of both."""
    p = shares(np.asarray(reference, dtype=np.float64)[1:])
    q = shares(np.asarray(served, dtype=np.float64)[1:])
    return float(np.max(np.abs(np.cumsum(p) - np.cumsum(q)))) if p.size else 0.0


def jensen_shannon(reference: npt.ArrayLike, served: npt.ArrayLike) -> float:
    from scipy.spatial.distance import jensenshannon

    # Rounding can leave a tiny negative under the square root for equal inputs: that is 0.
    with np.errstate(invalid="ignore"):
        distance: Any = jensenshannon(shares(reference), shares(served), base=2)
    return float(distance) if np.isfinite(distance) else 0.0


def band(value: float) -> Band:
    """The PSI band of ``value``."""
    if value >= MAJOR:
        return "major"
    if value >= MODERATE:
        return "moderate"
    return "stable"
