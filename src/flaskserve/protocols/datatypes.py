"""Open Inference Protocol tensor datatypes and their numpy counterparts.

The V2 protocol names element types with strings (``FP32``, ``BYTES``…); this
module is the one table that maps them to numpy dtypes and byte sizes, in both
directions. Raw tensors on the wire are little-endian, so every fixed-size
dtype here is spelled with an explicit byte order.

numpy has no bfloat16: ``BF16`` decodes to float32 (a bfloat16 is the upper
half of a float32, so the conversion is exact), and the server never answers
with BF16.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Fixed-size datatypes: wire name → little-endian numpy dtype.
_FIXED: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}

BYTES = "BYTES"
BF16 = "BF16"

#: Every datatype a request may name, in the order the spec lists them.
DATATYPES: tuple[str, ...] = (*_FIXED, BF16, BYTES)

_BY_KIND_AND_SIZE: dict[tuple[str, int], str] = {
    (dtype.kind, dtype.itemsize): name for name, dtype in _FIXED.items()
}


def is_known(datatype: str) -> bool:
    return datatype in _FIXED or datatype in (BF16, BYTES)


def element_size(datatype: str) -> int | None:
    """Bytes per element on the wire, or ``None`` for BYTES (variable length)."""
    if datatype == BF16:
        return 2
    dtype = _FIXED.get(datatype)
    return None if dtype is None else dtype.itemsize


def wire_dtype(datatype: str) -> np.dtype[Any]:
    """The numpy dtype raw bytes of a fixed-size datatype are read as (BF16 as its raw uint16)."""
    if datatype == BF16:
        return np.dtype("<u2")
    return _FIXED[datatype]


def value_dtype(datatype: str) -> np.dtype[Any]:
    """The numpy dtype a decoded tensor of this datatype has (BF16 widens to float32, BYTES is object)."""
    if datatype == BF16:
        return np.dtype("<f4")
    if datatype == BYTES:
        return np.dtype(object)
    return _FIXED[datatype]


def bf16_to_float32(raw: np.ndarray[Any, np.dtype[np.uint16]]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Widen raw bfloat16 bits to float32 by placing them in the upper half of each word."""
    widened = raw.astype("<u4") << np.uint32(16)
    return widened.view("<f4")


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The V2 datatype that carries an array of this dtype (strings and objects travel as BYTES)."""
    if dtype.kind in "OUS":
        return BYTES
    name = _BY_KIND_AND_SIZE.get((dtype.kind, dtype.itemsize))
    if name is None:
        # float128, complex…: the server widens or narrows to FP64 before encoding.
        return "FP64"
    return name
