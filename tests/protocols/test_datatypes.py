"""The V2 datatype table, both ways."""

from __future__ import annotations

import numpy as np
import pytest

from flaskserve.protocols import datatypes


@pytest.mark.parametrize(
    ("datatype", "size"),
    [
        pytest.param("BOOL", 1, id="BOOL"),
        pytest.param("UINT8", 1, id="UINT8"),
        pytest.param("UINT16", 2, id="UINT16"),
        pytest.param("UINT32", 4, id="UINT32"),
        pytest.param("UINT64", 8, id="UINT64"),
        pytest.param("INT8", 1, id="INT8"),
        pytest.param("INT16", 2, id="INT16"),
        pytest.param("INT32", 4, id="INT32"),
        pytest.param("INT64", 8, id="INT64"),
        pytest.param("FP16", 2, id="FP16"),
        pytest.param("FP32", 4, id="FP32"),
        pytest.param("FP64", 8, id="FP64"),
        pytest.param("BF16", 2, id="BF16"),
        pytest.param("BYTES", None, id="BYTES"),
    ],
)
def test_element_sizes_follow_the_spec(datatype: str, size: int | None) -> None:
    assert datatypes.is_known(datatype)
    assert datatypes.element_size(datatype) == size


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [
        pytest.param(np.dtype(np.float64), "FP64", id="float64"),
        pytest.param(np.dtype(np.float32), "FP32", id="float32"),
        pytest.param(np.dtype(np.int64), "INT64", id="int64"),
        pytest.param(np.dtype(np.uint8), "UINT8", id="uint8"),
        pytest.param(np.dtype(bool), "BOOL", id="bool"),
        pytest.param(np.dtype("<U7"), "BYTES", id="unicode strings"),
        pytest.param(np.dtype(object), "BYTES", id="objects"),
    ],
)
def test_numpy_dtypes_map_to_datatypes(dtype: np.dtype[np.generic], datatype: str) -> None:
    assert datatypes.datatype_of(dtype) == datatype


def test_fixed_size_wire_dtypes_are_little_endian() -> None:
    for datatype in datatypes.DATATYPES:
        if datatype != "BYTES":
            dtype = datatypes.wire_dtype(datatype)
            assert dtype == dtype.newbyteorder("<")
