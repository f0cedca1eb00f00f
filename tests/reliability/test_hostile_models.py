"""Hostile model files are refused with a clear error, in bounded time and memory, and run no code.

Each file is built here from a tiny model trained on scikit-learn's bundled data,
then damaged the way an attacker would: a zip bomb, a tensor stored outside the
model, a booster claiming billions of features or nodes, a tree whose links point
anywhere, code without trust, a symlink out of the repository, bytes swapped after
they were judged. Files that used to crash the process or take gigabytes are loaded
in a child process capped at 2 GiB of address space, so a regression fails a test
instead of taking the machine down.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from flaskserve import testing
from flaskserve.app import create_app
from flaskserve.errors import ModelLoadError, UntrustedModel
from flaskserve.models.loaders import LoadedFile, LoaderTable, default_loaders
from flaskserve.models.loaders.archive import MAX_MEMBERS
from flaskserve.models.loaders.pickled import PickleLoader
from flaskserve.models.loading import load_registry
from flaskserve.models.trust import ModelFile, TrustPolicy, file_sha256
from flaskserve.settings import load_settings

#: The address space a child loading a hostile file may use.
MEMORY_CAP = 2 << 30
#: A sanity bound on one refusal, not a benchmark: each takes milliseconds.
TIME_BOUND_S = 10.0
#: What a bomb unpacks to: more than the child may hold.
BOMB_BYTES = 3 << 30
IRIS_ROW = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


def refused(load: Callable[[], Any], error: type[Exception] = ModelLoadError) -> tuple[Any, float]:
    """Run ``load``; return the error it raised and how long it took."""
    started = time.perf_counter()
    with pytest.raises(error) as caught:
        load()
    return caught.value, time.perf_counter() - started


def assert_clean(message: str, tmp_path: Path) -> None:
    """A message shown to clients: no path of the server, no traceback."""
    assert str(tmp_path) not in message
    assert "Traceback" not in message
    assert "/tmp" not in message


def load_file(path: Path, **settings: Any) -> Any:
    return load_registry(load_settings(None, model_path=path, **settings), default_loaders())


# -- the files ---------------------------------------------------------------------------------


def zeros_deflated(size: int) -> bytes:
    """A raw deflate stream of ``size`` zero bytes (whole MiB), built without ever holding them."""
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    # After a full flush the compressor starts afresh, so the same MiB compresses to the same block.
    block = squeezer.compress(bytes(1 << 20)) + squeezer.flush(zlib.Z_FULL_FLUSH)
    return block * (size >> 20) + squeezer.flush()


def handmade_zip(members: list[tuple[str, bytes, int]], method: int = 8) -> bytes:
    """A zip written by hand, so a member may declare any size: ``(name, stored bytes, declared size)``.

    ZIP64's end records are added when there are more members than the classic record counts.
    """
    local, directory = bytearray(), bytearray()
    for name, stored, size in members:
        raw = name.encode()
        offset = len(local)
        local += struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 33, 0, len(stored), size, len(raw), 0
        )
        local += raw + stored
        # Versions, flags, method, time, date, CRC, sizes, name length, no extra/comment/disk/attributes.
        record = (20, 20, 0, method, 0, 33, 0, len(stored), size, len(raw), 0, 0, 0, 0, 0, offset)
        directory += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", *record) + raw
    count = len(members)
    tail = b""
    if count > 0xFFFF:
        end64 = len(local) + len(directory)
        tail += struct.pack(
            "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(directory), len(local)
        )
        tail += struct.pack("<4sLQL", b"PK\x06\x07", 0, end64, 1)
        count = 0xFFFF
    tail += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory), len(local), 0)
    return bytes(local + directory + tail)


@pytest.fixture(scope="module")
def xgboost_booster() -> Any:
    """A three-class XGBoost model of iris."""
    import xgboost as xgb
    from sklearn.datasets import load_iris

    features, target = load_iris(return_X_y=True)
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1}
    return xgb.train(params, xgb.DMatrix(features, label=target), num_boost_round=2)


@pytest.fixture(scope="module")
def xgboost_json(xgboost_booster: Any) -> dict[str, Any]:
    """The model as the JSON document XGBoost saves."""
    document: dict[str, Any] = json.loads(bytes(xgboost_booster.save_raw("json")))
    return document


@pytest.fixture(scope="module")
def xgboost_ubj(xgboost_booster: Any) -> bytes:
    """The model as the UBJSON XGBoost saves."""
    return bytes(xgboost_booster.save_raw("ubj"))


@pytest.fixture(scope="module")
def lightgbm_text() -> str:
    """A three-class LightGBM model of iris, as the text LightGBM saves."""
    import lightgbm as lgb
    from sklearn.datasets import load_iris

    features, target = load_iris(return_X_y=True)
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 4, "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(features, target), num_boost_round=2)
    text: str = booster.model_to_string()
    return text


def _xgboost_variant(document: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> bytes:
    copy = json.loads(json.dumps(document))
    change(copy)
    return json.dumps(copy).encode()


def _first_tree(document: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = document["learner"]["gradient_booster"]["model"]["trees"][0]
    return tree


def _params(document: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = document["learner"]["learner_model_param"]
    return params


def _typed_count(ubj: bytes, count: int) -> bytes:
    """The UBJSON model with its first typed array claiming ``count`` elements."""
    at = ubj.index(b"[$")
    header = ubj.index(b"#L", at) + 2
    return ubj[:header] + struct.pack(">q", count) + ubj[header + 8 :]


def _lightgbm_variant(text: str, pattern: str, replacement: str) -> bytes:
    changed, found = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    assert found, pattern
    return changed.encode()


def _skops_claiming_features(count: int) -> bytes:
    """A skops linear model whose n_features_in_ says ``count``."""
    import skops.io as sio
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(np.eye(3), [1.0, 2.0, 3.0])
    model.n_features_in_ = count
    data: bytes = sio.dumps(model)
    return data


#: Files that used to crash the process, hang, or take gigabytes: (id, suffix, build, what the refusal says).
#: ``build`` takes the fixtures' XGBoost JSON document, XGBoost UBJSON bytes and LightGBM text.
CHILD_CASES: list[tuple[str, str, Callable[[dict[str, Any], bytes, str], bytes], str]] = [
    (
        "skops member unpacking to 3 GiB",
        ".skops",
        lambda d, u, t: handmade_zip([("schema.json", zeros_deflated(BOMB_BYTES), BOMB_BYTES)]),
        "zip bomb",
    ),
    (
        "skops member declaring 1 KiB but unpacking to 3 GiB",
        ".skops",
        lambda d, u, t: handmade_zip([("schema.json", zeros_deflated(BOMB_BYTES), 1024)]),
        "does not unpack to the size it declares",
    ),
    (
        "skops zip of more members than a model needs",
        ".skops",
        lambda d, u, t: handmade_zip([(f"{i:x}", b"", 0) for i in range(MAX_MEMBERS + 1)], method=0),
        f"more than {MAX_MEMBERS} members",
    ),
    (
        "skops model claiming 2**31 features",
        ".skops",
        lambda d, u, t: _skops_claiming_features(2**31),
        "takes 2147483648 features",
    ),
    (
        "xgboost num_feature 10**12",
        ".xgb.json",
        lambda d, u, t: _xgboost_variant(d, lambda m: _params(m).update(num_feature=str(10**12))),
        "takes 1000000000000 features",
    ),
    (
        "xgboost num_feature 2**31-1",
        ".xgb.json",
        lambda d, u, t: _xgboost_variant(d, lambda m: _params(m).update(num_feature=str(2**31 - 1))),
        "takes 2147483647 features",
    ),
    (
        "xgboost tree of 10**12 nodes",
        ".xgb.json",
        lambda d, u, t: _xgboost_variant(
            d, lambda m: _first_tree(m)["tree_param"].update(num_nodes=str(10**12))
        ),
        "for its 1000000000000 entries",
    ),
    (
        "xgboost leaf vectors of 2**31-1 values",
        ".xgb.json",
        lambda d, u, t: _xgboost_variant(
            d, lambda m: _first_tree(m)["tree_param"].update(size_leaf_vector=str(2**31 - 1))
        ),
        "leaves of 2147483647 values",
    ),
    (
        "xgboost category 2**31-5",
        ".xgb.json",
        lambda d, u, t: _xgboost_variant(d, lambda m: _make_categorical(_first_tree(m), 2**31 - 5)),
        "bytes of bitsets",
    ),
    (
        "xgboost tree adding into output 7 of 3",
        ".xgb.json",
        lambda d, u, t: _xgboost_variant(
            d, lambda m: m["learner"]["gradient_booster"]["model"]["tree_info"].__setitem__(0, 7)
        ),
        "adds into output 7",
    ),
    (
        "xgboost split child 10**6",
        ".xgb.json",
        lambda d, u, t: _xgboost_variant(d, lambda m: _first_tree(m)["left_children"].__setitem__(0, 10**6)),
        "child is node 1000000",
    ),
    (
        "xgboost split on feature 4e9",
        ".xgb.json",
        lambda d, u, t: _xgboost_variant(
            d, lambda m: _first_tree(m)["split_indices"].__setitem__(0, 4 * 10**9)
        ),
        "on feature 4000000000",
    ),
    (
        "xgboost ubjson array claiming 2**40 elements",
        ".ubj",
        lambda d, u, t: _typed_count(u, 2**40),
        "larger than the rest of the file",
    ),
    (
        "xgboost ubjson array claiming 2**28 elements",
        ".ubj",
        lambda d, u, t: _typed_count(u, 2**28),
        "larger than the rest of the file",
    ),
    (
        "lightgbm 10**12 leaves",
        ".lgb",
        lambda d, u, t: _lightgbm_variant(t, r"^num_leaves=\d+", f"num_leaves={10**12}"),
        "for its 1000000000000 entries",
    ),
    (
        "lightgbm max_feature_idx 2**31-2",
        ".lgb",
        lambda d, u, t: _lightgbm_variant(t, r"^max_feature_idx=\d+", f"max_feature_idx={2**31 - 2}"),
        "takes 2147483647 features",
    ),
    (
        "lightgbm 2**31-1 classes",
        ".lgb",
        lambda d, u, t: _lightgbm_variant(t, r"^num_class=\d+", f"num_class={2**31 - 1}"),
        "2147483647 classes",
    ),
    (
        "lightgbm 2**31-1 trees per round",
        ".lgb",
        lambda d, u, t: _lightgbm_variant(
            t, r"^num_tree_per_iteration=\d+", f"num_tree_per_iteration={2**31 - 1}"
        ),
        "grows 2147483647 trees per round",
    ),
    (
        "lightgbm objective claiming 2**31-1 classes",
        ".lgb",
        lambda d, u, t: _lightgbm_variant(t, r"num_class:3", f"num_class:{2**31 - 1}"),
        "objective claims",
    ),
    (
        "lightgbm split child looping to the root",
        ".lgb",
        lambda d, u, t: _lightgbm_variant(t, r"^left_child=-?\d+", "left_child=0"),
        "child is node 0",
    ),
    (
        "lightgbm split on feature 2e9",
        ".lgb",
        lambda d, u, t: _lightgbm_variant(t, r"^split_feature=\d+", "split_feature=2000000000"),
        "on feature 2000000000",
    ),
    (
        "lightgbm 10**8 leaves",
        ".lgb",
        lambda d, u, t: _lightgbm_variant(t, r"^num_leaves=\d+", "num_leaves=100000000"),
        "for its 100000000 entries",
    ),
]


def _make_categorical(tree: dict[str, Any], category: int) -> None:
    """Turn the root into a categorical split listing ``category``."""
    tree["split_type"][0] = 1
    tree.update(categories=[category], categories_nodes=[0], categories_segments=[0], categories_sizes=[1])


_CHILD = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from flaskserve.errors import FlaskserveError
from flaskserve.models.loaders import default_loaders
from flaskserve.models.loading import load_registry
from flaskserve.settings import load_settings
import lightgbm, skops.io, sklearn.linear_model, xgboost  # what the loaders import, outside the timing

for case, path in json.loads(sys.argv[1]).items():
    started = time.perf_counter()
    try:
        load_registry(load_settings(None, model_path=path), default_loaders())
        outcome = {{"code": "loaded", "message": ""}}
    except FlaskserveError as exc:
        outcome = {{"code": exc.code, "message": exc.message}}
    except BaseException as exc:
        outcome = {{"code": "unexpected", "message": type(exc).__name__}}
    outcome.update(case=case, seconds=time.perf_counter() - started)
    outcome["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps(outcome), flush=True)
"""


@pytest.fixture(scope="module")
def child_outcomes(
    tmp_path_factory: pytest.TempPathFactory,
    xgboost_json: dict[str, Any],
    xgboost_ubj: bytes,
    lightgbm_text: str,
) -> Iterator[dict[str, dict[str, Any]]]:
    """Load every hostile file of :data:`CHILD_CASES` in one child capped at :data:`MEMORY_CAP`.

    A case the child never reported is one that killed it (its output says which).
    """
    folder = tmp_path_factory.mktemp("hostile")
    paths = {}
    for number, (case, suffix, build, _) in enumerate(CHILD_CASES):
        path = folder / str(number) / f"model{suffix}"
        path.parent.mkdir()
        path.write_bytes(build(xgboost_json, xgboost_ubj, lightgbm_text))
        paths[case] = str(path)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(cap=MEMORY_CAP), json.dumps(paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    outcomes = {}
    for line in done.stdout.splitlines():
        outcome = json.loads(line)
        outcomes[outcome["case"]] = outcome
    outcomes["_child"] = {"returncode": done.returncode, "stderr": done.stderr[-2000:]}
    yield outcomes
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(
    ("case", "says"), [pytest.param(case, says, id=case) for case, _, _, says in CHILD_CASES]
)
def test_a_hostile_file_is_refused_in_bounded_time_and_memory(
    child_outcomes: dict[str, dict[str, Any]], case: str, says: str
) -> None:
    outcome = child_outcomes.get(case)

    assert outcome is not None, f"the child died before reporting: {child_outcomes['_child']}"
    assert outcome["code"] == "model_load_failed", outcome
    assert says in outcome["message"]
    assert "Traceback" not in outcome["message"]
    assert "/" not in outcome["message"]
    assert outcome["seconds"] < TIME_BOUND_S
    # The child held the imports and at most one file at a time; nothing near the bombs' 3 GiB.
    assert outcome["peak_mib"] < 1024


def test_a_damaged_lightgbm_tree_index_is_never_read(tmp_path: Path, lightgbm_text: str) -> None:
    """``tree_sizes`` sending LightGBM 100 GB past the text: the index is dropped, the model loads."""
    path = tmp_path / "iris.lgb"
    path.write_bytes(_lightgbm_variant(lightgbm_text, r"^tree_sizes=.*$", f"tree_sizes={10**11} 5 5 5 5 5"))

    registry = load_file(path)

    assert registry.resolve("iris").signature.n_features == 4


# -- ONNX: weights stored in another file ------------------------------------------------------


def onnx_with_external_data(location: str, *, in_attribute: bool = False) -> bytes:
    """A graph adding a 4-vector whose values are said to lie at ``location``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.zeros(4, dtype=np.float32), "w")
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": "16"}.items():
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    initializers = [weights]
    if in_attribute:
        nodes.insert(0, helper.make_node("Constant", [], ["w"], value=weights))
        initializers = []
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    data: bytes = model.SerializeToString()
    assert onnx.load_model_from_string(data).graph.node
    return data


@pytest.mark.parametrize(
    ("location", "in_attribute"),
    [
        pytest.param("../../secret.bin", False, id="relative path climbing out"),
        pytest.param("{secret}", False, id="absolute path"),
        pytest.param("link.bin", False, id="symlink in the model folder pointing out"),
        pytest.param("weights.bin", False, id="side file inside the model folder"),
        pytest.param("../../secret.bin", True, id="tensor of a node attribute"),
    ],
)
def test_onnx_weights_in_another_file_are_refused(tmp_path: Path, location: str, in_attribute: bool) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    folder = tmp_path / "repo" / "adder" / "1"
    folder.mkdir(parents=True)
    (folder / "link.bin").symlink_to(secret)
    (folder / "weights.bin").write_bytes(secret.read_bytes())
    path = folder / "model.onnx"
    path.write_bytes(onnx_with_external_data(location.format(secret=secret), in_attribute=in_attribute))

    error, seconds = refused(lambda: load_file(path))

    assert error.code == "model_load_failed"
    assert "keeps its data in another file" in error.message
    assert "save_as_external_data=False" in error.message
    assert "secret" not in error.message
    assert "link" not in error.message
    assert_clean(error.message, tmp_path)
    assert seconds < TIME_BOUND_S


def test_an_onnx_input_wider_than_a_million_features_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    width = 2**31 - 1
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, width])],
    )
    path = tmp_path / "wide.onnx"
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    )

    error, seconds = refused(lambda: load_file(path))

    assert error.code == "model_load_failed"
    assert f"takes {width} features" in error.message
    assert seconds < TIME_BOUND_S


# -- code: model.py without trust --------------------------------------------------------------


def test_a_python_model_without_trust_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "repo" / "custom" / "1" / "model.py"
    path.parent.mkdir(parents=True)
    path.write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n\nclass Model:\n    pass\n")

    error, seconds = refused(lambda: load_file(tmp_path / "repo", allow_pickle=True), UntrustedModel)

    assert error.code == "untrusted_model"
    assert "--allow-code" in error.message
    assert file_sha256(path) in error.message
    assert_clean(error.message, tmp_path)
    assert not marker.exists()
    assert seconds < TIME_BOUND_S


# -- symlinks out of the repository ------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    [
        pytest.param("version", id="version folder linked outside"),
        pytest.param("file", id="model file linked outside"),
        pytest.param("model", id="model folder linked outside"),
    ],
)
def test_a_symlink_out_of_the_repository_is_refused(tmp_path: Path, linear_xy: Any, link: str) -> None:
    outside = testing.save_model(linear_xy, tmp_path / "outside" / "1" / "model.skops")
    repo = tmp_path / "repo"
    testing.save_model(linear_xy, repo / "linear" / "1" / "model.skops")
    if link == "version":
        (repo / "linear" / "2").symlink_to(outside.parent)
    elif link == "file":
        (repo / "linear" / "2").mkdir()
        (repo / "linear" / "2" / "model.skops").symlink_to(outside)
    else:
        (repo / "evil").symlink_to(outside.parent.parent)

    error, seconds = refused(lambda: load_file(repo))

    assert error.code == "model_load_failed"
    assert "resolves outside the model repository" in error.message
    assert_clean(error.message, tmp_path)
    assert seconds < TIME_BOUND_S


# -- bytes swapped after they were judged ------------------------------------------------------


class _SwapAfterReading(PickleLoader):
    """Writes other bytes over the file at the worst moment: after it was read and judged."""

    def __init__(self, replacement: bytes) -> None:
        self._replacement = replacement

    def load(self, file: ModelFile, *, display_name: str, trust: TrustPolicy) -> LoadedFile:
        file.path.write_bytes(self._replacement)
        return super().load(file, display_name=display_name, trust=trust)


class _Touch:
    """Unpickling this touches a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_pinned_digest_never_admits_bytes_swapped_in_while_loading(tmp_path: Path, linear_xy: Any) -> None:
    path = testing.save_model(linear_xy, tmp_path / "linear.pkl")
    pinned = file_sha256(path)
    marker = tmp_path / "ran"
    loaders = LoaderTable([_SwapAfterReading(pickle.dumps(_Touch(marker)))])

    registry = load_registry(load_settings(None, model_path=path, trusted_sha256=[pinned]), loaders)

    model = registry.resolve("linear")
    assert not marker.exists()
    assert model.sha256 == pinned
    assert (
        model.call("predict", np.array([[1.0, 2.0]])).tolist()
        == linear_xy.predict(np.array([[1.0, 2.0]])).tolist()
    )
    # The swapped file itself is what the pin refuses next time.
    again, _ = refused(lambda: load_file(path, trusted_sha256=[pinned]), UntrustedModel)
    assert again.code == "untrusted_model"
    assert not marker.exists()


# -- through the HTTP API: 400 with the code, the other models keep serving ---------------------


@pytest.fixture
def served_repo(tmp_path: Path, iris_classifier: Any) -> Path:
    repo = tmp_path / "repo"
    testing.save_model(iris_classifier, repo / "iris" / "1" / "model.skops")
    return repo


@pytest.fixture
def client(served_repo: Path) -> FlaskClient:
    return create_app(load_settings(None, model_path=served_repo, default_model="iris")).test_client()


def _place(repo: Path, kind: str, xgboost_json: dict[str, Any], lightgbm_text: str, tmp_path: Path) -> Path:
    """Put one hostile model in the repository as ``hostile/1/...``; return the marker code would touch."""
    folder = repo / "hostile" / "1"
    marker = tmp_path / "ran"
    if kind == "symlink":
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "model.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n")
        (repo / "hostile").mkdir()
        folder.symlink_to(outside)
        return marker
    folder.mkdir(parents=True)
    if kind == "skops":
        (folder / "model.skops").write_bytes(handmade_zip([("schema.json", zeros_deflated(256 << 20), 1024)]))
    elif kind == "onnx":
        (folder / "model.onnx").write_bytes(onnx_with_external_data("../../../../etc/passwd"))
    elif kind == "xgboost":
        looped = _xgboost_variant(xgboost_json, lambda m: _first_tree(m)["left_children"].__setitem__(0, 0))
        (folder / "model.xgb.json").write_bytes(looped)
    elif kind == "lightgbm":
        (folder / "model.lgb").write_bytes(
            _lightgbm_variant(lightgbm_text, r"^left_child=-?\d+", "left_child=0")
        )
    else:
        (folder / "model.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n")
    return marker


@pytest.mark.parametrize(
    ("kind", "code", "says"),
    [
        pytest.param(
            "skops", "model_load_failed", "does not unpack to the size it declares", id="skops bomb"
        ),
        pytest.param("onnx", "model_load_failed", "keeps its data in another file", id="onnx external data"),
        pytest.param("xgboost", "model_load_failed", "child is node 0", id="xgboost looping tree"),
        pytest.param("lightgbm", "model_load_failed", "child is node 0", id="lightgbm looping tree"),
        pytest.param("python", "untrusted_model", "--allow-code", id="python without trust"),
        pytest.param(
            "symlink", "model_load_failed", "outside the model repository", id="version folder symlink"
        ),
    ],
)
def test_loading_a_hostile_file_through_the_api_is_a_400_and_serving_goes_on(
    client: FlaskClient,
    served_repo: Path,
    tmp_path: Path,
    xgboost_json: dict[str, Any],
    lightgbm_text: str,
    kind: str,
    code: str,
    says: str,
) -> None:
    marker = _place(served_repo, kind, xgboost_json, lightgbm_text, tmp_path)
    started = time.perf_counter()

    response = client.post("/v2/repository/models/hostile/load")

    assert time.perf_counter() - started < TIME_BOUND_S
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == code
    assert says in body["error"]
    assert_clean(body["error"], tmp_path)
    assert not marker.exists()
    assert client.post("/v2/models/iris/infer", json=IRIS_ROW).status_code == 200
    assert client.post("/v2/models/hostile/infer", json=IRIS_ROW).status_code == 404
