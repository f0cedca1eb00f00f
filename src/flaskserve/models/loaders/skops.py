"""skops files: scikit-learn models stored without pickle's arbitrary code execution.

A file loads only if every type it would build is trusted (see
:mod:`flaskserve.models.trust`), and then only after every tree inside the model has
been checked (:mod:`flaskserve.models.loaders.tree_check`): the trees' node arrays are
trusted by default, so what they hold is verified before any model method runs.
Before skops reads the file at all, the zip archive it is made of is checked
(:mod:`flaskserve.models.loaders.archive`): a zip bomb is refused while it is still bytes.
"""

from __future__ import annotations

from flaskserve.errors import ModelLoadError
from flaskserve.models.loaders import LoadedFile, require
from flaskserve.models.loaders.archive import check_archive
from flaskserve.models.loaders.tree_check import check_trees
from flaskserve.models.trust import ModelFile, TrustPolicy


class SkopsLoader:
    suffixes: tuple[str, ...] = (".skops",)
    frameworks: tuple[str, ...] = ("skops.io",)

    def load(self, file: ModelFile, *, display_name: str, trust: TrustPolicy) -> LoadedFile:
        sio = require("skops.io", "skops")
        check_archive(file.data, display_name)
        try:
            untrusted = sio.get_untrusted_types(data=file.data)
        except Exception as exc:
            raise ModelLoadError(
                f"{display_name} is not a readable skops file: {type(exc).__name__}"
            ) from exc
        allowed = trust.check_skops_types(display_name, untrusted)
        try:
            model = sio.loads(file.data, trusted=allowed)
        except Exception as exc:
            raise ModelLoadError(f"{display_name} could not be loaded: {type(exc).__name__}") from exc
        check_trees(model, display_name)
        return LoadedFile(model=model, platform="sklearn_skops")
