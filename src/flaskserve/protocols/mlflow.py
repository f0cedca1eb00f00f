"""The MLflow scoring server's ``POST /invocations``, so its clients need no change.

Accepted bodies (``Content-Type: application/json``), exactly one key of::

    {"dataframe_split": {"columns": [...], "data": [[...], ...], "index": [...]}}
    {"dataframe_records": [{"col": value, ...}, ...]}
    {"instances": [...]}            rows, as in TensorFlow Serving / KServe V1
    {"inputs": {...} or [...]}      columns by name, or rows

with an optional ``"params"`` object (only ``{"method": "predict_proba"}`` is
understood; anything else is refused rather than silently ignored). A
``text/csv`` body is a header line of feature names followed by rows; it is
read with the standard ``csv`` module, so no DataFrame is built per request.
Any other media type, or a charset other than UTF-8, is a 415. The answer is
always ``{"predictions": [...]}``.

With several models, a request picks its model with the ``X-Model-Name`` header
(and optionally a version with ``X-Model-Version``) — the same headers every
answer carries; a header rather than a path, so that an MLflow client only
needs an extra header, not a new URL.

Pure: bytes in, matrix out, and back; no Flask. :data:`PROTOCOL` is what the
app's protocol table holds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from flaskserve.access import MODEL_NAME_HEADER, MODEL_VERSION_HEADER, PREDICT_FROM_HEADER
from flaskserve.errors import LimitExceeded, MalformedRequest, ShapeMismatch, UnsupportedMediaType, clip
from flaskserve.models.served import ServedModel
from flaskserve.models.signature import Signature
from flaskserve.protocols import v1
from flaskserve.protocols.openapi import Operation, Parameter
from flaskserve.protocols.payload import decode_json, encode_json, json_values
from flaskserve.protocols.schema import parse
from flaskserve.protocols.wire import Decoded, PredictRoute, WireRequest, WireResponse
from flaskserve.settings import RequestLimits

JSON = "application/json"
CSV = "text/csv"
FORMATS: tuple[str, ...] = ("dataframe_split", "dataframe_records", "instances", "inputs")
PARAMS = "params"


class DataframeSplit(BaseModel):
    """pandas' ``to_dict(orient="split")``: column names and row-major data."""

    model_config = ConfigDict(extra="forbid")

    columns: list[StrictStr] | None = None
    data: Any = Field(json_schema_extra={"type": "array"})
    index: list[Any] | None = None


class InvocationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: StrictStr | None = Field(default=None, description="The model method, e.g. predict_proba.")


class InvocationRequest(BaseModel):
    """``POST /invocations`` with a JSON body: exactly one of the four input formats."""

    model_config = ConfigDict(extra="forbid")

    dataframe_split: DataframeSplit | None = None
    dataframe_records: Any = Field(
        default=None, json_schema_extra={"type": "array", "items": {"type": "object"}}
    )
    instances: Any = Field(default=None, json_schema_extra={"type": "array"})
    inputs: Any = Field(default=None, json_schema_extra={"type": ["object", "array"]})
    params: InvocationParams | None = None


class InvocationAnswer(BaseModel):
    predictions: list[Any]


@dataclass(frozen=True)
class Invocation:
    matrix: npt.NDArray[Any]
    method: str


def check_media_type(mimetype: str, charset: str | None) -> str:
    """The body's format (JSON or CSV), or a 415 that says what is accepted."""
    if mimetype not in (JSON, CSV):
        shown = f"'{clip(mimetype, 60)}'" if mimetype else "no Content-Type"
        raise UnsupportedMediaType(f"/invocations accepts 'Content-Type: {JSON}' or '{CSV}'; got {shown}")
    if charset is not None and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"only charset=utf-8 is accepted; got charset={clip(charset, 30)}")
    return mimetype


def decode_request(
    body: bytes, mimetype: str, signature: Signature, limits: RequestLimits, *, default_method: str
) -> Invocation:
    if mimetype == CSV:
        return Invocation(csv_matrix(body, signature, limits), default_method)
    payload = decode_json(body, max_depth=limits.max_json_depth)
    if not isinstance(payload, dict):
        raise MalformedRequest(f"the body must be a JSON object with one of the keys {', '.join(FORMATS)}")
    given = [key for key in FORMATS if key in payload]
    unknown = [str(key) for key in payload if key not in FORMATS and key != PARAMS]
    if unknown or len(given) != 1:
        problem = (
            f"unexpected key {', '.join(repr(clip(k)) for k in unknown[:5])}"
            if unknown
            else ("no input key" if not given else f"several input keys ({', '.join(given)})")
        )
        raise MalformedRequest(
            f"{problem}: send exactly one of {', '.join(FORMATS)}, and optionally '{PARAMS}'"
        )
    request = parse(InvocationRequest, payload, what="the invocation request")
    method = (request.params.method if request.params else None) or default_method
    return Invocation(_matrix(request, given[0], signature), method)


def encode_response(values: npt.NDArray[Any]) -> dict[str, Any]:
    return {"predictions": json_values(values)}


def _matrix(request: InvocationRequest, key: str, signature: Signature) -> npt.NDArray[Any]:
    if getattr(request, key) is None:
        raise MalformedRequest(f"'{key}' is null; send the rows or columns to score")
    if key == "dataframe_split" and request.dataframe_split is not None:
        return _split_matrix(request.dataframe_split, signature)
    if key == "dataframe_records":
        records = request.dataframe_records
        if not isinstance(records, list):
            raise ShapeMismatch("'dataframe_records' must be a list of objects keyed by column name")
        return signature.matrix_from_records(records)
    if key == "instances":
        return v1.rows_matrix(request.instances, signature, key=key)
    return v1.columns_matrix(request.inputs, signature, key=key)


def _split_matrix(split: DataframeSplit, signature: Signature) -> npt.NDArray[Any]:
    rows = split.data
    if not isinstance(rows, list) or not set(map(type, rows)) <= {list}:
        raise ShapeMismatch("'dataframe_split.data' must be a list of rows, each a list of values")
    if split.index is not None and len(split.index) != len(rows):
        raise ShapeMismatch(
            f"'dataframe_split.index' has {len(split.index)} entries but 'data' has {len(rows)} rows"
        )
    if split.columns is None:
        return signature.matrix_from_rows(rows)
    return _reorder(split.columns, rows, signature, what="'dataframe_split.columns'")


def csv_matrix(body: bytes, signature: Signature, limits: RequestLimits) -> npt.NDArray[Any]:
    """A CSV table with a header line, read with the standard library; empty cells are missing values."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MalformedRequest("the CSV body is not valid UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise MalformedRequest("the CSV body is empty; send a header line and at least one row")
        rows: list[list[Any]] = []
        for line in reader:
            if not line:
                continue
            if len(rows) == limits.max_rows:
                raise LimitExceeded(f"the CSV body has more than {limits.max_rows} rows")
            # A text model's cells are its texts, even those that read as numbers.
            rows.append(line if signature.is_text else [_cell(cell) for cell in line])
    except csv.Error as exc:
        raise MalformedRequest(f"the CSV body cannot be read: {exc}") from None
    header = [name.strip() for name in header]
    if not signature.names_given and set(header) != set(signature.feature_names):
        # A model fit on a bare array has made-up names; accept any header of the right width.
        header = list(signature.feature_names) if len(header) == signature.n_features else header
    return _reorder(header, rows, signature, what="the CSV header")


def _reorder(columns: list[str], rows: list[Any], signature: Signature, *, what: str) -> npt.NDArray[Any]:
    """Rows whose columns are named by ``columns``, as a matrix in signature order."""
    # Positions by name, built once: a wide header costs one pass, not one pass per column.
    positions_by_name: dict[str, int] = {}
    for position, name in enumerate(columns):
        if name in positions_by_name:
            raise MalformedRequest(f"{what} names column '{clip(name)}' twice")
        positions_by_name[name] = position
    if not set(map(len, rows)) <= {len(columns)}:
        index, row = next((i, row) for i, row in enumerate(rows) if len(row) != len(columns))
        raise ShapeMismatch(f"row {index} has {len(row)} values but {what} names {len(columns)} columns")
    if columns == list(signature.feature_names):
        return signature.matrix_from_rows(rows)
    if set(columns) != set(signature.feature_names):
        # The signature names the missing or unknown column in its message.
        signature.matrix_from_records([dict.fromkeys(columns, 0)])
    positions = [positions_by_name[name] for name in signature.feature_names]
    return signature.matrix_from_rows([[row[i] for i in positions] for row in rows])


def _cell(cell: str) -> Any:
    """A CSV cell as a number when it is one; empty is missing (None); anything else stays text."""
    text = cell.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return cell


_INVOCATIONS = Operation(
    "MLflow scoring: dataframe_split, dataframe_records, instances, inputs, or CSV",
    "mlflow",
    request={
        JSON: InvocationRequest,
        CSV: {"type": "string", "description": "A header line of feature names, then rows."},
    },
    response={"application/json": InvocationAnswer},
    errors=(404, 413, 415, 500, 503),
    parameters=(
        Parameter(
            MODEL_NAME_HEADER,
            "The model to score with when several are served (default: the default model).",
            location="header",
            lists_models=True,
        ),
        Parameter(MODEL_VERSION_HEADER, "The model version (default: the latest).", location="header"),
    ),
    description=(
        "A drop-in for `mlflow models serve`. With several models, name one with the "
        f"{MODEL_NAME_HEADER} header (and optionally {MODEL_VERSION_HEADER})."
    ),
)


class MlflowProtocol:
    """``POST /invocations``, the model named by header."""

    name = "mlflow"
    answer_headers: tuple[str, ...] = ()
    routes = (PredictRoute("invocations", "/invocations", PREDICT_FROM_HEADER, _INVOCATIONS),)

    def decode(self, request: WireRequest, model: ServedModel, limits: RequestLimits) -> Decoded[Invocation]:
        mimetype = check_media_type(request.mimetype, request.mimetype_params.get("charset"))
        decoded = decode_request(
            request.body, mimetype, model.signature, limits, default_method=model.default_method
        )
        return Decoded((decoded.method,), decoded.matrix, decoded)

    def encode(
        self, decoded: Decoded[Invocation], results: Mapping[str, npt.NDArray[Any]], model: ServedModel
    ) -> WireResponse:
        return WireResponse(encode_json(encode_response(results[decoded.state.method])))


PROTOCOL = MlflowProtocol()
