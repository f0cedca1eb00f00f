"""The file sink: JSON Lines in a directory, one file per worker, rotated by size.

Each worker appends to ``inference-PID.jsonl`` (one writer per file, so lines
never interleave). Once the file passes ``max_bytes`` (``?max_bytes=N``, 100 MB
by default) it is renamed ``inference-PID-TIMESTAMP.jsonl`` — and gzipped to
``….jsonl.gz`` with ``?gzip=1`` — and a new one is started; rotated files are
never touched again, so a shipper may pick them up.
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from flaskserve.errors import ConfigError
from flaskserve.observability.inference_log.record import InferenceRecord

__all__ = ["DEFAULT_MAX_BYTES", "JsonLinesSink"]

DEFAULT_MAX_BYTES = 100 * 1024 * 1024


class JsonLinesSink:
    def __init__(
        self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, compress: bool = False
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.compress = compress
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"inference-{os.getpid()}.jsonl"
        self._file: IO[bytes] = self.path.open("ab")

    @classmethod
    def from_url(cls, url: str) -> JsonLinesSink:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        try:
            max_bytes = int(query.get("max_bytes", [DEFAULT_MAX_BYTES])[0])
        except ValueError:
            raise ConfigError("inference_log: max_bytes must be a number of bytes") from None
        compress = query.get("gzip", ["0"])[0].lower() in ("1", "true", "yes")
        directory = Path(unquote(parts.netloc + parts.path))
        return cls(directory, max_bytes=max(max_bytes, 1), compress=compress)

    def write(self, records: Sequence[InferenceRecord]) -> None:
        lines = b"".join(orjson.dumps(r.document()) + b"\n" for r in records)
        self._file.write(lines)
        self._file.flush()
        if self._file.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 1_000_000_000:09d}"
        rotated = self.path.with_name(f"{self.path.stem}-{stamp}.jsonl")
        self.path.rename(rotated)
        if self.compress:
            with rotated.open("rb") as source, gzip.open(rotated.with_suffix(".jsonl.gz"), "wb") as target:
                shutil.copyfileobj(source, target)
            rotated.unlink()
        self._file = self.path.open("ab")

    def close(self) -> None:
        self._file.close()
