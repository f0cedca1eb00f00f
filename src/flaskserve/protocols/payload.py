"""Parse JSON request bodies quickly, with a bound on nesting depth.

orjson is several times faster than the standard library at both ends (see
docs/performance.md) and refuses NaN and Infinity, which JSON does not have.
Depth is checked on the raw bytes before parsing so a hostile body costs one
vectorised pass, not a recursive walk.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from flaskserve.errors import LimitExceeded, MalformedRequest, UnsupportedMediaType

_QUOTE, _BACKSLASH = 0x22, 0x5C
_OPENERS = (0x5B, 0x7B)  # [ {
_CLOSERS = (0x5D, 0x7D)  # ] }


def is_json_mimetype(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def decode_json_body(body: bytes, mimetype: str, *, max_depth: int) -> Any:
    """A body that must be JSON: 415 unless declared as JSON (or not declared at all), then parsed."""
    if mimetype and not is_json_mimetype(mimetype):
        raise UnsupportedMediaType(f"expected 'Content-Type: application/json'; got '{mimetype[:60]}'")
    return decode_json(body, max_depth=max_depth)


def decode_json(body: bytes, *, max_depth: int) -> Any:
    if not body:
        raise MalformedRequest("the request body is empty; send a JSON document")
    if body.count(b"[") + body.count(b"{") > max_depth and json_depth(body) > max_depth:
        raise LimitExceeded(f"the JSON document is nested more than {max_depth} levels deep")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"the request body is not valid JSON: {_reason(exc)}") from None


def encode_json(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


def json_depth(body: bytes) -> int:
    """Deepest nesting of arrays and objects, ignoring brackets inside strings.

    Every step is a vectorised pass over the bytes, with no Python loop and no
    array per quote, so a body of quotes or backslashes costs about what any
    other body of its size costs.
    """
    data = np.frombuffer(body, dtype=np.uint8)
    quote = data == _QUOTE
    backslash = data == _BACKSLASH
    if backslash.any():
        quote[1:] &= ~_after_odd_backslashes(backslash)
    # A byte is inside a string when an odd number of unescaped quotes precede it; an
    # unterminated string runs to the end, and the parser rejects it anyway.
    inside_string = np.logical_xor.accumulate(quote)
    opener = np.isin(data, _OPENERS) & ~inside_string
    closer = np.isin(data, _CLOSERS) & ~inside_string
    depth = np.cumsum(opener.view(np.int8) - closer.view(np.int8), dtype=np.int32)
    return int(depth.max(initial=0))


def _after_odd_backslashes(backslash: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """For each byte but the last: whether it ends a run of backslashes of odd length.

    The byte after such a run is escaped. Computed from the last byte that is not
    a backslash at or before each position, so escapes cost one pass like the rest.
    """
    index_type = np.int32 if backslash.size < 2**31 else np.int64
    positions: npt.NDArray[np.signedinteger[Any]] = np.arange(backslash.size, dtype=index_type)
    last_other: npt.NDArray[np.signedinteger[Any]] = np.maximum.accumulate(np.where(backslash, -1, positions))
    odd: npt.NDArray[np.bool_] = ((positions - last_other) & 1).astype(bool)[:-1]
    return odd


def _reason(exc: orjson.JSONDecodeError) -> str:
    message = str(exc.msg) if hasattr(exc, "msg") else str(exc)
    return message.split(":")[0].strip().rstrip(".") or "parse error"
