"""Run the examples' own code: their ``train.py`` into a temporary repository, their ``flaskserve.toml``.

Each example folder is a set of scripts, not a package, and every one of them
has a ``train.py``: modules are loaded from their files under names of their
own, and a client's ``from train import ...`` is pointed at its own folder's.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from flaskserve.settings import Settings, load_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(example: str, stem: str, *, train: ModuleType | None = None) -> ModuleType:
    """``examples/<example>/<stem>.py`` as a fresh module; ``train`` answers its ``import train``."""
    path = EXAMPLES / example / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"example_{example}_{stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("train")
    if train is not None:
        sys.modules["train"] = train
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop("train", None)
        else:
            sys.modules["train"] = saved
    return module


def example_settings(example: str, repository: Path, **flags: Any) -> Settings:
    """The example's ``flaskserve.toml``, with the model path pointed at ``repository``."""
    return load_settings(EXAMPLES / example / "flaskserve.toml", model_path=repository, **flags)
