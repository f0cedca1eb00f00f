"""Model file loaders, one module per format, chosen by file suffix.

Adding a format is one file: a class that satisfies :class:`Loader`, plus its
line in :func:`default_loaders`. Optional frameworks are imported only when a
file of theirs is loaded, and a missing one fails with the exact install line.

A suffix may have several parts (``.xgb.json``): generic endings such as
``.json`` or ``.txt`` say nothing about the framework, so a loader claims them
only behind a framework tag, and the longest registered suffix a file name ends
with picks its loader.

A loader is handed a :class:`~flaskserve.models.trust.ModelFile`: the file's bytes,
read once, and their digest. It builds the model from those bytes and never opens
the path again, so what the trust policy judged is what is served.

Model files are data a stranger may have written. Before a framework's own parser
sees one, its loader checks what the framework would trust blindly (sizes, counts,
indices); a file claiming more than :data:`MAX_FEATURES` features or
:data:`MAX_OUTPUTS` classes or targets, or declaring it unpacks to more than
:func:`expansion_budget` allows, is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from flaskserve.errors import ModelLoadError
from flaskserve.models.estimator import Estimator
from flaskserve.models.loaders.sklearn_kernels import find_kernel
from flaskserve.models.served import KernelFinder
from flaskserve.models.trust import ModelFile, TrustPolicy

#: The most features a served model may take. One row of more would be megabytes of JSON,
#: past what a request may carry, while a file claiming billions would have flaskserve
#: build billions of feature names, and its framework size arrays by the claim.
MAX_FEATURES = 1 << 20
#: The most classes, or regression targets, a served model may answer per row; the
#: frameworks size each prediction's output by the count the file claims.
MAX_OUTPUTS = 1 << 16
#: How many times its own size a file may declare in what it unpacks to (a zip's members,
#: XGBoost's category bitsets): memory spent on a file grows with what the operator put on
#: disk, never with what the file claims.
MAX_EXPANSION = 100
#: What any file may declare, however small it is.
MIN_EXPANSION_BUDGET = 64 << 20


def expansion_budget(size: int) -> int:
    """The most bytes a file of ``size`` bytes may declare it unpacks to."""
    return max(MIN_EXPANSION_BUDGET, MAX_EXPANSION * size)


#: The framework part of the platforms of scikit-learn's own formats (``sklearn_skops``, ...).
SCIKIT_LEARN = "sklearn"


@dataclass(frozen=True)
class LoadedFile:
    """What a loader hands back: the model object and how it was stored."""

    model: Estimator
    #: KServe-style platform string, ``<framework>_<format>``.
    platform: str

    @property
    def framework(self) -> str:
        """The platform's framework: ``sklearn`` of ``sklearn_skops``."""
        return self.platform.partition("_")[0]

    @property
    def kernels(self) -> KernelFinder | None:
        """The direct kernels the served model carries; None when it is always called.

        Pickle, joblib and skops files hold scikit-learn estimators, whose kernels
        :mod:`~flaskserve.models.loaders.sklearn_kernels` finds. The other formats
        have none: their adapters already call their runtime directly, and an
        operator's Python class is its own code.
        """
        return find_kernel if self.framework == SCIKIT_LEARN else None


class Loader(Protocol):
    """Turns one model file into an :class:`~flaskserve.models.estimator.Estimator`.

    A loader whose file is code that reads other files of its folder (a Python
    class beside its weights) sets a class attribute ``owns_folder = True``: the
    other files in that folder are then its artefacts, not models of their own.

    A loader may name the modules its format imports in a class attribute
    ``frameworks`` (``("skops.io",)``): they are imported before a load is timed,
    so that a model's load time is not the seconds its framework takes to import.
    """

    #: Lower-case suffixes with the dot, e.g. ``(".skops",)`` or ``(".xgb.json",)``.
    @property
    def suffixes(self) -> tuple[str, ...]: ...

    def load(self, file: ModelFile, *, display_name: str, trust: TrustPolicy) -> LoadedFile: ...


class LoaderTable:
    """Which loader handles which file suffix; a suffix may be claimed only once."""

    def __init__(self, loaders: Iterable[Loader] = ()) -> None:
        self._by_suffix: dict[str, Loader] = {}
        #: Longest first, so ``.xgb.json`` is tried before any plain ``.json``.
        self._longest_first: list[str] = []
        for loader in loaders:
            self.register(loader)

    def register(self, loader: Loader) -> None:
        for suffix in loader.suffixes:
            if suffix in self._by_suffix:
                raise ValueError(f"a loader for '{suffix}' files is already registered")
            self._by_suffix[suffix] = loader
        self._longest_first = sorted(self._by_suffix, key=len, reverse=True)

    @property
    def suffixes(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_suffix))

    def suffix_of(self, path: Path) -> str | None:
        """The registered suffix ``path`` ends with (the longest one), or None.

        A name that is nothing but the suffix (``.skops``) is a hidden file, not a model.
        """
        name = path.name.lower()
        for suffix in self._longest_first:
            if name.endswith(suffix) and len(name) > len(suffix):
                return suffix
        return None

    def stem(self, path: Path) -> str:
        """The file name without its registered suffix: ``iris.xgb.json`` gives ``iris``."""
        suffix = self.suffix_of(path)
        return path.name[: -len(suffix)] if suffix else path.stem

    def handles(self, path: Path) -> bool:
        return self.suffix_of(path) is not None

    def model_files(self, files: Iterable[Path]) -> list[Path]:
        """The model files among a folder's files.

        When one of them belongs to a loader that owns its folder, the others are
        its artefacts (a Python class beside the skops file it wraps).
        """
        found = [p for p in files if self.handles(p)]
        owners = [p for p in found if getattr(self.for_path(p), "owns_folder", False)]
        return owners or found

    def for_path(self, path: Path) -> Loader:
        suffix = self.suffix_of(path)
        loader = None if suffix is None else self._by_suffix[suffix]
        if loader is None:
            raise ModelLoadError(
                f"'{path.name}' has no known model format; supported file endings: {', '.join(self.suffixes)}"
            )
        return loader


def default_loaders() -> LoaderTable:
    from flaskserve.models.loaders.booster_file import BoosterFileLoader
    from flaskserve.models.loaders.lightgbm import LightGBMLoader
    from flaskserve.models.loaders.onnx import OnnxLoader
    from flaskserve.models.loaders.pickled import PickleLoader
    from flaskserve.models.loaders.python import PythonLoader
    from flaskserve.models.loaders.skops import SkopsLoader
    from flaskserve.models.loaders.xgboost import XGBoostLoader

    return LoaderTable(
        [
            PickleLoader(),
            SkopsLoader(),
            OnnxLoader(),
            XGBoostLoader(),
            LightGBMLoader(),
            BoosterFileLoader(),
            PythonLoader(),
        ]
    )


def require(module: str, extra: str) -> Any:
    """Import an optional framework, or fail with the install line that brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelLoadError(
            f"loading this model needs the '{module}' package: pip install 'flaskserve[{extra}]'"
        ) from exc
