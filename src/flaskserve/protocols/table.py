"""The table of protocols an app speaks: one registration line per protocol.

Adding a protocol is one module that implements
:class:`~flaskserve.protocols.wire.InferenceProtocol` and one line in
:func:`default_protocols`; the app declares its prediction routes from the
table, and every one of them goes through the same edge.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flaskserve.protocols.wire import InferenceProtocol

__all__ = ["ProtocolTable", "default_protocols"]


class ProtocolTable:
    """The protocols one app speaks, by name; registering a name twice is an error."""

    def __init__(self) -> None:
        self._protocols: dict[str, InferenceProtocol[Any]] = {}

    def register(self, protocol: InferenceProtocol[Any]) -> None:
        if protocol.name in self._protocols:
            raise ValueError(f"protocol {protocol.name!r} is registered twice")
        self._protocols[protocol.name] = protocol

    def get(self, name: str) -> InferenceProtocol[Any]:
        return self._protocols[name]

    def __iter__(self) -> Iterator[InferenceProtocol[Any]]:
        return iter(self._protocols.values())

    def __len__(self) -> int:
        return len(self._protocols)


def default_protocols() -> ProtocolTable:
    """Every protocol flaskserve speaks, in the order the API page lists them."""
    from flaskserve.protocols import mlflow, simple, v1
    from flaskserve.protocols.v2 import protocol as v2

    table = ProtocolTable()
    table.register(simple.PROTOCOL)
    table.register(v2.PROTOCOL)
    table.register(v1.PROTOCOL)
    table.register(mlflow.PROTOCOL)
    return table
