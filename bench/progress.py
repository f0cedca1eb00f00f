"""What the run tells the person watching it, while it runs.

A full run takes a quarter of an hour and its output is often piped through ``tee`` or into a
CI log, where Python would otherwise buffer it: every line is flushed as it is written, so the
watcher sees which server is being measured now, not minutes later.
"""

from __future__ import annotations


def say(message: str) -> None:
    """Prints ``message`` and flushes it at once."""
    print(message, flush=True)
