"""The playground's input form, read off fitted estimators and model settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flaskserve.models.form import input_form
from flaskserve.models.served import ServedModel
from flaskserve.models.signature import infer_signature
from flaskserve.settings import ModelSettings


def served(estimator: Any, **settings: Any) -> ServedModel:
    model_settings = ModelSettings(**settings)
    return ServedModel(
        name="m",
        version="1",
        estimator=estimator,
        signature=infer_signature(estimator, input_kind=model_settings.input),
        platform="sklearn",
        sha256="",
        source=Path("model"),
        settings=model_settings,
    )


def fields(model: ServedModel) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in input_form(model).describe()["fields"]}


def test_a_min_max_scaler_gives_the_observed_range() -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    features = np.array([[0.0, 10.0], [4.0, 30.0]])
    model = make_pipeline(MinMaxScaler(), LinearRegression()).fit(features, [1.0, 2.0])

    x0, x1 = fields(served(model)).values()

    assert (x0["min"], x0["max"], x0["value"], x0["source"]) == (0.0, 4.0, 2.0, "training")
    assert (x1["min"], x1["max"], x1["value"]) == (10.0, 30.0, 20.0)


def test_a_column_transformer_gives_each_column_its_own_part_s_hints() -> None:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.DataFrame({"plan": [1.0, 2.0, 3.0, 1.0], "age": [20.0, 40.0, 30.0, 50.0]})
    columns = ColumnTransformer([("plan", OneHotEncoder(), ["plan"]), ("age", StandardScaler(), ["age"])])
    model = make_pipeline(columns, LogisticRegression()).fit(frame, [0, 1, 0, 1])

    by_name = fields(served(model))

    assert by_name["plan"] | {"input": "select", "choices": [1.0, 2.0, 3.0], "value": 1.0} == by_name["plan"]
    assert by_name["age"]["value"] == 35.0
    assert by_name["age"]["min"] == pytest.approx(35.0 - 3 * np.std([20.0, 40.0, 30.0, 50.0]), abs=1e-2)


def test_a_text_model_gets_a_text_area_and_the_chat_widget() -> None:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(CountVectorizer(), LogisticRegression()).fit(["hi", "bye"], ["greet", "leave"])

    form = input_form(served(model, playground={"example": {"text": "hello"}})).describe()

    assert form["widget"] == "chat"
    assert [(f["name"], f["input"], f["value"]) for f in form["fields"]] == [("text", "text", "hello")]


def test_a_drawing_widget_carries_its_grid() -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    hints = {"widget": "drawing", "drawing_width": 2, "drawing_height": 2, "drawing_max_value": 16}

    form = input_form(served(model, playground=hints)).describe()

    assert form["drawing"] == {"width": 2, "height": 2, "max_value": 16.0}


def test_a_drawing_grid_that_is_not_the_features_falls_back_to_the_form() -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])

    form = input_form(served(model, playground={"widget": "drawing", "drawing_width": 3})).describe()

    assert (form["widget"], form["drawing"]) == ("form", None)
