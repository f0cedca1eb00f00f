"""tritonclient's gRPC client against a server, in a process of its own; prints what it got as JSON.

tritonclient's generated modules and flaskserve's define the same ``inference``
messages in protobuf's default descriptor pool, which refuses a second
definition; the tests therefore run this script with ``python``, not import it.

Usage: ``python triton_grpc_client.py HOST:PORT [API_KEY] [--models NAME,...]``; each model named
with ``--models`` is also asked for ``ROWS`` (as many columns as its one input has), in the
datatype its metadata gives.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]


def infer(client: Any, model: str, version: str, array: np.ndarray, datatype: str, **outputs: int) -> Any:
    tensor = grpcclient.InferInput("input", list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    wanted = [grpcclient.InferRequestedOutput(name, class_count=count) for name, count in outputs.items()]
    result = client.infer(model, [tensor], model_version=version, outputs=wanted or None, request_id="r-1")
    answer = result.get_response()
    return {
        "id": answer.id,
        "model_version": answer.model_version,
        "outputs": {o.name: _plain(result.as_numpy(o.name)) for o in answer.outputs},
    }


def _plain(values: np.ndarray) -> list[Any]:
    return [v.decode() if isinstance(v, bytes) else v for v in values.ravel().tolist()]


def infer_as_described(client: Any, model: str) -> Any:
    """Ask ``model`` for ``ROWS``, shaped and typed as its metadata describes its one input."""
    (described,) = client.get_model_metadata(model, as_json=True)["inputs"]
    columns = int(described["shape"][-1])
    array = np.array(ROWS)[:, :columns].astype(_NUMPY_TYPES[described["datatype"]])
    tensor = grpcclient.InferInput(described["name"], list(array.shape), described["datatype"])
    tensor.set_data_from_numpy(array)
    result = client.infer(model, [tensor])
    outputs = {o.name: _plain(result.as_numpy(o.name)) for o in result.get_response().outputs}
    return {"input": {"name": described["name"], "datatype": described["datatype"]}, "outputs": outputs}


_NUMPY_TYPES = {"FP64": np.float64, "FP32": np.float32, "FP16": np.float16}


def main(address: str, key: str | None, models: list[str]) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else None
    client = grpcclient.InferenceServerClient(address)
    metadata = client.get_model_metadata("iris", "1", headers=headers, as_json=True)
    found: dict[str, Any] = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready("iris", "1"),
        "server": client.get_server_metadata(headers=headers, as_json=True),
        "metadata": metadata,
    }
    rows = np.array(ROWS)
    found["fp64"] = infer(client, "iris", "1", rows, "FP64")
    found["fp32"] = infer(client, "iris", "1", rows.astype(np.float32), "FP32")
    found["fp16"] = infer(client, "iris", "1", rows.astype(np.float16), "FP16")
    found["classified"] = infer(client, "iris", "1", rows, "FP64", predict=2)
    try:
        infer(client, "nope", "", rows, "FP64")
    except InferenceServerException as error:
        found["unknown_model"] = {"status": error.status(), "message": error.message()}
    found["models"] = {model: infer_as_described(client, model) for model in models}
    client.close()
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("key", nargs="?")
    parser.add_argument("--models", default="")
    arguments = parser.parse_args()
    print(json.dumps(main(arguments.address, arguments.key, [m for m in arguments.models.split(",") if m])))
