"""Explanations add up to the model's own output, and TreeSHAP gives the exact Shapley values.

Every explainer is held to the contract: ``base + Σ contributions == value`` to
1e-6, ``value`` equals the model's own score for the explained output, and the
explained class is the class the model predicts. TreeSHAP is also compared with
Shapley values computed by brute force (every coalition of features, each
expectation taken down the tree by its cover), on trees small enough for that.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from threadpoolctl import threadpool_limits

from flaskserve.errors import ExplainUnsupported
from flaskserve.models.explain import BASE, FIRST_CONTRIBUTION, OUTPUT, VALUE, find_explainer

Floats = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def iris() -> tuple[Floats, Any]:
    from sklearn.datasets import load_iris

    features, target = load_iris(return_X_y=True)
    return features, target


@pytest.fixture(scope="module")
def cancer() -> tuple[Floats, Any]:
    from sklearn.datasets import load_breast_cancer

    features, target = load_breast_cancer(return_X_y=True)
    return features[:, :8], target


@pytest.fixture(scope="module")
def diabetes() -> tuple[Floats, Any]:
    from sklearn.datasets import load_diabetes

    features, target = load_diabetes(return_X_y=True)
    return features, target


def _own_score(model: Any, rows: Floats, scale: str) -> Floats:
    """The model's own output on the explanation's scale, one column per score."""
    if scale == "probability":
        return np.asarray(model.predict_proba(rows))
    if hasattr(model, "classes_") or hasattr(model, "predict_proba"):
        return np.asarray(model.decision_function(rows)).reshape(len(rows), -1)
    predicted = np.asarray(model.predict(rows)).reshape(len(rows), -1)
    # A Poisson model predicts exp(raw score); its trees, and so its explanation, add up to the raw score.
    return np.log(predicted) if getattr(model, "loss", None) == "poisson" else predicted


def _check_contract(model: Any, rows: Floats, score: Callable[[Floats], Floats] | None = None) -> Floats:
    explainer = find_explainer(model, rows.shape[1])
    explained = explainer(rows)
    base, value = explained[:, BASE], explained[:, VALUE]
    np.testing.assert_allclose(base + explained[:, FIRST_CONTRIBUTION:].sum(axis=1), value, atol=1e-6, rtol=0)

    own = score(rows) if score is not None else _own_score(model, rows, explainer.scale)
    predicted = np.asarray(model.predict(rows))
    if not hasattr(model, "classes_"):
        np.testing.assert_allclose(value, own[:, 0], rtol=1e-5, atol=1e-5)
        assert (explained[:, OUTPUT] == -1).all()
        return explained
    classes = np.asarray(model.classes_)
    index = explained[:, OUTPUT].astype(int)
    assert (classes[index] == predicted).all()
    if own.shape[1] == 1:  # one margin: the log-odds of the second class, negated for the first
        own = np.column_stack([-own[:, 0], own[:, 0]])
    np.testing.assert_allclose(value, own[np.arange(len(rows)), index], rtol=1e-5, atol=1e-5)
    return explained


def _sklearn_models() -> list[Any]:
    from sklearn import ensemble, linear_model, pipeline, preprocessing, tree

    return [
        pytest.param("iris", tree.DecisionTreeClassifier(max_depth=4, random_state=0), id="decision tree"),
        pytest.param(
            "iris", ensemble.RandomForestClassifier(10, random_state=0), id="random forest, 3 classes"
        ),
        pytest.param(
            "cancer", ensemble.ExtraTreesClassifier(10, random_state=0), id="extra trees, 2 classes"
        ),
        pytest.param(
            "diabetes", ensemble.RandomForestRegressor(8, max_depth=6, random_state=0), id="forest regr."
        ),
        pytest.param(
            "cancer", ensemble.GradientBoostingClassifier(n_estimators=20), id="gradient boosting binary"
        ),
        pytest.param(
            "iris", ensemble.GradientBoostingClassifier(n_estimators=10), id="gradient boosting 3 classes"
        ),
        pytest.param(
            "diabetes", ensemble.GradientBoostingRegressor(n_estimators=20), id="gradient boosting regr."
        ),
        pytest.param(
            "cancer", ensemble.HistGradientBoostingClassifier(max_iter=15), id="hist boosting binary"
        ),
        pytest.param(
            "iris", ensemble.HistGradientBoostingClassifier(max_iter=10), id="hist boosting 3 classes"
        ),
        pytest.param(
            "diabetes", ensemble.HistGradientBoostingRegressor(max_iter=15, loss="poisson"), id="hist poisson"
        ),
        pytest.param("diabetes", linear_model.Ridge(), id="ridge"),
        pytest.param(
            "cancer",
            pipeline.make_pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression()),
            id="scaled logistic regression, binary",
        ),
        pytest.param(
            "iris",
            pipeline.make_pipeline(preprocessing.MinMaxScaler(), linear_model.LogisticRegression()),
            id="scaled logistic regression, 3 classes",
        ),
        pytest.param(
            "cancer",
            pipeline.make_pipeline(preprocessing.StandardScaler(), tree.DecisionTreeClassifier(max_depth=3)),
            id="scaled decision tree",
        ),
    ]


@pytest.mark.parametrize(("data", "model"), _sklearn_models())
def test_explanations_add_up_to_the_models_own_output(data: str, model: Any, request: Any) -> None:
    features, target = request.getfixturevalue(data)
    # One thread: OpenMP's pool of histogram boosting is slower than one core on a shared machine.
    with threadpool_limits(limits=1):
        model.fit(features, target)
        _check_contract(model, features[::7])


def test_a_binary_logistic_regression_is_explained_in_log_odds_from_the_training_mean(
    cancer: tuple[Floats, Any],
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = cancer
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, target)
    explainer = find_explainer(model, features.shape[1])
    explained = explainer(features[:20])

    assert (explainer.kind, explainer.scale) == ("linear", "log_odds")
    scaler, logistic = model[0], model[-1]
    positive = explained[:, OUTPUT] == 1
    sign = np.where(positive, 1.0, -1.0)[:, None]
    expected = sign * logistic.coef_[0] * (features[:20] - scaler.mean_) / scaler.scale_
    np.testing.assert_allclose(explained[:, FIRST_CONTRIBUTION:], expected, atol=1e-12)
    np.testing.assert_allclose(explained[:, BASE], sign[:, 0] * logistic.intercept_[0])


def _brute_force_shapley(model: Any, row: Floats) -> Floats:
    """Shapley values of E[f(x) | x_S] taken down each tree by its training cover, over every coalition."""
    trees = [(t, 1.0 / len(model.estimators_)) for t in model.estimators_]
    n_features = row.shape[0]

    def expected(subset: set[int]) -> float:
        total = 0.0
        for fitted, weight in trees:
            nodes = fitted.tree_

            def down(node: int, nodes: Any = nodes) -> float:
                if nodes.children_left[node] < 0:
                    return float(nodes.value[node, 0, 0])
                left, right = nodes.children_left[node], nodes.children_right[node]
                if nodes.feature[node] in subset:
                    goes_left = np.float32(row[nodes.feature[node]]) <= nodes.threshold[node]
                    return down(left if goes_left else right)
                cover = nodes.weighted_n_node_samples
                return float(cover[left] * down(left) + cover[right] * down(right)) / float(cover[node])

            total += weight * down(0)
        return total

    values = np.zeros(n_features)
    for feature in range(n_features):
        others = [j for j in range(n_features) if j != feature]
        for size in range(n_features):
            weight = math.factorial(size) * math.factorial(n_features - size - 1) / math.factorial(n_features)
            for coalition in itertools.combinations(others, size):
                values[feature] += weight * (expected({*coalition, feature}) - expected(set(coalition)))
    return values


def test_tree_shap_equals_brute_force_shapley_values(diabetes: tuple[Floats, Any]) -> None:
    from sklearn.ensemble import RandomForestRegressor

    features, target = diabetes
    features = features[:, :5]
    model = RandomForestRegressor(3, max_depth=4, random_state=0).fit(features, target)
    explained = find_explainer(model, 5)(features[:3])

    for row, got in zip(features[:3], explained, strict=True):
        np.testing.assert_allclose(got[FIRST_CONTRIBUTION:], _brute_force_shapley(model, row), atol=1e-9)


def test_missing_values_follow_the_trees_own_missing_branch(diabetes: tuple[Floats, Any]) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    features, target = diabetes
    holes = features.copy()
    holes[::3, 2] = np.nan
    with threadpool_limits(limits=1):
        model = HistGradientBoostingRegressor(max_iter=10).fit(holes, target)
        _check_contract(model, holes[:30])


def test_xgboost_and_lightgbm_boosters_explain_with_their_own_contributions(
    cancer: tuple[Floats, Any], iris: tuple[Floats, Any], diabetes: tuple[Floats, Any]
) -> None:
    import lightgbm
    import xgboost

    from flaskserve.models.loaders.lightgbm import LightGBMClassifier
    from flaskserve.models.loaders.xgboost import XGBoostClassifier, XGBoostModel

    features, target = cancer
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1}, xgboost.DMatrix(features, target), 10
    )
    binary = XGBoostClassifier(booster, None, "binary:logistic", 2)
    _check_contract(binary, features[:40], _margin(booster, features[:40]))

    features, target = iris
    data = lightgbm.Dataset(features, target)
    params = {
        "objective": "multiclass",
        "num_class": 3,
        "verbose": -1,
        "num_threads": 1,
        "min_data_in_leaf": 5,
    }
    three = lightgbm.train(params, data, 10)
    _check_contract(
        LightGBMClassifier(three, 3), features[::5], lambda rows: three.predict(rows, raw_score=True)
    )

    features, target = diabetes
    regression = xgboost.train({"max_depth": 3, "nthread": 1}, xgboost.DMatrix(features, target), 10)
    _check_contract(XGBoostModel(regression, None), features[:30])


def _margin(booster: Any, rows: Floats) -> Callable[[Floats], Floats]:
    def margin(matrix: Floats) -> Floats:
        return np.asarray(booster.inplace_predict(matrix, predict_type="margin")).reshape(len(matrix), -1)

    return margin


def _unsupported() -> list[Any]:
    from sklearn import decomposition, linear_model, pipeline, preprocessing, svm

    return [
        pytest.param(svm.SVC(), "SVC", id="a support vector machine"),
        pytest.param(
            pipeline.make_pipeline(decomposition.PCA(2), linear_model.LogisticRegression()),
            "PCA",
            id="a pipeline that mixes features",
        ),
        pytest.param(
            pipeline.make_pipeline(preprocessing.PolynomialFeatures(2), linear_model.RidgeClassifier()),
            "PolynomialFeatures",
            id="a pipeline that expands features",
        ),
    ]


@pytest.mark.parametrize(("model", "named"), _unsupported())
def test_models_that_cannot_be_explained_are_refused_naming_what_can(
    model: Any, named: str, iris: tuple[Floats, Any]
) -> None:
    features, target = iris
    model.fit(features, target)
    with pytest.raises(ExplainUnsupported) as refused:
        find_explainer(model, features.shape[1])

    assert named in refused.value.message
    assert "random forests" in refused.value.message
