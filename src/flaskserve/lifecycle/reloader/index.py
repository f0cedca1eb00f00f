"""The repository index: every version served, and every version on disk that is not, with why.

A client deciding what to load or pin needs the versions that do not serve as
much as those that do: ``UNAVAILABLE`` rows say whether the operator unloaded the
model, never loaded it, or its files failed (and why). A model being loaded shows
as ``LOADING`` here while the registry keeps serving what it had: a registry entry
in that state would make readiness fail for as long as the load takes, and take a
busy server out of rotation. Each row also names the model's version policy in
force and where it comes from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from flaskserve.errors import ModelLoadError, ModelNotFound
from flaskserve.lifecycle.reloader.versions import ServedVersions
from flaskserve.models import policy
from flaskserve.models.loading import settings_for
from flaskserve.models.registry import ModelEntry, ModelState
from flaskserve.models.repository import scan_model, valid_model_name, version_key
from flaskserve.settings import VersionPolicy

__all__ = [
    "FAILED",
    "NOT_LOADED",
    "POLICY_API",
    "POLICY_DEFAULT",
    "POLICY_SETTINGS",
    "UNLOADED",
    "IndexRow",
    "index",
]

#: Index reasons of models on disk that are not served.
NOT_LOADED = "not loaded"
UNLOADED = "unloaded"
FAILED = "failed"

#: Where a model's version policy in force comes from, as the index names it.
POLICY_DEFAULT = "default"
POLICY_SETTINGS = "settings"
POLICY_API = "api"


@dataclass(frozen=True)
class IndexRow:
    """One line of the repository index; ``version`` is ``None`` when a folder's versions are unreadable."""

    name: str
    version: str | None
    state: ModelState
    reason: str = ""
    #: The model's version policy in force (``all``, ``latest 2``, ``pinned 3``) and where it comes
    #: from: :data:`POLICY_DEFAULT`, :data:`POLICY_SETTINGS` (its settings file or the config's
    #: ``[models.NAME]``) or :data:`POLICY_API`; empty when its settings cannot be read.
    policy: str = ""
    policy_source: str = ""


def index(versions: ServedVersions, *, ready_only: bool = False) -> list[IndexRow]:
    """Every served version, plus every version on disk that is not served (``UNAVAILABLE``)."""
    rows = [
        IndexRow(e.name, e.version, e.state, _served_reason(versions, e)) for e in versions.registry.entries()
    ]
    served = {(row.name, row.version) for row in rows}
    for name in sorted(versions.loading - set(versions.registry.names())):
        rows.append(IndexRow(name, None, ModelState.LOADING, "loading"))
    for name, version, problem in _on_disk(versions):
        if (name, version) in served or name in versions.loading:
            continue
        reason = UNLOADED if name in versions.unloaded else NOT_LOADED
        failure = versions.failed.get(name, {}).get(version or "")
        if failure is not None:
            reason, problem = FAILED, failure[1]
        rows.append(
            IndexRow(name, version, ModelState.UNAVAILABLE, f"{reason}: {problem}" if problem else reason)
        )
    rows.sort(key=lambda r: (r.name, version_key(r.version) if r.version else -1))
    if ready_only:
        rows = [row for row in rows if row.state is ModelState.READY]
    policies = {name: _policy_in_force(versions, name) for name in {row.name for row in rows}}
    return [
        dataclasses.replace(row, policy=policies[row.name][0], policy_source=policies[row.name][1])
        for row in rows
    ]


def _policy_in_force(versions: ServedVersions, name: str) -> tuple[str, str]:
    pinned = versions.pins.get(name)
    if pinned is not None:
        return policy.describe(VersionPolicy(pin=pinned[0])), POLICY_API
    try:
        sources = versions.sources(name)
        configured = settings_for(sources[0], versions.settings).versions
    except (ModelLoadError, ModelNotFound, OSError):
        return "", ""
    return policy.describe(configured), POLICY_DEFAULT if configured == VersionPolicy() else POLICY_SETTINGS


def _served_reason(versions: ServedVersions, entry: ModelEntry) -> str:
    failure = versions.failed.get(entry.name, {}).get(entry.version)
    if failure is None:
        return entry.reason
    return f"serving its previous files; the new ones {FAILED}: {failure[1]}"


def _on_disk(versions: ServedVersions) -> Iterator[tuple[str, str | None, str]]:
    """(name, version, problem) of each model version in the repository folder, or of the single file."""
    if versions.root is None:
        name = versions.single_name()
        if name is not None:
            yield name, "1", ""
        return
    try:
        folders = sorted(p.name for p in versions.root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return
    for name in folders:
        if not valid_model_name(name):
            continue
        try:
            sources = scan_model(versions.root, name, versions.loaders)
        except ModelLoadError as exc:
            yield name, None, exc.message
            continue
        for source in sources:
            yield name, source.version, ""
