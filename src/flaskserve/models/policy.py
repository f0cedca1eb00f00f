"""Which versions of a model serve, by its :class:`~flaskserve.settings.VersionPolicy`.

TF Serving's three policies: every version (the default), the latest N, or a
specific list; and over any of them a ``pin``, one version served alone. A pin is
how a model is rolled back: pin the old version in the model's
``model-settings.toml`` (``flaskserve pin``) or through the repository API, and
unversioned requests go to it; unpinning leaves the policy below it as it was.
"""

from __future__ import annotations

from collections.abc import Iterable

from flaskserve.models.repository import version_key
from flaskserve.settings import VersionPolicy

__all__ = ["describe", "select"]


def select(versions: Iterable[str], policy: VersionPolicy) -> list[str]:
    """The versions of ``versions`` that ``policy`` serves, oldest first."""
    ordered = sorted(set(versions), key=version_key)
    if policy.pin is not None:
        return [v for v in ordered if v == policy.pin]
    if policy.specific is not None:
        pinned = {str(int(v)) for v in policy.specific if v.isdigit()}
        return [v for v in ordered if v in pinned]
    if policy.latest is not None:
        return ordered[-policy.latest :]
    return ordered


def describe(policy: VersionPolicy) -> str:
    if policy.pin is not None:
        return f"pinned {policy.pin}"
    if policy.specific is not None:
        return f"specific {', '.join(policy.specific)}"
    if policy.latest is not None:
        return f"latest {policy.latest}"
    return "all"
