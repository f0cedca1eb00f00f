"""An answer's headers as the prediction lane builds them: a plain list of pairs.

Werkzeug's :class:`~werkzeug.datastructures.Headers` checks every value for line
breaks as it is set, and looks names up case-insensitively: a fair share of a
small prediction's time. The lane's answers carry only values the server wrote
(content type and length, model name and version, a request id already checked
against its pattern), so a plain list does. Policies that add headers take
:class:`MutableHeaders`, which both satisfy, and run the same on either.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["HeaderList", "MutableHeaders"]


class MutableHeaders(Protocol):
    """What a response policy does to an answer's headers: Werkzeug's headers and :class:`HeaderList` fit."""

    def get(self, key: str, /) -> str | None: ...

    def setdefault(self, key: str, default: str, /) -> str: ...

    def __setitem__(self, key: str, value: str, /) -> None: ...


class HeaderList(list[tuple[str, str]]):
    """Headers as the WSGI ``start_response`` takes them; names are compared case-insensitively."""

    def get(self, key: str, /) -> str | None:
        for name, value in self:
            if _same(name, key):
                return value
        return None

    def setdefault(self, key: str, default: str, /) -> str:
        found = self.get(key)
        if found is not None:
            return found
        self.append((key, default))
        return default

    def __setitem__(self, key: str, value: str, /) -> None:  # type: ignore[override]
        """Replace the first header of that name in place, drop any other, or add it (as Werkzeug does)."""
        size, lowered = len(key), key.lower()
        for index, (name, _) in enumerate(self):
            # The length first: most names differ in it, and it costs no new string.
            if len(name) == size and name.lower() == lowered:
                others = [pair for pair in self[index + 1 :] if not _same(pair[0], key)]
                del self[index:]
                self.append((key, value))
                self.extend(others)
                return
        self.append((key, value))


def _same(name: str, other: str) -> bool:
    # The length first: most names differ in it, and it costs no new string.
    return len(name) == len(other) and name.lower() == other.lower()
