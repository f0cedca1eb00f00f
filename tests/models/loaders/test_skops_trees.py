"""Tree models saved with skops load by default; a crafted tree is refused before it can run."""

from __future__ import annotations

import copy
import json
import operator
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from flaskserve.errors import ModelLoadError, UntrustedModel
from flaskserve.models.loaders import default_loaders
from flaskserve.models.loading import load_registry
from flaskserve.settings import load_settings
from flaskserve.testing import save_model

#: The format tests' fixtures (``conftest.py`` beside this file): serve a file, ask it for predictions.
Serve = Callable[..., FlaskClient]
Ask = Callable[..., Any]

DATA = {
    "iris": load_iris(return_X_y=True),
    "cancer": load_breast_cancer(return_X_y=True),
    "diabetes": load_diabetes(return_X_y=True),
}


def load(path: Path, **settings: Any) -> Any:
    return load_registry(load_settings(None, model_path=path, **settings), default_loaders())


@pytest.mark.parametrize(
    ("estimator", "data"),
    [
        pytest.param(
            DecisionTreeClassifier(max_depth=4, random_state=0), "iris", id="decision tree classifier"
        ),
        pytest.param(
            DecisionTreeRegressor(max_depth=4, random_state=0), "diabetes", id="decision tree regressor"
        ),
        pytest.param(
            RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0),
            "iris",
            id="random forest classifier",
        ),
        pytest.param(
            RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0),
            "diabetes",
            id="random forest regressor",
        ),
        pytest.param(
            ExtraTreesClassifier(n_estimators=5, max_depth=4, random_state=0),
            "iris",
            id="extra trees classifier",
        ),
        pytest.param(
            ExtraTreesRegressor(n_estimators=5, max_depth=4, random_state=0),
            "diabetes",
            id="extra trees regressor",
        ),
        pytest.param(
            GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0),
            "iris",
            id="gradient boosting, three classes",
        ),
        pytest.param(
            GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0),
            "cancer",
            id="gradient boosting, two classes",
        ),
        pytest.param(
            GradientBoostingRegressor(n_estimators=5, max_depth=2, random_state=0),
            "diabetes",
            id="gradient boosting regressor",
        ),
        pytest.param(
            HistGradientBoostingClassifier(max_iter=5, random_state=0),
            "iris",
            id="histogram boosting, three classes",
        ),
        pytest.param(
            HistGradientBoostingClassifier(max_iter=5, random_state=0),
            "cancer",
            id="histogram boosting, two classes",
        ),
        pytest.param(
            HistGradientBoostingRegressor(max_iter=5, random_state=0),
            "diabetes",
            id="histogram boosting regressor",
        ),
        pytest.param(IsolationForest(n_estimators=5, random_state=0), "iris", id="isolation forest"),
    ],
)
def test_tree_model_loads_and_predicts_with_default_settings(
    tmp_path: Path, serve: Serve, ask: Ask, estimator: Any, data: str
) -> None:
    features, target = DATA[data]
    model = copy.deepcopy(estimator).fit(features, target)
    rows = features[:5]

    client = serve(save_model(model, tmp_path / "trees.skops"))

    np.testing.assert_allclose(ask(client, "trees", rows), model.predict(rows))


@pytest.fixture(scope="session")
def forest() -> Any:
    features, target = DATA["iris"]
    return RandomForestClassifier(n_estimators=4, max_depth=4, random_state=0).fit(features, target)


@pytest.fixture(scope="session")
def boosting() -> Any:
    features, target = DATA["iris"]
    return GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0).fit(features, target)


@pytest.fixture(scope="session")
def hist_boosting() -> Any:
    features, target = DATA["iris"]
    return HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(features, target)


@pytest.fixture(scope="session")
def forest_pipeline() -> Any:
    features, target = DATA["iris"]
    forest = RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0)
    return make_pipeline(StandardScaler(), forest).fit(features, target)


def first_split(tree: Any) -> int:
    """The first split node below the root's children: a node that has a parent and children."""
    left, right = tree.children_left, tree.children_right
    for child in (left[0], right[0]):
        if left[child] != -1:
            return int(child)
    raise AssertionError("the test tree is too shallow")


def link_back_up(model: Any) -> None:
    """A split points back at its own parent: a loop the root reaches, so a prediction would never end."""
    tree = model.estimators_[1].tree_
    top = first_split(tree)
    tree.children_left[int(tree.children_left[top])] = top


def detached_loop(model: Any) -> None:
    """A subtree is cut out and turned into a loop: every node keeps one parent, the root loses some."""
    tree = model.estimators_[1].tree_
    top = first_split(tree)
    below = int(tree.children_left[top])
    grandchild = int(tree.children_left[below])
    assert grandchild != -1, "the test tree is too shallow"
    side = tree.children_left if tree.children_left[0] == top else tree.children_right
    side[0] = grandchild
    tree.children_left[below] = top


def set_tree(field: str, node: int, value: int, estimator: int = 2) -> Callable[[Any], None]:
    def corrupt(model: Any) -> None:
        getattr(model.estimators_[estimator].tree_, field)[node] = value

    return corrupt


def set_predictor(field: str, value: int) -> Callable[[Any], None]:
    def corrupt(model: Any) -> None:
        model._predictors[1][0].nodes[field][0] = value

    return corrupt


def pretend_features(count: int) -> Callable[[Any], None]:
    def corrupt(model: Any) -> None:
        model.n_features_in_ = count

    return corrupt


def no_right_child_for_a_leaf(model: Any) -> None:
    tree = model.estimators_[0].tree_
    leaf = int(np.flatnonzero(tree.children_left == -1)[0])
    tree.children_right[leaf] = 1


def boosting_child_out_of_range(model: Any) -> None:
    model.estimators_[1, 2].tree_.children_right[0] = 7_000


def narrow_initial_predictions(model: Any) -> None:
    """The dummy the boosting starts from predicts one class where the trees add three outputs."""
    model.init_.class_prior_ = model.init_.class_prior_[:1]


def dropping_preprocessor(model: Any) -> None:
    features, _ = DATA["iris"]
    model._preprocessor = ColumnTransformer([("numerical", PCA(n_components=1), [0, 1, 2, 3])]).fit(features)


def pipeline_forest_feature(model: Any) -> None:
    model.steps[1][1].estimators_[0].tree_.feature[0] = 40


@pytest.mark.parametrize(
    ("fixture", "corrupt", "expected"),
    [
        pytest.param(
            "forest",
            set_tree("children_left", 0, 10**9),
            ["RandomForestClassifier.estimators_[2] (DecisionTreeClassifier)", "left child 1000000000"],
            id="child index far past the last node",
        ),
        pytest.param(
            "forest",
            set_tree("children_right", 0, -5),
            ["estimators_[2]", "right child -5"],
            id="negative child index",
        ),
        pytest.param(
            "forest",
            set_tree("feature", 0, 99),
            ["estimators_[2]", "splits on feature 99, but the features are 0 to 3"],
            id="feature index past the model's features",
        ),
        pytest.param(
            "forest",
            link_back_up,
            ["estimators_[1]", "node 2 is the child of more than one node"],
            id="link back up the tree",
        ),
        pytest.param(
            "forest",
            detached_loop,
            ["estimators_[1]", "node 2 cannot be reached from the root"],
            id="detached loop",
        ),
        pytest.param(
            "forest",
            no_right_child_for_a_leaf,
            ["estimators_[0]", "no left child but has right child 1"],
            id="half leaf",
        ),
        pytest.param(
            "forest",
            pretend_features(2),
            ["RandomForestClassifier has a tree estimators_[0] that takes 4 features, but the model takes 2"],
            id="forest claims fewer features than its trees read",
        ),
        pytest.param(
            "boosting",
            boosting_child_out_of_range,
            ["GradientBoostingClassifier.estimators_[1, 2] (DecisionTreeRegressor)", "right child 7000"],
            id="gradient boosting tree with a child out of range",
        ),
        pytest.param(
            "boosting",
            narrow_initial_predictions,
            ["GradientBoostingClassifier starts from initial predictions 1 wide", "its trees add 3 outputs"],
            id="gradient boosting initial predictions narrower than its trees' outputs",
        ),
        pytest.param(
            "hist_boosting",
            set_predictor("left", 10**6),
            [
                "HistGradientBoostingClassifier has a malformed tree at _predictors[1][0]",
                "left child 1000000",
            ],
            id="histogram boosting child out of range",
        ),
        pytest.param(
            "hist_boosting",
            set_predictor("feature_idx", 12),
            ["_predictors[1][0]", "splits on feature 12, but the features are 0 to 3"],
            id="histogram boosting feature out of range",
        ),
        pytest.param(
            "hist_boosting",
            set_predictor("is_categorical", 1),
            ["_predictors[1][0]", "categorical split on feature"],
            id="histogram boosting categorical split on a numeric feature",
        ),
        pytest.param(
            "hist_boosting",
            set_predictor("bin_threshold", 254),
            ["_predictors[1][0]", "at bin 254, but that feature has"],
            id="histogram boosting bin threshold past the feature's bins",
        ),
        pytest.param(
            "hist_boosting",
            dropping_preprocessor,
            ["HistGradientBoostingClassifier has a preprocessor step 'numerical' (PCA)"],
            id="histogram boosting preprocessor that drops columns",
        ),
        pytest.param(
            "forest_pipeline",
            pipeline_forest_feature,
            ["Pipeline.steps[1][1].estimators_[0] (DecisionTreeClassifier)", "feature 40"],
            id="tree nested in a pipeline",
        ),
    ],
)
def test_crafted_tree_is_refused_with_the_estimator_and_the_fault(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fixture: str,
    corrupt: Callable[[Any], None],
    expected: list[str],
) -> None:
    model = copy.deepcopy(request.getfixturevalue(fixture))
    corrupt(model)
    path = save_model(model, tmp_path / "crafted.skops")

    with pytest.raises(ModelLoadError) as refused:
        load(path)

    assert not isinstance(refused.value, UntrustedModel)
    assert refused.value.code == "model_load_failed"
    for fragment in expected:
        assert fragment in refused.value.message
    assert "export the model again" in refused.value.message
    assert str(tmp_path) not in refused.value.message


def test_gradient_boosting_from_a_custom_initial_estimator_is_refused(tmp_path: Path) -> None:
    features, target = DATA["iris"]
    model = GradientBoostingClassifier(n_estimators=2, init=LogisticRegression(max_iter=500), random_state=0)
    path = save_model(model.fit(features, target), tmp_path / "boosted.skops")

    with pytest.raises(ModelLoadError) as refused:
        load(path)

    assert "GradientBoostingClassifier starts from a LogisticRegression (init_)" in refused.value.message
    assert "--allow-pickle" in refused.value.message


def rewrite_tree_state(path: Path, field: str, value: int) -> None:
    """Change one number of every tree's stored state, as a hand-edited file would."""
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(entries["schema.json"])

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("__class__") == "Tree" and "__reduce__" in node:
                number = node["content"]["content"][field]
                number["content"] = str(value)
                # skops shares one loaded object between entries with the same id.
                number.pop("__id__", None)
            for child in node.values():
                visit(child)
        elif isinstance(node, list):
            for child in node:
                visit(child)

    visit(schema)
    entries["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        pytest.param(
            "node_count", 3, "it claims 3 nodes but stores 9", id="node count short of the stored arrays"
        ),
        pytest.param(
            "max_depth", 0, "it records a depth of 0, but its nodes are 3 deep", id="depth understated"
        ),
    ],
)
def test_tree_state_that_disagrees_with_its_arrays_is_refused(
    tmp_path: Path, field: str, value: int, expected: str
) -> None:
    features, target = DATA["iris"]
    path = save_model(
        DecisionTreeClassifier(max_depth=3, random_state=0).fit(features, target), tmp_path / "t.skops"
    )
    rewrite_tree_state(path, field, value)

    with pytest.raises(ModelLoadError) as refused:
        load(path)

    assert "DecisionTreeClassifier has a malformed tree" in refused.value.message
    assert expected in refused.value.message


def negating_pipeline() -> Any:
    features, target = DATA["iris"]
    model = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression(max_iter=500))
    return model.fit(features, target)


def categorical_hist_boosting() -> Any:
    features, target = DATA["iris"]
    coarse = np.c_[features[:, :1].round(), features[:, 1:]]
    model = HistGradientBoostingClassifier(max_iter=3, categorical_features=[0], random_state=0)
    return model.fit(coarse, target)


@pytest.mark.parametrize(
    ("train", "types"),
    [
        pytest.param(negating_pipeline, ["_operator.neg"], id="a function from the standard library"),
        pytest.param(
            categorical_hist_boosting,
            ["functools.partial", "sklearn.utils.validation.check_array"],
            id="the helpers a categorical histogram boosting model stores",
        ),
    ],
)
def test_other_untrusted_types_are_still_refused_until_trusted(
    tmp_path: Path, train: Callable[[], Any], types: list[str]
) -> None:
    path = save_model(train(), tmp_path / "trees.skops")

    with pytest.raises(UntrustedModel) as refused:
        load(path)
    trusted = load(path, skops_trusted_types=types)

    for name in types:
        assert name in refused.value.message
    assert trusted.names() == ["trees"]
