"""Structure-aware mutation for the JSON targets: change a parsed document, not its bytes.

A byte-level mutation of a JSON body is mostly a body that no longer parses,
and the parser and pydantic's validator are native code that give libFuzzer no
coverage to steer by. So half the time a JSON body is parsed and one node of
it is changed — replaced by an interesting value (a huge integer, a negative
dimension, a datatype name, an empty array...), copied, deleted, wrapped in an
array, or given a key the protocols know — and written back; the other half,
and whenever the body does not parse, libFuzzer's own mutation runs.

For ``v2_binary`` the JSON header is mutated apart from the raw tensors after
it, and the header length on the first line usually follows the new header.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import atheris

Mutator = Callable[[bytes, int, int], bytes]

KEYS = (
    "instances", "inputs", "outputs", "method", "signature_name", "b64", "dataframe_split",
    "dataframe_records", "columns", "data", "index", "params", "name", "shape", "datatype",
    "parameters", "id", "content_type", "binary_data_size", "binary_data_output", "binary_data",
    "classification", "x", "y", "text", "x0", "sepal_length", "petal_width", "input",
)  # fmt: skip
VALUES: tuple[Any, ...] = (
    0, 1, -1, 2, 3, 4, 16, 255, 256, 65535, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**62, 2**63 - 1, 2**63,
    2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, 0.5, -0.0, 1e308, -1e308, 5e-324, 65504.0, 65520.0,
    3.4e38, 3.5e38, True, False, None, "", "a", "é", "\u0000", "\ud7ff", "x" * 300, "é" * 100,
    "predict", "predict_proba", "decision_function", "transform", "serving_default", "pd", "np", "str",
    "input", "BOOL", "UINT8", "UINT64", "INT8", "INT64", "FP16", "FP32", "FP64", "BF16", "BYTES",
    "aGk=", "!!", [], [[]], [0], [[1, 2]], [1, 2, 3, 4], [0, 4], [0, 2**62], [2, 0, 2**40], {},
    {"b64": "aGk="}, {"b64": ""}, {"b64": 1}, {"binary_data_size": 16},
)  # fmt: skip


def json_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """The protocol targets' inputs: a first line, then a JSON body."""
    rng = random.Random(seed)
    head, newline, body = data.partition(b"\n")
    if newline and rng.random() < 0.5:
        mutated = _mutate_json(body, rng)
        if mutated is not None and len(head) + 1 + len(mutated) <= max_size:
            return head + b"\n" + mutated
    return atheris.Mutate(data, max_size)


def v2_binary_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """``MODEL LENGTH`` on the first line, then a JSON header of LENGTH bytes and raw tensors."""
    rng = random.Random(seed)
    head, newline, body = data.partition(b"\n")
    words = head.split()
    if newline and len(words) == 2 and words[1].isdigit() and int(words[1]) <= len(body):
        length = int(words[1])
        header, rest = body[:length], body[length:]
        choice = rng.random()
        if choice < 0.5:
            mutated = _mutate_json(header, rng, rest=len(rest))
            if mutated is not None:
                header = mutated
        elif choice < 0.7:
            rest = atheris.Mutate(rest, max(len(rest) * 2, 16))
        if choice < 0.7:
            declared = len(header) if rng.random() < 0.9 else rng.choice((0, length, len(header) + 1))
            result = b"%s %d\n%s%s" % (words[0], declared, header, rest)
            if len(result) <= max_size:
                return result
    return atheris.Mutate(data, max_size)


def _mutate_json(body: bytes, rng: random.Random, rest: int | None = None) -> bytes | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    nodes = list(_walk(document, None, None))
    holder, key, node = rng.choice(nodes)
    operation = rng.randrange(7)
    if operation == 0 or holder is None:
        replacement: Any = _value(rng, nodes)
    elif operation == 1 and isinstance(node, list):
        replacement = [*node, _copy(rng.choice(node))] if node else [_value(rng, nodes)]
    elif operation == 2 and isinstance(node, list) and node:
        replacement = node[: len(node) - 1] if rng.random() < 0.5 else node[1:]
    elif operation == 3 and isinstance(node, dict):
        replacement = {**node, rng.choice(KEYS): _value(rng, nodes)}
    elif operation == 4 and isinstance(node, dict) and node:
        dropped = rng.choice(list(node))
        replacement = {k: v for k, v in node.items() if k != dropped}
    elif operation == 5:
        replacement = [_copy(node)]
    elif rest is not None and isinstance(node, dict) and "binary_data_size" in node:
        replacement = {**node, "binary_data_size": rest}
    else:
        replacement = _value(rng, nodes)
    if holder is None:
        document = replacement
    else:
        holder[key] = replacement
    try:
        return json.dumps(document, ensure_ascii=rng.random() < 0.5, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        return None


def _walk(node: Any, holder: Any, key: Any) -> Any:
    yield holder, key, node
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, node, index)
    elif isinstance(node, dict):
        for name, item in node.items():
            yield from _walk(item, node, name)


def _value(rng: random.Random, nodes: list[Any]) -> Any:
    if rng.random() < 0.2:
        return _copy(rng.choice(nodes)[2])
    return _copy(rng.choice(VALUES))


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


MUTATORS: dict[str, Mutator] = {
    "simple": json_mutator,
    "v1": json_mutator,
    "v2_json": json_mutator,
    "v2_binary": v2_binary_mutator,
    "mlflow_json": json_mutator,
}
