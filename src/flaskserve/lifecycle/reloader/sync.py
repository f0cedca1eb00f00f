"""What a watched model folder should serve now, from what the watcher saw of its versions.

With ``--watch``, :class:`~flaskserve.lifecycle.watcher.Watcher` hands over a
model whose complete files changed: only the versions whose files changed are
loaded and verified; a version that fails never serves, the versions served
before keep serving, and the failure is remembered with the digest of the files
that failed, shown in the index, and not tried again until those files change.
A version still being written keeps what it serves and is not loaded yet.
:func:`choose` works this out without touching the registry, so that the caller
journals the outcome before it takes effect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flaskserve.errors import ModelLoadError
from flaskserve.lifecycle.reloader.versions import Failures, ServedVersions
from flaskserve.models import policy
from flaskserve.models.repository import ModelSource, version_key
from flaskserve.models.served import ServedModel
from flaskserve.settings import ModelSettings

__all__ = ["Choice", "choose"]

log = logging.getLogger("flaskserve.models")


@dataclass(frozen=True)
class Choice:
    """The versions a model should serve, and those whose files failed; ``unchanged`` if both are as now."""

    models: list[ServedModel]
    failed: Failures
    unchanged: bool


def choose(
    versions: ServedVersions,
    name: str,
    sources: dict[str, ModelSource],
    model_settings: ModelSettings | None,
    wanted: list[str],
    complete: dict[str, str],
) -> Choice:
    """Load what ``wanted`` (the versions the policy in force serves) lacks, keeping what serves already.

    ``complete`` maps each version whose files stopped changing to their content
    digest. When a wanted version has nothing to serve (failed, still being
    written, or named by a policy the folder does not satisfy), every version
    served before keeps serving.
    """
    served = {m.version: m for m in versions.served(name)}
    previous = versions.newest_served(name)
    failed: Failures = {
        v: why for v, why in versions.failed.get(name, {}).items() if complete.get(v) == why[0]
    }
    chosen: dict[str, ServedModel] = {}
    # A wanted version has nothing to serve: keep every version served before.
    short = not wanted
    if short and served:
        log.warning(
            "the version policy names no version the folder holds; serving what was served",
            extra={"model": name, "policy": policy.describe(model_settings.versions)}
            if model_settings
            else {"model": name},
        )
    for version in wanted:
        current = served.get(version)
        digest = complete.get(version)
        if digest is None or (version in failed and failed[version][0] == digest):
            short = short or current is None or version in failed
            if current is not None:
                chosen[version] = current
            continue
        if current is not None and versions.same(current, digest, model_settings):
            chosen[version] = current
            continue
        try:
            model = versions.load(name, [sources[version]], versions.observer)[0]
            if versions.digest_of(model) != digest:
                continue  # changed while it loaded: the watcher sees it again when it settles
            versions.verify(model, previous)
        except ModelLoadError as exc:
            failed[version] = (digest, exc.message)
            log.error(
                "model version refused; the versions served before keep serving",
                extra={"model": name, "version": version, "error": exc.message},
            )
            short = True
            if current is not None:
                chosen[version] = current
            continue
        chosen[version] = model
    if short:
        for version, model in served.items():
            chosen.setdefault(version, model)
    unchanged = {v: id(m) for v, m in chosen.items()} == {v: id(m) for v, m in served.items()}
    return Choice(
        sorted(chosen.values(), key=lambda m: version_key(m.version)),
        failed,
        unchanged and failed == versions.failed.get(name, {}),
    )
