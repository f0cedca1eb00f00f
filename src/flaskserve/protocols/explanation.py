"""Explanations on the wire: the rows of the ``explain`` method as JSON, shared by every protocol.

One entry per input row, in order::

    {"output": "setosa", "base_value": 0.33, "value": 0.97,
     "contributions": {"petal length (cm)": 0.41, ...}}

``output`` is the explained class as the model's classes name it, or
``"value"`` for a regressor; ``base_value`` plus the contributions is ``value``
on the answer's ``scale``. Pure: no Flask.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy.typing as npt
from pydantic import BaseModel, Field

from flaskserve.models.explain import BASE, EXPLAIN, FIRST_CONTRIBUTION, OUTPUT, VALUE
from flaskserve.models.served import ServedModel
from flaskserve.models.signature.contract import plain
from flaskserve.protocols.openapi import Operation

__all__ = [
    "EXPLAIN",
    "REGRESSOR_OUTPUT_NAME",
    "ExplainAnswer",
    "ExplanationEntry",
    "entries",
    "explanation_answer",
    "operation",
    "outputs",
]

#: What a regressor's entries name as their output.
REGRESSOR_OUTPUT_NAME = "value"


class ExplanationEntry(BaseModel):
    output: Any = Field(
        description='The explained class as the model names it, or "value" for a regressor.',
        json_schema_extra={"type": ["string", "number", "integer", "boolean"]},
    )
    base_value: float = Field(description="The expected output over the reference (the training data).")
    value: float = Field(description="The model's output for this row; base_value + contributions.")
    contributions: dict[str, float] = Field(description="Each feature's share, by feature name.")


class ExplainAnswer(BaseModel):
    model_name: str
    model_version: str
    explainer: Literal["tree_shap", "linear"]
    scale: Literal["probability", "log_odds", "raw"]
    explanations: list[ExplanationEntry]


def entries(values: npt.NDArray[Any], model: ServedModel) -> list[dict[str, Any]]:
    """The explanation of each row as its JSON entry."""
    names = model.signature.feature_names
    found = outputs(values, model)
    return [
        {
            "output": output,
            "base_value": row[BASE],
            "value": row[VALUE],
            "contributions": dict(zip(names, row[FIRST_CONTRIBUTION:], strict=True)),
        }
        for output, row in zip(found, values.tolist(), strict=True)
    ]


def outputs(values: npt.NDArray[Any], model: ServedModel) -> list[Any]:
    """What each row explains: its class as the model names it, or ``"value"`` for a regressor."""
    classes = model.signature.classes
    if classes is None:
        return [REGRESSOR_OUTPUT_NAME] * int(values.shape[0])
    return [plain(classes[int(index)]) for index in values[:, OUTPUT]]


def explanation_answer(values: npt.NDArray[Any], model: ServedModel) -> dict[str, Any]:
    """The whole answer of the simple protocol's explain routes."""
    explainer = model.explainer()
    return {
        "model_name": model.name,
        "model_version": model.version,
        "explainer": explainer.kind,
        "scale": explainer.scale,
        "explanations": entries(values, model),
    }


def operation(summary: str, tag: str, request: Any, answer: type[BaseModel] = ExplainAnswer) -> Operation:
    """The OpenAPI entry of an explain route whose body is ``request`` and answer ``answer``."""
    return Operation(
        summary,
        tag,
        request=request,
        response={"application/json": answer},
        errors=(404, 413, 415, 500, 503),
    )
