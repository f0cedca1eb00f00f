"""Reading the Prometheus text format in tests: a sample's value by its labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]


def samples(text: str, name: str) -> dict[Labels, float]:
    """Values of the samples called ``name`` (e.g. ``flaskserve_requests_total``), keyed by their labels."""
    found: dict[Labels, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[frozenset(sample.labels.items())] = sample.value
    return found


def labels(**values: str) -> Labels:
    """The key :func:`samples` uses for these labels."""
    return frozenset(values.items())
