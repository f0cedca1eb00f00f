"""The binary tensor data extension: raw tensors after the JSON header, both ways.

A request body is ``JSON header ‖ tensor bytes ‖ tensor bytes …`` and the
header's length is in ``Inference-Header-Content-Length``. Fixed-size tensors
are little-endian, row-major and unpadded; a BYTES tensor is a run of elements,
each a 4-byte little-endian length followed by that many bytes.

Every size is checked against what the header declared before anything is
allocated, so a lying header costs nothing but a 400. Pure functions: no Flask.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from flaskserve.errors import InvalidValue, MalformedRequest, ShapeMismatch, clip
from flaskserve.protocols import datatypes

HEADER_LENGTH = "Inference-Header-Content-Length"
_LENGTH = struct.Struct("<I")


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary rest of a request body.

    Without the header field the whole body is JSON and the rest is empty.
    """
    if header_length is None:
        return body, memoryview(b"")
    text = header_length.strip()
    if not text.isascii() or not text.isdigit():
        raise MalformedRequest(f"{HEADER_LENGTH} must be a non-negative integer; got '{clip(header_length)}'")
    length = int(text)
    if length > len(body):
        raise MalformedRequest(f"{HEADER_LENGTH} is {length} but the body has only {len(body)} bytes")
    view = memoryview(body)
    return body[:length], view[length:]


def slice_tensors(rest: memoryview, sizes: Sequence[int]) -> list[memoryview]:
    """Cut the binary rest into one chunk per declared ``binary_data_size``; they must add up exactly."""
    total = sum(sizes)
    if total != len(rest):
        raise MalformedRequest(
            f"the inputs declare {total} bytes of binary data (binary_data_size) "
            f"but the body carries {len(rest)} after the JSON header"
        )
    chunks = []
    offset = 0
    for size in sizes:
        chunks.append(rest[offset : offset + size])
        offset += size
    return chunks


def decode_tensor(
    chunk: memoryview | bytes,
    datatype: str,
    shape: Sequence[int],
    *,
    name: str,
    max_string_bytes: int,
) -> npt.NDArray[Any]:
    """A raw chunk as an array of ``shape``; its size must be exactly what the shape needs."""
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if datatype == datatypes.BYTES:
        elements = decode_bytes_elements(chunk, count, name=name, max_string_bytes=max_string_bytes)
        array = np.empty(count, dtype=object)
        array[:] = elements
        return array.reshape(shape)
    size = datatypes.element_size(datatype)
    assert size is not None
    if len(chunk) != count * size:
        raise ShapeMismatch(
            f"input '{clip(name)}' has shape {list(shape)} of {datatype}, which needs {count * size} "
            f"bytes; binary_data_size gives {len(chunk)}"
        )
    raw = np.frombuffer(chunk, dtype=datatypes.wire_dtype(datatype))
    if datatype == "BOOL":
        if raw.view(np.uint8).max(initial=0) > 1:
            raise InvalidValue(f"input '{clip(name)}' is BOOL, whose bytes must be 0 or 1")
    elif datatype == datatypes.BF16:
        raw = datatypes.bf16_to_float32(raw)
    return raw.reshape(shape)


def decode_bytes_elements(
    chunk: memoryview | bytes, count: int, *, name: str, max_string_bytes: int
) -> list[bytes]:
    """Exactly ``count`` length-prefixed elements filling the chunk."""
    elements: list[bytes] = []
    offset, end = 0, len(chunk)
    while offset < end:
        if len(elements) == count:
            raise ShapeMismatch(
                f"input '{clip(name)}' carries more than the {count} BYTES elements its shape declares"
            )
        if end - offset < _LENGTH.size:
            raise MalformedRequest(f"input '{clip(name)}' ends inside a BYTES length prefix")
        (length,) = _LENGTH.unpack_from(chunk, offset)
        offset += _LENGTH.size
        if length > max_string_bytes:
            raise InvalidValue(
                f"an element of input '{clip(name)}' has {length} bytes; at most {max_string_bytes} "
                "are accepted"
            )
        if end - offset < length:
            raise MalformedRequest(f"input '{clip(name)}' ends inside a BYTES element")
        elements.append(bytes(chunk[offset : offset + length]))
        offset += length
    if len(elements) != count:
        raise ShapeMismatch(
            f"input '{clip(name)}' carries {len(elements)} BYTES elements; its shape declares {count}"
        )
    return elements


def encode_tensor(array: npt.NDArray[Any], datatype: str) -> bytes:
    """An output's raw bytes: little-endian fixed-size values, or length-prefixed BYTES elements."""
    if datatype == datatypes.BYTES:
        parts: list[bytes] = []
        for element in array.reshape(-1).tolist():
            data = element if isinstance(element, bytes) else str(element).encode("utf-8")
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    dtype = datatypes.wire_dtype(datatype)
    return np.ascontiguousarray(array, dtype=dtype).tobytes()
