"""A model written as a small Python class, in a ``model.py`` file.

This is where custom pre- and post-processing lives: the class can wrap another
model stored beside it and transform what goes in and what comes out. The file::

    class Model:
        feature_names_in_ = ["age", "income"]    # or n_features_in_ = 2, or features in settings
        classes_ = ["no", "yes"]                  # optional, for classifiers

        def load(self, directory: Path) -> None:  # optional, called once at load time
            self.inner = skops.io.load(directory / "weights.skops")

        def predict(self, features: numpy.ndarray) -> numpy.ndarray: ...

The class served is the one named ``Model``, or else the only class defined in
the file with a ``predict`` method. It is built without arguments and gets the
same validated float64 matrix every estimator gets. The other files of its
folder are its artefacts, not models of their own.

Loading the file runs it, so it is trusted exactly like a pickle, by its own
flag (``--allow-code``) or a pinned digest. The code run is the very bytes
whose digest was checked: no cached bytecode is read or written, and the file
is imported under a unique module name without touching ``sys.path``.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import inspect
import itertools
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from flaskserve.errors import ModelLoadError
from flaskserve.models.loaders import LoadedFile
from flaskserve.models.trust import ModelFile, TrustPolicy

log = logging.getLogger("flaskserve.models")

#: The class name that wins when a file defines several classes with ``predict``.
CLASS_NAME = "Model"
_module_numbers = itertools.count(1)


class _VerifiedSource(importlib.abc.Loader):
    """Runs the source bytes it was given, the ones whose digest the trust policy checked."""

    def __init__(self, source: bytes, path: Path) -> None:
        self._source = source
        self._path = path

    def create_module(self, spec: Any) -> ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        code = compile(self._source, str(self._path), "exec", dont_inherit=True)
        exec(code, module.__dict__)


class PythonLoader:
    suffixes: tuple[str, ...] = (".py",)
    #: The class reads its weights from its folder: the other files there are not models.
    owns_folder = True

    def load(self, file: ModelFile, *, display_name: str, trust: TrustPolicy) -> LoadedFile:
        trust.check_code(display_name, file.sha256)
        path = file.path
        module = _import(file.data, path, display_name)
        cls = _model_class(module, display_name)
        try:
            model = cls()
            hook = getattr(model, "load", None)
            if callable(hook):
                hook(path.parent)
        except Exception as exc:
            # The operator needs the traceback to fix their class; the message stays free of paths.
            log.exception("model class failed to load", extra={"model": display_name})
            raise ModelLoadError(
                f"{display_name}: {cls.__name__} failed while loading: {type(exc).__name__}"
            ) from exc
        return LoadedFile(model=model, platform="python_class")


def _import(source: bytes, path: Path, display_name: str) -> ModuleType:
    """Run the file as a fresh module, registered under a name no other model shares.

    The module is registered in ``sys.modules`` while it runs, as an import would,
    so that dataclasses and pickling inside it can find their own module.
    """
    name = f"flaskserve_model_{next(_module_numbers)}"
    spec = importlib.util.spec_from_file_location(name, path, loader=_VerifiedSource(source, path))
    if spec is None or spec.loader is None:  # pragma: no cover - a loader is always given
        raise ModelLoadError(f"{display_name} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        log.exception("model file failed to import", extra={"model": display_name})
        raise ModelLoadError(f"{display_name} failed while importing: {type(exc).__name__}") from exc
    return module


def _model_class(module: ModuleType, display_name: str) -> type[Any]:
    """The class named ``Model``, or else the only class of the file with a ``predict`` method."""
    own = [
        value
        for value in vars(module).values()
        if inspect.isclass(value) and value.__module__ == module.__name__
    ]
    named = [cls for cls in own if cls.__name__ == CLASS_NAME]
    if named:
        return named[0]
    candidates = [cls for cls in own if callable(getattr(cls, "predict", None))]
    if len(candidates) == 1:
        return candidates[0]
    found = ", ".join(sorted(cls.__name__ for cls in candidates))
    raise ModelLoadError(
        f"{display_name} must define one class with a predict method, or name the one to serve "
        f"'{CLASS_NAME}'; found {len(candidates)}" + (f" ({found})" if found else "")
    )
