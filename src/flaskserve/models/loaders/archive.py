"""Checks on a zip archive, made before any library unpacks it: a skops file is a zip.

zipfile believes the sizes an archive declares, and skops reads every member it
needs whole into memory. A crafted file of a few kilobytes can therefore declare a
member of gigabytes (a zip bomb), hold a hundred thousand members, or declare small
sizes while its compressed data unpacks to far more: zipfile then inflates up to a
gigabyte in one call before it cuts the output to the declared size.
:func:`check_archive` refuses such a file while it is still bytes:

- at most :data:`MAX_MEMBERS` members. A forest stores five members per tree, so a
  model of twenty thousand trees still fits. They are counted in the archive's
  directory before zipfile lists them (tens of microseconds and half a kilobyte
  each), so a file of millions of empty members costs a bounded count, not minutes;
- members stored or deflated, as ``skops.io.dump`` writes them, and not encrypted;
  other methods (bzip2, lzma) inflate without a bound on one call's output;
- all members together declare at most what
  :func:`~flaskserve.models.loaders.expansion_budget` allows: 100 times the file's
  size, or 64 MiB for a small file. skops stores members uncompressed by default
  (a ratio of 1), and deflated numeric arrays shrink a few times at most;
- no member larger than :data:`SMALL_MEMBER` declares more than
  :data:`~flaskserve.models.loaders.MAX_EXPANSION` times its compressed size: a ratio
  only long runs of zeros reach, which is what bombs are made of;
- every deflated member really inflates to the size it declares, checked by
  inflating it in bounded steps; a stored member's two sizes agree.

The checks cost one pass of inflation over the file's members, at most the budget
above, and memory of one step (:data:`_STEP` bytes) beyond the file itself.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from flaskserve.errors import ModelLoadError
from flaskserve.models.loaders import MAX_EXPANSION, MIN_EXPANSION_BUDGET, expansion_budget

#: The most members an archive may hold.
MAX_MEMBERS = 100_000
#: Members up to this size may be compressed at any ratio (a small array of zeros is fine).
SMALL_MEMBER = 1 << 20

_STEP = 1 << 20
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
#: A member's local header: signature, version, flags, method, time, date, CRC,
#: compressed size, size, name length, extra field length.
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
#: The directory's records of the members: 46 bytes, then name, extra field and comment,
#: whose lengths are the three 16-bit numbers at offset 28.
_DIRECTORY_RECORD = 46
_DIRECTORY_SIGNATURE = b"PK\x01\x02"
#: The end record: signature, disk numbers, entry counts, directory size and offset, comment length.
_END = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
#: ZIP64's end record (signature, size, versions, disks, counts, directory size, offset) and its locator.
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_SIGNATURE = b"PK\x06\x06"
_LOCATOR64 = struct.Struct("<4sLQL")
_LOCATOR64_SIGNATURE = b"PK\x06\x07"
_ADVICE = "The file is damaged or was crafted; save the model again with skops.io.dump."


class _Refused(Exception):
    """What is wrong with the archive, worded to follow "refusing to load MODEL: "."""


def check_archive(data: bytes, display_name: str) -> None:
    """Refuse a zip archive that could not be unpacked in memory proportional to its size."""
    members = _count_members(data)
    if members > MAX_MEMBERS:
        raise ModelLoadError(
            f"refusing to load {display_name}: it holds more than {MAX_MEMBERS} members, more than a "
            f"model needs. {_ADVICE}"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise ModelLoadError(
            f"{display_name} is not a readable skops file: it is not a zip archive ({type(exc).__name__})"
        ) from exc
    try:
        with archive:
            _check_members(archive.infolist(), len(data))
            for member in archive.infolist():
                _check_unpacked_size(member, data)
    except _Refused as exc:
        raise ModelLoadError(f"refusing to load {display_name}: {exc}. {_ADVICE}") from None


def _count_members(data: bytes) -> int:
    """How many members zipfile would list, counted up to ``MAX_MEMBERS + 1`` without listing them.

    The directory is found where zipfile looks for it: the bytes just before the end
    record (and ZIP64's, when there is one). An archive whose directory cannot be found
    counts as empty here, and zipfile then says what is wrong with it.
    """
    at = len(data) - _END.size
    if not (at >= 0 and data[at : at + 4] == _END_SIGNATURE and data[-2:] == b"\0\0"):
        at = data.rfind(_END_SIGNATURE, max(len(data) - 0xFFFF - _END.size, 0))
    if at < 0 or at + _END.size > len(data):
        return 0
    size = _END.unpack_from(data, at)[5]
    end = at
    locator = at - _LOCATOR64.size
    if locator >= 0 and data[locator : locator + 4] == _LOCATOR64_SIGNATURE:
        record = locator - _END64.size
        if record >= 0 and data[record : record + 4] == _END64_SIGNATURE:
            size = _END64.unpack_from(data, record)[8]
            end = record
    start = end - size
    count = 0
    at = start
    while 0 <= start <= at < start + size and count <= MAX_MEMBERS:
        if at + _DIRECTORY_RECORD > len(data) or data[at : at + 4] != _DIRECTORY_SIGNATURE:
            break
        count += 1
        at += _DIRECTORY_RECORD + sum(struct.unpack_from("<3H", data, at + 28))
    return count


def _check_members(members: list[zipfile.ZipInfo], size: int) -> None:
    if len(members) > MAX_MEMBERS:
        raise _Refused(f"it holds {len(members)} members, more than the {MAX_MEMBERS} a model needs")
    budget = expansion_budget(size)
    declared = 0
    for member in members:
        if member.flag_bits & 0x1:
            raise _Refused("it holds an encrypted member")
        if member.compress_type not in _METHODS:
            raise _Refused(
                f"it holds a member compressed with method {member.compress_type}; "
                "skops files are stored or deflated"
            )
        if member.file_size > SMALL_MEMBER and member.file_size > MAX_EXPANSION * member.compress_size:
            raise _Refused(
                f"a member unpacks to {member.file_size} bytes from {member.compress_size}, "
                f"a ratio over {MAX_EXPANSION} that only a zip bomb reaches"
            )
        declared += member.file_size
        if declared > budget:
            raise _Refused(
                f"its members unpack to more than the {budget} bytes a file of {size} bytes may "
                f"({MAX_EXPANSION} times its size, at least {MIN_EXPANSION_BUDGET >> 20} MiB)"
            )


def _check_unpacked_size(member: zipfile.ZipInfo, data: bytes) -> None:
    """Prove that the member's data really is the size it declares, without trusting the declaration."""
    start = member.header_offset
    header = data[start : start + _LOCAL_HEADER.size]
    if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
        raise _Refused("a member's header is not where the archive's directory says")
    *_, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    begin = start + _LOCAL_HEADER.size + name_length + extra_length
    end = begin + member.compress_size
    if end > len(data):
        raise _Refused("a member's data runs past the end of the file")
    if member.compress_type == zipfile.ZIP_STORED:
        if member.compress_size != member.file_size:
            raise _Refused("a stored member declares two different sizes")
        return
    if _inflated_size(memoryview(data)[begin:end], limit=member.file_size) != member.file_size:
        raise _Refused("a member does not unpack to the size it declares")


def _inflated_size(stream: memoryview, *, limit: int) -> int:
    """How many bytes a raw deflate stream inflates to, counting no further than ``limit + 1``.

    Each step feeds at most :data:`_STEP` bytes and takes at most as many out; a stream
    that stops short of its end counts as -1.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    produced = 0
    offset = 0
    pending: bytes | memoryview = b""
    try:
        while not inflater.eof:
            if not pending and offset < len(stream):
                pending = stream[offset : offset + _STEP]
                offset += _STEP
            out = inflater.decompress(pending, _STEP)
            produced += len(out)
            if produced > limit:
                return produced
            tail = inflater.unconsumed_tail
            if not out and len(tail) == len(pending) and offset >= len(stream):
                break  # no input left and nothing more comes out
            pending = tail
    except zlib.error as exc:
        raise _Refused("a member's compressed data is damaged") from exc
    return produced if inflater.eof else -1
