"""The input form of a served model: one field per feature, with a sensible start value and range.

The playground (``/ui``) draws its form from this description, so the browser
never guesses. Each field's hints come from the first source that has them:

1. the model's settings (``[models.NAME.playground]``): an example row, and per
   feature a range, a step, choices and a description;
2. what the fitted estimator kept of its training data, read by attribute name
   from the front of the model (a Pipeline's first step, or each part of a
   ``ColumnTransformer`` there): a ``StandardScaler``'s mean and scale (start at
   the mean, range mean ± 3 standard deviations), a ``MinMaxScaler``'s observed
   minimum and maximum, a ``RobustScaler``'s centre, the categories of a
   ``OneHotEncoder`` or ``OrdinalEncoder`` (a select; numeric categories only, as
   the signature takes numbers);
3. nothing: a number field starting at 0.

A ``drawing`` widget is offered only when its grid has exactly as many pixels
as the model has features. ``image`` says whether the model's settings declare
an image input: the pad then sends its drawing as a PNG, through the decoder
every image client goes through, rather than as a row of pixel values.

Pure: no Flask, and nothing is computed on the model; attributes are only read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from flaskserve.models.served import ServedModel
from flaskserve.settings import FeatureHint, PlaygroundSettings

__all__ = ["Field", "InputForm", "input_form"]

#: How far a scaler's range reaches each side of the mean, in standard deviations.
SPREAD = 3.0


@dataclass
class Field:
    """One feature's entry in the form."""

    name: str
    #: ``number``, ``select`` or ``text``.
    input: str = "number"
    value: float | str = 0.0
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: list[float] | None = None
    description: str = ""
    #: Where the hints came from: ``settings``, ``training`` (the estimator's statistics) or ``none``.
    source: str = "none"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input": self.input,
            "value": self.value,
            "min": self.min,
            "max": self.max,
            "step": self.step,
            "choices": self.choices,
            "description": self.description,
            "source": self.source,
        }


@dataclass
class InputForm:
    """The whole form: its fields and the scenario widget shown above it."""

    fields: list[Field]
    widget: str
    drawing: dict[str, float] | None = field(default=None)
    #: The model takes PNG and JPEG images (its settings declare ``image``).
    image: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "widget": self.widget,
            "drawing": self.drawing,
            "image": self.image,
            "fields": [f.describe() for f in self.fields],
        }


def input_form(model: ServedModel) -> InputForm:
    """The form of one model version, from its settings, then its training statistics."""
    signature = model.signature
    hints = model.settings.playground
    if signature.is_text:
        name = signature.feature_names[0]
        example = (hints.example or {}).get(name, "")
        text = Field(name, input="text", value=str(example), description=_description(hints, name))
        text.source = "settings" if example or text.description else "none"
        return InputForm([text], widget=hints.widget or "chat")
    fields = [Field(name) for name in signature.feature_names]
    by_name = {f.name: f for f in fields}
    for name, stats in _training_hints(model.estimator, signature.feature_names):
        target = by_name[name]
        for key, value in stats.items():
            setattr(target, key, value)
        target.source = "training"
    for f in fields:
        _apply_settings(f, hints)
    widget = hints.widget or "form"
    drawing = None
    # A pad whose grid is not the signature's pixels would send rows the model refuses: plain form instead.
    if widget == "drawing" and hints.drawing_width * hints.drawing_height != signature.n_features:
        widget = "form"
    if widget == "drawing":
        drawing = {
            "width": hints.drawing_width,
            "height": hints.drawing_height,
            "max_value": hints.drawing_max_value,
        }
    return InputForm(fields, widget=widget, drawing=drawing, image=model.settings.image is not None)


def _description(hints: PlaygroundSettings, name: str) -> str:
    hint = hints.features.get(name)
    return hint.description if hint is not None else ""


def _apply_settings(f: Field, hints: PlaygroundSettings) -> None:
    hint: FeatureHint | None = hints.features.get(f.name)
    example = (hints.example or {}).get(f.name)
    if hint is None and example is None:
        return
    f.source = "settings"
    if hint is not None:
        f.description = hint.description or f.description
        f.min = hint.min if hint.min is not None else f.min
        f.max = hint.max if hint.max is not None else f.max
        f.step = hint.step if hint.step is not None else f.step
        if hint.choices:
            f.input, f.choices = "select", list(hint.choices)
            f.value = hint.choices[0]
        elif hint.min is not None and hint.max is not None:
            f.value = (hint.min + hint.max) / 2
    if isinstance(example, (int, float)):
        f.value = float(example)


def _training_hints(estimator: Any, names: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(feature, hints) pairs from the statistics the front of the model kept."""
    front = _front(estimator)
    parts = getattr(front, "transformers_", None)
    if parts is None:
        yield from _statistics(front, list(names))
        return
    # A ColumnTransformer: each part kept statistics of its own columns only.
    for _, part, columns in parts:
        selected = _column_names(columns, names)
        if selected:
            yield from _statistics(_front(part), selected)


def _front(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    while steps:
        estimator = steps[0][1]
        steps = getattr(estimator, "steps", None)
    return estimator


def _column_names(columns: Any, names: Sequence[str]) -> list[str]:
    if isinstance(columns, str):
        columns = [columns]
    if isinstance(columns, slice):
        return list(names[columns])
    selected: list[str] = []
    try:
        values = list(columns)
    except TypeError:
        return []
    if values and all(isinstance(v, bool) for v in values):
        return [name for name, keep in zip(names, values, strict=False) if keep]
    for value in values:
        if isinstance(value, str) and value in names:
            selected.append(value)
        elif isinstance(value, int) and 0 <= value < len(names):
            selected.append(names[value])
    return selected


def _statistics(step: Any, names: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    mean = _floats(getattr(step, "mean_", None), len(names))
    scale = _floats(getattr(step, "scale_", None), len(names))
    data_min = _floats(getattr(step, "data_min_", None), len(names))
    data_max = _floats(getattr(step, "data_max_", None), len(names))
    center = _floats(getattr(step, "center_", None), len(names))
    categories = getattr(step, "categories_", None)
    for index, name in enumerate(names):
        if categories is not None and len(categories) == len(names):
            choices = _floats(categories[index], len(categories[index]))
            if choices:
                yield name, {"input": "select", "choices": choices, "value": choices[0]}
        elif data_min and data_max:
            low, high = data_min[index], data_max[index]
            yield name, {"min": low, "max": high, "value": _round((low + high) / 2)}
        elif mean:
            hints: dict[str, Any] = {"value": _round(mean[index])}
            if scale:
                spread = SPREAD * scale[index]
                hints.update(min=_round(mean[index] - spread), max=_round(mean[index] + spread))
            yield name, hints
        elif center:
            yield name, {"value": _round(center[index])}


def _floats(values: Any, expected: int) -> list[float]:
    """The values as finite floats when there are ``expected`` of them, else an empty list."""
    if values is None:
        return []
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        return []
    if len(floats) != expected or not all(math.isfinite(v) for v in floats):
        return []
    return floats


def _round(value: float) -> float:
    """Four significant digits: a start value a person can read and type."""
    return float(f"{value:.4g}")
