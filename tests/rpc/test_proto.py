"""The .proto agrees with tritonclient's on the wire, and the generated modules are up to date."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FileDescriptor

from flaskserve.rpc.proto import grpc_predict_v2_pb2 as pb

PROTO_DIR = Path(pb.__file__).parent
GENERATED = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi", "grpc_predict_v2_pb2_grpc.py")

# tritonclient's generated modules define the same ``inference`` messages in protobuf's
# default pool, so they are read in a process of their own.
_TRITON_DESCRIBER = """
import json, sys
from google.protobuf.descriptor import FieldDescriptor
from tritonclient.grpc import service_pb2

def describe(message):
    found = {message.full_name: {f.name: [f.number, f.type, f.is_repeated] for f in message.fields}}
    for nested in message.nested_types:
        found.update(describe(nested))
    return found

messages = {}
for message in service_pb2.DESCRIPTOR.message_types_by_name.values():
    messages.update(describe(message))
service = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
methods = {m.name: [m.input_type.full_name, m.output_type.full_name] for m in service.methods}
json.dump({"messages": messages, "methods": methods}, sys.stdout)
"""


def _describe(message: Descriptor) -> dict[str, Any]:
    found = {message.full_name: {f.name: [f.number, f.type, f.is_repeated] for f in message.fields}}
    for nested in message.nested_types:
        found.update(_describe(nested))
    return found


def _ours(file: FileDescriptor) -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for message in file.message_types_by_name.values():
        messages.update(_describe(message))
    service = file.services_by_name["GRPCInferenceService"]
    methods = {m.name: [m.input_type.full_name, m.output_type.full_name] for m in service.methods}
    return {"messages": messages, "methods": methods}


def test_every_message_and_rpc_matches_tritonclients_field_for_field() -> None:
    triton = json.loads(
        subprocess.run(
            [sys.executable, "-c", _TRITON_DESCRIBER], check=True, capture_output=True, timeout=60
        ).stdout
    )
    ours = _ours(pb.DESCRIPTOR)

    assert ours["messages"], "no messages were described"
    for name, fields in ours["messages"].items():
        assert triton["messages"].get(name) == fields, name
    for name, types in ours["methods"].items():
        assert triton["methods"].get(name) == types, name
    assert pb.DESCRIPTOR.package == "inference"


def test_regenerating_the_modules_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "flaskserve" / "rpc" / "proto"
    target.mkdir(parents=True)
    (target / "grpc_predict_v2.proto").write_bytes((PROTO_DIR / "grpc_predict_v2.proto").read_bytes())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{tmp_path}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(target / "grpc_predict_v2.proto"),
        ],
        check=True,
        timeout=60,
    )

    for name in GENERATED:
        assert (target / name).read_text() == (PROTO_DIR / name).read_text(), (
            f"{name} is out of date: run make grpc-generate"
        )
