"""Quantiles from a cumulative histogram, as the playground's cards report them."""

from __future__ import annotations

import math

import pytest

from flaskserve.observability.figures import quantile


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        pytest.param(
            {0.1: 0, 0.2: 10, math.inf: 10}, 0.5, 0.15, id="linear inside the bucket that holds the rank"
        ),
        pytest.param({0.1: 10, 0.2: 10, math.inf: 10}, 0.99, 0.099, id="first bucket starts at zero"),
        pytest.param({0.1: 0, 0.2: 0, math.inf: 4}, 0.5, 0.2, id="beyond the last bound: the last bound"),
        pytest.param({0.1: 0, math.inf: 0}, 0.5, None, id="no observations: no figure"),
    ],
)
def test_quantile(buckets: dict[float, float], q: float, expected: float | None) -> None:
    assert quantile(buckets, q) == (None if expected is None else pytest.approx(expected))
