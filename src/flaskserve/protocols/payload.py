"""Parse JSON request bodies quickly, with a bound on nesting depth.

orjson is several times faster than the standard library at both ends (see
docs/performance.md) and refuses NaN and Infinity, which JSON does not have.
Depth is checked on the raw bytes before parsing so a hostile body costs one
vectorised pass, not a recursive walk.

Answers hand numpy arrays to orjson as they are (``OPT_SERIALIZE_NUMPY``)
wherever its text is the one ``tolist()`` would give: a thousand predictions
then cost one C loop, not a thousand Python floats.
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
#: +1 for a byte that opens an array or object, -1 for one that closes it, 0 for any other byte.
_NESTING_STEP = np.zeros(256, dtype=np.int8)
_NESTING_STEP[list(_OPENERS)] = 1
_NESTING_STEP[list(_CLOSERS)] = -1
_NESTING_STEP.flags.writeable = False
#: Every byte that is not a bracket or a quote, deleted before the scan when no escape can hide a quote.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in (*_OPENERS, *_CLOSERS, _QUOTE))
#: Braces read as brackets: nesting depth does not care which kind opens a level.
_BRACES_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")
#: Array dtypes orjson writes exactly as ``tolist()`` would (float32 and float16 print shorter).
_NUMPY_JSON_KINDS = frozenset("biu")


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
    if nested_deeper_than(body, max_depth):
        raise LimitExceeded(f"the JSON document is nested more than {max_depth} levels deep")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"the request body is not valid JSON: {_reason(exc)}") from None


def encode_json(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


def json_values(values: npt.NDArray[Any]) -> Any:
    """``values`` ready for :func:`encode_json`: the array itself where orjson writes what ``tolist()`` gives.

    That is every bool, integer and float64 array (C-contiguous, as orjson needs);
    other dtypes (float32 would print shorter, objects not at all) become lists.
    """
    if values.ndim and (values.dtype.kind in _NUMPY_JSON_KINDS or values.dtype == np.float64):
        return np.ascontiguousarray(values)
    return values.tolist()


def nested_deeper_than(body: bytes, max_depth: int) -> bool:
    """Whether arrays and objects nest more than ``max_depth`` levels deep, strings aside.

    The common body is proven shallow in a few passes at memory speed: its
    brackets and quotes alone are kept (braces read as brackets); strings that
    hold no bracket are then adjacent quote pairs, dropped; and each
    ``replace(b"[]", b"")`` removes exactly the innermost level left, so the
    structure is gone after as many passes as the document is deep. A body
    with escapes, brackets in strings or unbalanced brackets, or one that is
    still there after ``max_depth`` passes, is measured exactly by
    :func:`json_depth`.
    """
    if _BACKSLASH in body:
        return json_depth(body) > max_depth
    structure = body.translate(_BRACES_AS_BRACKETS, _NOT_STRUCTURE)
    if len(structure) <= max_depth:
        return False
    if _QUOTE in structure:
        structure = structure.replace(b'""', b"")
        if _QUOTE in structure:
            return json_depth(body) > max_depth
    for _ in range(max_depth):
        peeled = structure.replace(b"[]", b"")
        if not peeled:
            return False
        if len(peeled) == len(structure):
            break
        structure = peeled
    return json_depth(body) > max_depth


def json_depth(body: bytes) -> int:
    """Deepest nesting of arrays and objects, ignoring brackets inside strings.

    Every step is a vectorised pass over the bytes, with no Python loop and no
    array per quote, so a body of quotes or backslashes costs about what any
    other body of its size costs. Without a backslash, only brackets and quotes
    can matter, so the bytes are first cut down to those (``bytes.translate``,
    at memory speed): a body of numbers shrinks several times before numpy sees it.
    """
    if _BACKSLASH not in body:
        body = body.translate(None, _NOT_STRUCTURE)
    data = np.frombuffer(body, dtype=np.uint8)
    step = _NESTING_STEP.take(data)
    quote = data == _QUOTE
    if not quote.any():
        return _deepest(step)
    backslash = data == _BACKSLASH
    if backslash.any():
        quote[1:] &= ~_after_odd_backslashes(backslash)
    # A byte is inside a string when an odd number of unescaped quotes precede it; an
    # unterminated string runs to the end, and the parser rejects it anyway. The running
    # count may wrap at 256: only its parity is read.
    inside_string = (np.cumsum(quote, dtype=np.uint8) & 1).view(np.bool_)
    step[inside_string] = 0
    return _deepest(step)


def _deepest(step: npt.NDArray[np.int8]) -> int:
    return int(np.cumsum(step, dtype=np.int32).max(initial=0))


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
