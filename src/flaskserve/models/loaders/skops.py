"""skops files: scikit-learn models stored without pickle's arbitrary code execution.

A file loads only if every type it would build is trusted (see
:mod:`flaskserve.models.trust`), and then only after every tree inside the model has
been checked (:mod:`flaskserve.models.loaders.tree_check`): the trees' node arrays are
trusted by default, so what they hold is verified before any model method runs.
"""

from __future__ import annotations

from pathlib import Path

from flaskserve.errors import ModelLoadError
from flaskserve.models.loaders import LoadedFile, require
from flaskserve.models.loaders.tree_check import check_trees
from flaskserve.models.trust import TrustPolicy


class SkopsLoader:
    suffixes: tuple[str, ...] = (".skops",)

    def load(self, path: Path, *, sha256: str, display_name: str, trust: TrustPolicy) -> LoadedFile:
        sio = require("skops.io", "skops")
        try:
            untrusted = sio.get_untrusted_types(file=path)
        except Exception as exc:
            raise ModelLoadError(
                f"{display_name} is not a readable skops file: {type(exc).__name__}"
            ) from exc
        allowed = trust.check_skops_types(display_name, untrusted)
        try:
            model = sio.load(path, trusted=allowed)
        except Exception as exc:
            raise ModelLoadError(f"{display_name} could not be loaded: {type(exc).__name__}") from exc
        check_trees(model, display_name)
        return LoadedFile(model=model, platform="sklearn_skops")
