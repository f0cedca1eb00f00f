"""Find model files: a single file, or a repository folder of models and versions.

Layout, as Triton and TF Serving use it::

    models/
      iris/
        model-settings.toml      optional, same keys as [models.iris] in the config
        1/model.skops
        2/model.skops
      diabetes/
        model.joblib             a model folder without version folders is version 1
      churn/
        1/model.py               a Python class; the other files of its folder are its own
        1/weights.skops

A folder that itself holds the model file, as KServe's storage initializer leaves
``/mnt/models``, is one model of version 1, named ``model_name`` (else after the folder)::

    /mnt/models/
      model.joblib

Names and versions are checked before any path is built from them, and every
file must resolve inside the repository: a symlink that points outside is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from flaskserve.errors import ModelLoadError, clip
from flaskserve.models.loaders import LoaderTable

MODEL_SETTINGS_FILE = "model-settings.toml"
#: The stem that says nothing about a model: a single file named so is named after its folder.
GENERIC_STEM = "model"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_VERSION = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class ModelSource:
    """One model version found on disk."""

    name: str
    version: str
    path: Path
    settings_file: Path | None = None


def valid_model_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name)) and ".." not in name


def valid_version(version: str) -> bool:
    return bool(_VERSION.fullmatch(version))


def check_model_name(name: str) -> str:
    if not valid_model_name(name):
        raise ModelLoadError(
            f"'{clip(name)}' is not a valid model name: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit, at most 64 characters"
        )
    return name


def version_key(version: str) -> int:
    return int(version)


def scan(path: Path, loaders: LoaderTable, *, single_name: str | None = None) -> list[ModelSource]:
    """Every model version at ``path``, sorted by name and version."""
    if not path.exists():
        raise ModelLoadError(f"'{path}' does not exist")
    if path.is_file():
        name = check_model_name(single_name or single_file_name(path, loaders))
        loaders.for_path(path)
        return [ModelSource(name=name, version="1", path=path.resolve())]
    root = path.resolve()
    if any(loaders.handles(p) for p in root.iterdir() if p.is_file()):
        name = check_model_name(single_name or root.name)
        return [ModelSource(name, "1", _model_file(root, root, loaders), _settings_file(root, root))]
    sources: list[ModelSource] = []
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        sources.extend(scan_model(root, model_dir.name, loaders))
    if not sources:
        raise ModelLoadError(
            f"no model files found in '{path}'; expected NAME/VERSION/model-file with one of "
            f"{', '.join(loaders.suffixes)}"
        )
    return sources


def single_file_name(path: Path, loaders: LoaderTable) -> str:
    """The name a model file served on its own gets: its stem, unless the stem is the generic ``model``.

    A file named ``model`` is named after the folder it sits in, version folders skipped, as a
    repository would name it: ``churn/model.py`` is served as ``churn`` and
    ``models/iris/2/model.skops`` as ``iris``, where both would otherwise be ``model``. A folder whose
    name is not a valid model name leaves the stem.
    """
    stem = loaders.stem(path)
    if stem.lower() != GENERIC_STEM:
        return stem
    for folder in path.resolve().parents:
        if not valid_version(folder.name):
            return folder.name if valid_model_name(folder.name) else stem
    return stem


def scan_model(root: Path, name: str, loaders: LoaderTable) -> list[ModelSource]:
    """Every version of one model in a repository (also used to (re)load a model by name)."""
    check_model_name(name)
    model_dir = _inside(root, root / name)
    if not model_dir.is_dir():
        raise ModelLoadError(f"the repository has no model '{name}'")
    settings = _settings_file(root, model_dir)
    version_dirs = [p for p in model_dir.iterdir() if p.is_dir() and valid_version(p.name)]
    if version_dirs:
        found = [
            ModelSource(name, str(int(d.name)), _model_file(root, d, loaders), settings) for d in version_dirs
        ]
    elif any(loaders.handles(p) for p in model_dir.iterdir() if p.is_file()):
        found = [ModelSource(name, "1", _model_file(root, model_dir, loaders), settings)]
    else:
        return []
    return sorted(found, key=lambda s: version_key(s.version))


def _settings_file(root: Path, model_dir: Path) -> Path | None:
    candidate = model_dir / MODEL_SETTINGS_FILE
    return _inside(root, candidate) if candidate.is_file() else None


def _model_file(root: Path, folder: Path, loaders: LoaderTable) -> Path:
    files = loaders.model_files(p for p in folder.iterdir() if p.is_file())
    if len(files) != 1:
        where = folder.relative_to(root)
        raise ModelLoadError(
            f"'{where}' must hold exactly one model file; found {len(files)}"
            + (f" ({', '.join(sorted(p.name for p in files))})" if files else "")
        )
    return _inside(root, files[0])


def _inside(root: Path, candidate: Path) -> Path:
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise ModelLoadError(f"'{candidate.name}' resolves outside the model repository; refusing it")
    return resolved
