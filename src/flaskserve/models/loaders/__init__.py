"""Model file loaders, one module per format, chosen by file suffix.

Adding a format is one file: a class that satisfies :class:`Loader`, plus its
line in :func:`default_loaders`. Optional frameworks are imported only when a
file of theirs is loaded, and a missing one fails with the exact install line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from flaskserve.errors import ModelLoadError
from flaskserve.models.trust import TrustPolicy


@dataclass(frozen=True)
class LoadedFile:
    """What a loader hands back: the model object and how it was stored."""

    model: Any
    #: KServe-style platform string, ``<framework>_<format>``.
    platform: str


class Loader(Protocol):
    """Turns one model file into an object with scikit-learn's prediction methods."""

    #: Lower-case suffixes with the dot, e.g. ``(".skops",)``.
    @property
    def suffixes(self) -> tuple[str, ...]: ...

    def load(self, path: Path, *, sha256: str, display_name: str, trust: TrustPolicy) -> LoadedFile: ...


class LoaderTable:
    """Which loader handles which file suffix; a suffix may be claimed only once."""

    def __init__(self, loaders: Iterable[Loader] = ()) -> None:
        self._by_suffix: dict[str, Loader] = {}
        for loader in loaders:
            self.register(loader)

    def register(self, loader: Loader) -> None:
        for suffix in loader.suffixes:
            if suffix in self._by_suffix:
                raise ValueError(f"a loader for '{suffix}' files is already registered")
            self._by_suffix[suffix] = loader

    @property
    def suffixes(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_suffix))

    def handles(self, path: Path) -> bool:
        return path.suffix.lower() in self._by_suffix

    def for_path(self, path: Path) -> Loader:
        loader = self._by_suffix.get(path.suffix.lower())
        if loader is None:
            raise ModelLoadError(
                f"'{path.name}' has no known model format; supported file endings: {', '.join(self.suffixes)}"
            )
        return loader


def default_loaders() -> LoaderTable:
    from flaskserve.models.loaders.pickled import PickleLoader
    from flaskserve.models.loaders.skops import SkopsLoader

    return LoaderTable([PickleLoader(), SkopsLoader()])


def require(module: str, extra: str) -> Any:
    """Import an optional framework, or fail with the install line that brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelLoadError(
            f"loading this model needs the '{module}' package: pip install 'flaskserve[{extra}]'"
        ) from exc
