"""Fuzz targets for the pure decoders: bytes in, and nothing but the error tree out.

Each target takes one input of bytes, hands it to a decoder, and returns
quietly when the decoder either succeeds or refuses the input with a
:class:`~flaskserve.errors.FlaskserveError`. Anything else escaping — an
``IndexError``, a numpy ``ValueError``, a ``RecursionError``, a warning (they
are errors here, as in the test suite) — is a defect, and so is a decoded
result that breaks an invariant (:class:`InvariantBroken`).

Every target reads its input as a first line of words that set the case up
and a body after it, so that the seed corpus stays readable and a mutation of
the body stays a mutation of the body. The protocol targets' first word picks
the model (a second word is the ``method`` query parameter for ``simple``, the
``Inference-Header-Content-Length`` value for ``v2_binary``)::

    iris
    {"instances": [[5.1, 3.5, 1.4, 0.2]]}

A first line naming no model still picks one, by a hash of the line, so that
every mutated input exercises a decoder. The models are small and real,
trained on data that ships with scikit-learn (and the chat example's intents
for the text model), and their signatures are read off them the way loading
reads them.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from flaskserve import testing
from flaskserve.errors import FlaskserveError, LimitExceeded
from flaskserve.models.served import ServedModel
from flaskserve.models.signature import infer_signature
from flaskserve.protocols import binary, datatypes, mlflow, payload, simple, v1
from flaskserve.protocols.v2.protocol import PROTOCOL as V2
from flaskserve.protocols.wire import Decoded, WireRequest
from flaskserve.settings import ModelSettings, RequestLimits

#: Small limits, so that the fuzzer reaches every limit check with short inputs.
LIMITS = RequestLimits(
    max_json_depth=16,
    max_rows=64,
    max_tensor_elements=4096,
    max_inputs=8,
    max_string_bytes=256,
)
INTENTS_CSV = Path(__file__).resolve().parents[3] / "examples" / "intents" / "intents.csv"
JSON = "application/json"

Target = Callable[[bytes], None]


class InvariantBroken(AssertionError):
    """A decoder accepted an input and returned something its contract rules out."""


# -- the models ----------------------------------------------------------------------


@cache
def models() -> dict[str, ServedModel]:
    """The served models the protocol targets decode against, by the name a first line gives."""
    from sklearn.datasets import load_diabetes
    from sklearn.tree import DecisionTreeRegressor

    features, target = load_diabetes(return_X_y=True)
    return {
        # Named features x, y; a regressor (predict only).
        "xy": _served("xy", testing.train_linear_xy()),
        # Named features, string classes, probabilities.
        "iris": _served("iris", testing.train_iris_classifier()),
        # Fit on a bare array (names x0..x9 made up) and able to take missing values.
        "diabetes": _served(
            "diabetes",
            DecisionTreeRegressor(max_depth=4, random_state=0).fit(features, target),
            ModelSettings(allow_missing=True),
        ),
        # One text per row.
        "intents": _served("intents", _train_intents()),
    }


def _train_intents() -> Any:
    import csv

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    with INTENTS_CSV.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    texts, intents = [row["text"] for row in rows], [row["intent"] for row in rows]
    return make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000)).fit(texts, intents)


def _served(name: str, estimator: Any, settings: ModelSettings | None = None) -> ServedModel:
    settings = settings or ModelSettings()
    signature = infer_signature(
        estimator,
        feature_names=settings.features,
        allow_missing=settings.allow_missing,
        input_kind=settings.input,
        max_text_bytes=LIMITS.max_string_bytes,
    )
    return ServedModel(
        name, "1", estimator, signature, "sklearn", "0" * 64, Path(f"{name}.skops"), settings=settings
    )


def _pick(data: bytes) -> tuple[ServedModel, list[str], bytes]:
    """The model the first line names (or hashes to), the rest of that line's words, and the body."""
    head, newline, body = data.partition(b"\n")
    if not newline:
        head, body = b"", data
    words = head.decode("latin-1").split()
    table = models()
    model = table.get(words[0]) if words else None
    if model is None:
        names = sorted(table)
        model = table[names[zlib.crc32(head) % len(names)]]
    return model, words[1:], body


# -- invariants ----------------------------------------------------------------------


def check_matrix(matrix: Any, model: ServedModel) -> None:
    """A decoded model input: a finite float table as wide as the signature, or one ``str`` per row."""
    signature = model.signature
    if not isinstance(matrix, np.ndarray):
        raise InvariantBroken(f"the matrix is a {type(matrix).__name__}, not an array")
    if signature.is_text:
        if matrix.ndim != 1 or matrix.dtype != object or matrix.shape[0] < 1:
            raise InvariantBroken(f"a text input of shape {matrix.shape} and dtype {matrix.dtype}")
        for text in matrix.tolist():
            if type(text) is not str:
                raise InvariantBroken(f"a text input holds a {type(text).__name__}")
            if len(text.encode("utf-8", "surrogatepass")) > signature.max_text_bytes:
                raise InvariantBroken("a text input holds a text longer than the limit")
        return
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] != signature.n_features:
        raise InvariantBroken(f"a table of shape {matrix.shape} for {signature.n_features} features")
    if matrix.dtype != signature.dtype:
        raise InvariantBroken(f"a table of dtype {matrix.dtype}, not {signature.dtype}")
    if np.isinf(matrix).any() or (not signature.allow_missing and np.isnan(matrix).any()):
        raise InvariantBroken("a table holding a value that is not finite")


def check_decoded(decoded: Decoded[Any], model: ServedModel, *, some_method: bool = True) -> None:
    """The matrix, and the methods to run: strings, and at least one unless ``some_method`` is False."""
    check_matrix(decoded.matrix, model)
    if (some_method and not decoded.methods) or not all(isinstance(m, str) for m in decoded.methods):
        raise InvariantBroken(f"methods {decoded.methods!r}")


def _decode(
    protocol: Any, request: WireRequest, model: ServedModel, *, some_method: bool = True
) -> Decoded[Any] | None:
    try:
        decoded: Decoded[Any] = protocol.decode(request, model, LIMITS)
    except FlaskserveError:
        return None
    check_decoded(decoded, model, some_method=some_method)
    return decoded


# -- the targets ---------------------------------------------------------------------


def fuzz_simple(data: bytes) -> None:
    """The simple JSON protocol; a second word on the first line is the ``method`` query parameter."""
    model, words, body = _pick(data)
    query = {simple.METHOD_KEY: words[0]} if words else {}
    _decode(simple.PROTOCOL, WireRequest(body, JSON, query=query), model)


def fuzz_v1(data: bytes) -> None:
    model, _, body = _pick(data)
    _decode(v1.PROTOCOL, WireRequest(body, JSON), model)


def fuzz_v2_json(data: bytes) -> None:
    """An Open Inference V2 request that is all JSON (no Inference-Header-Content-Length)."""
    model, _, body = _pick(data)
    decoded = _decode(V2, WireRequest(body, JSON), model, some_method=False)
    if decoded is not None:
        _check_v2_methods(decoded, model)


def fuzz_v2_binary(data: bytes) -> None:
    """A V2 request with binary tensors: the first line's second word is the header length."""
    model, words, body = _pick(data)
    header_length = words[0] if words else str(len(body))
    request = WireRequest(body, "application/octet-stream", headers={binary.HEADER_LENGTH: header_length})
    decoded = _decode(V2, request, model, some_method=False)
    if decoded is not None:
        _check_v2_methods(decoded, model)


def _check_v2_methods(decoded: Decoded[Any], model: ServedModel) -> None:
    # V2 runs no method for '"outputs": []', and answers with no outputs: the request asked for none.
    unknown = set(decoded.methods) - set(model.signature.methods)
    if unknown:
        raise InvariantBroken(f"V2 asks the model for methods it lacks: {sorted(unknown)}")


def fuzz_binary(data: bytes) -> None:
    """The binary extension's own functions, within the preconditions the V2 decoder ensures.

    ``split LENGTH`` on the first line splits the body at the header length
    ``LENGTH``; ``tensor DATATYPE MAX_STRING_BYTES DIM...`` decodes the body as
    one raw tensor.
    """
    head, _, body = data.partition(b"\n")
    words = head.decode("latin-1").split()
    if words[:1] == ["split"]:
        _split_body(" ".join(words[1:]), body)
    elif words[:1] == ["tensor"] and len(words) >= 3:
        _decode_tensor(words[1], words[2], words[3:], body)


def _split_body(header_length: str, body: bytes) -> None:
    try:
        header, rest = binary.split_body(body, header_length)
    except FlaskserveError:
        return
    if header + bytes(rest) != body or len(header) != int(header_length):
        raise InvariantBroken(f"split_body cut {len(body)} bytes at {header_length!r} wrongly")


def _decode_tensor(datatype: str, limit: str, dims: list[str], chunk: bytes) -> None:
    # The V2 decoder passes only known datatypes and non-negative shapes of a bounded element count.
    if not datatypes.is_known(datatype) or not all(_count(word) for word in (limit, *dims)):
        return
    shape = [int(word) for word in dims]
    if len(shape) > 8 or math.prod(shape) > LIMITS.max_tensor_elements:
        return
    max_string_bytes = int(limit)
    try:
        array = binary.decode_tensor(
            memoryview(chunk), datatype, shape, name="input", max_string_bytes=max_string_bytes
        )
    except FlaskserveError:
        return
    if array.shape != tuple(shape) or array.dtype != datatypes.value_dtype(datatype):
        raise InvariantBroken(f"a {datatype} tensor of shape {array.shape} and dtype {array.dtype}")
    if datatype == datatypes.BYTES:
        for element in array.reshape(-1).tolist():
            if type(element) is not bytes or len(element) > max_string_bytes:
                raise InvariantBroken("a BYTES element that is not bytes, or is over the limit")
        if binary.encode_tensor(array, datatype) != chunk:
            raise InvariantBroken("a BYTES tensor does not encode back to the bytes it came from")


def fuzz_mlflow_json(data: bytes) -> None:
    model, _, body = _pick(data)
    _decode(mlflow.PROTOCOL, WireRequest(body, mlflow.JSON), model)


def fuzz_mlflow_csv(data: bytes) -> None:
    model, _, body = _pick(data)
    decoded = _decode(mlflow.PROTOCOL, WireRequest(body, mlflow.CSV, {"charset": "utf-8"}), model)
    if decoded is not None and len(decoded.matrix) > LIMITS.max_rows:
        raise InvariantBroken(f"a CSV body decoded to {len(decoded.matrix)} rows")


def fuzz_json_depth(data: bytes) -> None:
    """The depth check never lets a deeper document through, and measures valid JSON exactly.

    The first line is the depth limit.
    """
    head, _, body = data.partition(b"\n")
    text = head.decode("latin-1").strip()
    if not _count(text) or len(text) > 3:
        return
    max_depth = int(text)
    measured = payload.json_depth(body)
    try:
        document = payload.decode_json(body, max_depth=max_depth)
    except LimitExceeded:
        if measured <= max_depth:
            raise InvariantBroken(f"refused as deeper than {max_depth}, but measured {measured}") from None
        return
    except FlaskserveError:
        return
    depth = nesting(document)
    if depth > max_depth:
        raise InvariantBroken(f"a document {depth} levels deep passed a limit of {max_depth}")
    if measured != depth:
        raise InvariantBroken(f"json_depth says {measured}; the document is {depth} levels deep")


def _count(word: str) -> bool:
    return word.isascii() and word.isdigit()


def nesting(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value."""
    if isinstance(value, list):
        return 1 + max(map(nesting, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    return 0


TARGETS: dict[str, Target] = {
    "simple": fuzz_simple,
    "v1": fuzz_v1,
    "v2_json": fuzz_v2_json,
    "v2_binary": fuzz_v2_binary,
    "binary": fuzz_binary,
    "mlflow_json": fuzz_mlflow_json,
    "mlflow_csv": fuzz_mlflow_csv,
    "json_depth": fuzz_json_depth,
}


def seed_inputs() -> dict[str, list[bytes]]:
    """A few valid inputs per target, from which the seed corpus under ``corpus/`` is written."""
    iris_row = [5.1, 3.5, 1.4, 0.2]
    iris_named = dict(zip(testing.IRIS_FEATURES, iris_row, strict=True))

    def line(model: str, document: Any, *words: str) -> bytes:
        body = document if isinstance(document, bytes) else orjson.dumps(document)
        return " ".join((model, *words)).encode() + b"\n" + body

    def v2_tensor(data: Any, shape: list[int], datatype: str = "FP64", **extra: Any) -> dict[str, Any]:
        return {"name": "input", "shape": shape, "datatype": datatype, "data": data, **extra}

    def v2_binary(model: str, header: dict[str, Any], tensors: bytes) -> bytes:
        head = orjson.dumps(header)
        return line(model, head + tensors, str(len(head)))

    fp32 = np.array([iris_row], dtype="<f4").tobytes()
    texts = b"".join(len(t).to_bytes(4, "little") + t for t in (b"hello", b"where is my parcel"))
    return {
        "simple": [
            line("xy", {"x": 1, "y": 2}),
            line("xy", {"instances": [[1, 2], [3, 4]]}),
            line("iris", {"instances": [iris_named], "method": "predict_proba"}),
            line("iris", [iris_row], "predict_proba"),
            line("diabetes", {"instances": [[0.1, None, 0, 0, 0, 0, 0, 0, 0, 0]]}),
            line("intents", {"text": "where is my parcel"}),
            line("intents", {"instances": ["hi", ["bye"]]}),
        ],
        "v1": [
            line("iris", {"instances": [iris_row]}),
            line("iris", {"instances": [iris_named], "signature_name": "predict_proba"}),
            line("xy", {"inputs": {"x": [1, 2], "y": [3, 4]}}),
            line("xy", {"inputs": [[1, 2]], "signature_name": "serving_default"}),
            line("intents", {"instances": [{"b64": "aGVsbG8="}, "hi"]}),
        ],
        "v2_json": [
            line("iris", {"inputs": [v2_tensor([iris_row], [1, 4])]}),
            line(
                "iris",
                {
                    "id": "7",
                    "inputs": [v2_tensor(iris_row, [1, 4], "FP32")],
                    "outputs": [{"name": "predict", "parameters": {"classification": 2}}],
                },
            ),
            line(
                "xy",
                {
                    "inputs": [v2_tensor([1], [1], name="x"), v2_tensor([[2]], [1, 1], "INT32", name="y")],
                    "parameters": {"content_type": "pd", "binary_data_output": True},
                },
            ),
            line("intents", {"inputs": [v2_tensor(["hello"], [1], "BYTES")]}),
        ],
        "v2_binary": [
            v2_binary(
                "iris",
                {"inputs": [v2_tensor(None, [1, 4], "FP32", parameters={"binary_data_size": len(fp32)})]},
                fp32,
            ),
            v2_binary(
                "intents",
                {
                    "inputs": [v2_tensor(None, [2], "BYTES", parameters={"binary_data_size": len(texts)})],
                    "parameters": {"content_type": "str"},
                },
                texts,
            ),
            line("iris", np.array([iris_row], dtype="<f8").tobytes(), "0"),
            line("xy", {"inputs": [v2_tensor([1, 2], [1, 2])]}),
        ],
        "binary": [
            b"split 13\n" + orjson.dumps({"inputs": []}) + fp32,
            b"split 0\n" + fp32,
            b"tensor FP32 0 1 4\n" + fp32,
            b"tensor BOOL 0 2\n\x00\x01",
            b"tensor BF16 0 2\n\x80\x3f\x00\x40",
            b"tensor BYTES 32 2 1\n" + texts,
        ],
        "mlflow_json": [
            line("iris", {"dataframe_split": {"columns": list(testing.IRIS_FEATURES), "data": [iris_row]}}),
            line("iris", {"dataframe_records": [iris_named], "params": {"method": "predict_proba"}}),
            line("xy", {"dataframe_split": {"columns": ["y", "x"], "data": [[2, 1]], "index": [0]}}),
            line("xy", {"instances": [[1, 2]]}),
            line("diabetes", {"inputs": [[0.1] * 10]}),
            line("intents", {"inputs": {"text": ["hello"]}}),
        ],
        "mlflow_csv": [
            line("iris", b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n"),
            line("xy", b"y,x\n2,1\n4,3\n"),
            line("diabetes", b"a,b,c,d,e,f,g,h,i,j\n0.1,,0,0,0,0,0,0,0,0\n"),
            line("intents", b'text\n"where is my parcel, please"\nhello\n'),
        ],
        "json_depth": [
            b'4\n{"instances": [[1, 2], [3, 4]]}',
            b'2\n["[[[", {"a": "\\"]]"}]',
            b"1\n[[[[[[]]]]]]",
            b"3\n[[[[",
        ],
    }
