"""The earlier snapshot format (format 1, ``.snap`` objects): read and converted, no longer written.

Snapshots are now SQLite images (:mod:`.snapshot`). A data folder or bucket from the earlier version
still holds ``.snap`` objects: :func:`decode_legacy` verifies one and converts it into a table (the
request ids of its dedup window are hashed as the table stores them), and the compactor then writes
the image that replaces it. :func:`encode_legacy` is kept for tests of that path only.

The format, as it was:

A snapshot holds everything that decides future reads and outcomes (entries, per-partition next
offsets and log times, the remembered request ids), so that loading it and replaying the log from its
next offsets gives exactly the table that replaying the whole log gives.

Layout (integers little-endian)::

    offset  size  field
    0       8     magic  b"\\x89SCSNAP\\n"
    8       2     format version (1)
    10      2     flags (0; reserved)
    12      4     header length H
    16      4     CRC-32 of bytes [0, 16) and the header
    20      H     header: UTF-8 JSON, see SnapshotHeader (``body_bytes`` gives the body size)
    20+H    B     body: sections, each  u8 codec (0 raw, 1 zlib) | u64 raw size | u64 stored size | data
    end-4   4     CRC-32 of everything before it

Sections, in order (``strings`` = code-point lengths as u32, then one UTF-8 blob; integer columns are
little-endian arrays; -2**63 stands for "none")::

    entries   content types (JSON list) | keys (strings) | value lengths (u32) | values (blob)
              | content type index (u32) | version partition (u32) | version offset (i64) | expiry ms (i64)
    requests  partition (i64) | log time when applied (i64) | request ids (strings) | kinds (JSON list)
              | kind index (u8) | keys (strings) | version partition (i64) | version offset (i64) | expiry (i64)

The first 20 bytes keep this meaning in every format version, so a reader tells a corrupt object
(:class:`SnapshotCorrupt`) from one written by a newer version (:class:`UnsupportedSnapshotVersion`)
and can read the header alone from a prefix of the object. The body is columnar (one array per
field, blobs for keys and values), which is what loads a million entries in under two seconds.
Every section but the values is zlib-compressed (level 1: integer columns shrink ~20x for almost
nothing); values are stored raw unless ``compress_values``, because inflating 100 MB of them costs
more time than the bytes saved (bench/bench_snapshot.py). Each section says how it is stored.

Object names are built and parsed in :mod:`.snapshot_names` (re-exported here).
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from bisect import bisect_left, bisect_right
from functools import partial
from itertools import accumulate
from typing import Iterable, Iterator, NamedTuple

import orjson

from streamcache.core.quota import ENTRY_OVERHEAD_BYTES
from streamcache.core.records import Position
from streamcache.core.snapshot_types import Snapshot, SnapshotCorrupt, SnapshotHeader, UnsupportedSnapshotVersion, gc_paused
from streamcache.core.schema import KIND_CODES
from streamcache.core.table import Entry, Outcome, OutcomeKind, Table, request_hash

_STORED_KINDS = [OutcomeKind(k) for k in KIND_CODES]

MAGIC = b"\x89SCSNAP\n"
FORMAT_VERSION = 1
PREAMBLE = struct.Struct("<8sHHII")  # magic, version, flags, header length, header CRC
TRAILER = struct.Struct("<I")
SECTION = struct.Struct("<BQQ")  # codec, raw size, stored size
RAW, ZLIB = 0, 1
#: Stands for "no expiry" / "no version" in int64 columns.
NONE_INT = -(2**63)
_LITTLE = sys.byteorder == "little"
assert array("I").itemsize == 4 and array("q").itemsize == 8, "unsupported platform int sizes"


# ---- encoding -------------------------------------------------------------------------------


class LegacyPartition(NamedTuple):
    """One partition as format 1 stored it: requests are ``(log time, request id, outcome)``."""

    next_offset: int
    clock_ms: int
    requests: list[tuple[int, str, Outcome]]


def encode_legacy(entries: dict[str, Entry], partitions: dict[int, LegacyPartition], stream: str,
                  *, compress_values: bool = False) -> bytes:
    """A format-1 snapshot of these values (for tests of the conversion; nothing writes format 1)."""
    with gc_paused():
        sections: list[bytes] = []
        _encode_entries(entries, sections, compress_values)
        requests = sum(len(part.requests) for part in partitions.values())
        _encode_requests(partitions, sections)
        body = b"".join(sections)
    header = {
        "stream": stream,
        "next_offsets": {str(p): part.next_offset for p, part in sorted(partitions.items())},
        "log_time_ms": {str(p): part.clock_ms for p, part in sorted(partitions.items())},
        "as_of_ms": max((part.clock_ms for part in partitions.values()), default=0),
        "entries": len(entries),
        "requests": requests,
        "body_bytes": len(body),
    }
    header_bytes = orjson.dumps(header)
    preamble = PREAMBLE.pack(MAGIC, FORMAT_VERSION, 0, len(header_bytes), 0)[:16]
    head = preamble + struct.pack("<I", zlib.crc32(header_bytes, zlib.crc32(preamble))) + header_bytes
    crc = zlib.crc32(body, zlib.crc32(head))
    return b"".join((head, body, TRAILER.pack(crc)))


def _encode_entries(entries: dict[str, Entry], out: list[bytes], compress_values: bool) -> None:
    rows = entries.values()
    types: dict[str, int] = {}
    type_index = [types.setdefault(e.content_type, len(types)) for e in rows]
    out.append(_section(orjson.dumps(list(types)), compress=True))
    _put_strings(list(entries), out)
    values = [e.value for e in rows]
    out.append(_section(_ints("I", map(len, values)), compress=True))
    out.append(_section(b"".join(values), compress=compress_values))
    out.append(_section(_ints("I", type_index), compress=True))
    out.append(_section(_ints("I", [e.version.partition for e in rows]), compress=True))
    out.append(_section(_ints("q", [e.version.offset for e in rows]), compress=True))
    expiries = [NONE_INT if e.expires_at_ms is None else e.expires_at_ms for e in rows]
    out.append(_section(_ints("q", expiries), compress=True))


def _encode_requests(partitions: dict[int, LegacyPartition], out: list[bytes]) -> None:
    """Columns of (partition, log time when applied, request id, outcome), grouped by partition."""
    requests = [r for p in sorted(partitions) for r in partitions[p].requests]
    counts = [(p, len(partitions[p].requests)) for p in sorted(partitions)]
    outcomes = [r[2] for r in requests]
    # Kinds are stored by name (a table, then an index per request) so enum order is not the format.
    kinds = {kind: i for i, kind in enumerate(OutcomeKind)}
    out.append(_section(_ints("q", [p for p, n in counts for _ in range(n)]), compress=True))
    out.append(_section(_ints("q", [r[0] for r in requests]), compress=True))
    _put_strings([r[1] for r in requests], out)
    out.append(_section(orjson.dumps([kind.value for kind in kinds]), compress=True))
    out.append(_section(bytes([kinds[o.kind] for o in outcomes]), compress=True))
    _put_strings([o.key for o in outcomes], out)
    versions = [o.version for o in outcomes]
    out.append(_section(_ints("q", [NONE_INT if v is None else v.partition for v in versions]), True))
    out.append(_section(_ints("q", [NONE_INT if v is None else v.offset for v in versions]), True))
    expiries = [NONE_INT if o.expires_at_ms is None else o.expires_at_ms for o in outcomes]
    out.append(_section(_ints("q", expiries), compress=True))


def _put_strings(strings: list[str], out: list[bytes]) -> None:
    # Lengths count code points, so the blob decodes in one call and is cut with str slices.
    out.append(_section(_ints("I", map(len, strings)), compress=True))
    out.append(_section("".join(strings).encode("utf-8", "surrogatepass"), compress=True))


def _ints(typecode: str, values: Iterable[int]) -> bytes:
    return _to_le(array(typecode, values))


def _to_le(column: array) -> bytes:
    if not _LITTLE:
        column.byteswap()
    return column.tobytes()


def _section(raw: bytes, compress: bool) -> bytes:
    if compress and raw:
        stored = zlib.compress(raw, 1)
        if len(stored) < len(raw):
            return SECTION.pack(ZLIB, len(raw), len(stored)) + stored
    # The one big raw section (the values) is copied once more here; ~30 ms per 100 MB.
    return SECTION.pack(RAW, len(raw), len(raw)) + raw


# ---- decoding -------------------------------------------------------------------------------


def decode_legacy_header(data: bytes) -> SnapshotHeader:
    """The header of a format-1 snapshot, from the whole object or a prefix holding the header.

    Checks the header's own CRC, not the body: use :func:`decode_legacy` before trusting data."""
    return _decode_header(data)[0]


def _decode_header(data: bytes) -> tuple[SnapshotHeader, int]:
    if len(data) < PREAMBLE.size:
        raise SnapshotCorrupt(f"snapshot: {len(data)} bytes is too short for a snapshot")
    magic, version, _flags, header_len, header_crc = PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotCorrupt("snapshot: not a snapshot (bad magic bytes)")
    header_bytes = bytes(data[PREAMBLE.size : PREAMBLE.size + header_len])
    if len(header_bytes) != header_len:
        raise SnapshotCorrupt(f"snapshot: truncated in the header ({len(data)} bytes)")
    if zlib.crc32(header_bytes, zlib.crc32(data[:16])) != header_crc:
        raise SnapshotCorrupt("snapshot: header checksum mismatch")
    if version != FORMAT_VERSION:
        raise UnsupportedSnapshotVersion(
            f"snapshot: format version {version}; this version of streamcache reads {FORMAT_VERSION}"
        )
    try:
        raw = orjson.loads(header_bytes)
        stream = raw["stream"]
        if not isinstance(stream, str) or not stream:
            raise TypeError("stream must be a non-empty string")
        header = SnapshotHeader(
            stream=stream,
            next_offsets={int(p): _int(o) for p, o in raw["next_offsets"].items()},
            log_time_ms={int(p): _int(t) for p, t in raw["log_time_ms"].items()},
            as_of_ms=_int(raw["as_of_ms"]),
            entries=_int(raw["entries"]),
            requests=_int(raw["requests"]),
            format_version=version,
        )
        return header, _int(raw["body_bytes"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotCorrupt(f"snapshot: unreadable header: {exc}") from exc


def _int(value: object) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def decode_legacy(data: bytes) -> Snapshot:
    """Verify a format-1 ``data`` and convert the table it holds. Raises :class:`SnapshotCorrupt` for
    anything short of an intact snapshot."""
    header, body_bytes = _decode_header(data)
    body_start = PREAMBLE.size + PREAMBLE.unpack_from(data)[3]
    expected = body_start + body_bytes + TRAILER.size
    if len(data) != expected:
        raise SnapshotCorrupt(f"snapshot: {len(data)} bytes where the header says {expected} (truncated?)")
    (crc,) = TRAILER.unpack_from(data, expected - TRAILER.size)
    if zlib.crc32(memoryview(data)[: expected - TRAILER.size]) != crc:
        raise SnapshotCorrupt("snapshot: checksum mismatch")
    try:
        with gc_paused():
            sections = _sections(memoryview(data)[body_start : expected - TRAILER.size])
            entries = _decode_entries(sections, header.entries)
            partitions = _decode_requests(sections, header)
            if next(sections, None) is not None:
                raise ValueError("unexpected data after the last section")
            if not {e.version.partition for e in entries.values()} <= partitions.keys():
                raise ValueError("an entry's version is in a partition the header does not list")
            return Snapshot(header, _to_table(entries, partitions))
    except SnapshotCorrupt:
        raise
    except _INCONSISTENT as exc:
        # Only reachable by a writer bug or a CRC collision: the checksum matched.
        raise SnapshotCorrupt(f"snapshot: inconsistent contents: {exc}") from exc


_INCONSISTENT = (ValueError, IndexError, KeyError, TypeError, ArithmeticError, StopIteration, zlib.error, struct.error)


def _sections(body: memoryview) -> Iterator[bytes]:
    at = 0
    while at < len(body):
        codec, raw_size, stored_size = SECTION.unpack_from(body, at)
        at += SECTION.size
        stored = body[at : at + stored_size]
        if len(stored) != stored_size:
            raise ValueError("a section runs past the end of the body")
        at += stored_size
        if codec == RAW:
            raw = bytes(stored)
        elif codec == ZLIB:
            raw = zlib.decompress(stored)
        else:
            raise ValueError(f"unknown section codec {codec}")
        if len(raw) != raw_size:
            raise ValueError("a section's size does not match its header")
        yield raw


def _column(sections: Iterator[bytes], typecode: str, count: int) -> array:
    column = array(typecode)
    column.frombytes(next(sections))
    if not _LITTLE:
        column.byteswap()
    if len(column) != count:
        raise ValueError(f"a column holds {len(column)} values, expected {count}")
    return column


def _strings(sections: Iterator[bytes], count: int) -> list[str]:
    lengths = _column(sections, "I", count)
    text = next(sections).decode("utf-8", "surrogatepass")
    ends = list(accumulate(lengths))
    if (ends[-1] if ends else 0) != len(text):
        raise ValueError("string lengths do not add up to the blob")
    return [text[a:b] for a, b in zip([0, *ends], ends)]


def _decode_entries(sections: Iterator[bytes], count: int) -> dict[str, Entry]:
    types = orjson.loads(next(sections))
    keys = _strings(sections, count)
    value_lengths = _column(sections, "I", count)
    blob = next(sections)
    ends = list(accumulate(value_lengths))
    if (ends[-1] if ends else 0) != len(blob):
        raise ValueError("value lengths do not add up to the blob")
    values = [blob[a:b] for a, b in zip([0, *ends], ends)]
    content_types = [types[i] for i in _column(sections, "I", count)]
    # tuple.__new__ skips NamedTuple's Python-level __new__: a third of the load time at 1M entries.
    partitions, offsets = _column(sections, "I", count), _column(sections, "q", count)
    positions = map(partial(tuple.__new__, Position), zip(partitions, offsets))
    expiries = [None if e == NONE_INT else e for e in _column(sections, "q", count)]
    rows = zip(values, content_types, positions, expiries)
    entries = dict(zip(keys, map(partial(tuple.__new__, Entry), rows)))
    if len(entries) != count:
        raise ValueError("duplicate keys")
    return entries


def _decode_requests(sections: Iterator[bytes], header: SnapshotHeader) -> dict[int, LegacyPartition]:
    count = header.requests
    part_column = _column(sections, "q", count)
    seen_ms = _column(sections, "q", count)
    request_ids = _strings(sections, count)
    kinds = [OutcomeKind(value) for value in orjson.loads(next(sections))]
    kind_column = [kinds[k] for k in next(sections)]
    keys = _strings(sections, count)
    new_position = partial(tuple.__new__, Position)
    version_columns = zip(_column(sections, "q", count), _column(sections, "q", count))
    versions = [None if p == NONE_INT else new_position((p, o)) for p, o in version_columns]
    expiries = [None if e == NONE_INT else e for e in _column(sections, "q", count)]
    if len(kind_column) != count:
        raise ValueError("the outcome kinds column has the wrong length")
    outcomes = [Outcome(*row) for row in zip(kind_column, keys, versions, expiries)]
    requests = list(zip(seen_ms, request_ids, outcomes))
    partitions = {}
    for p, next_offset in header.next_offsets.items():
        # Requests are grouped by partition; bisect finds each group in the sorted column.
        lo, hi = bisect_left(part_column, p), bisect_right(part_column, p)
        partitions[p] = LegacyPartition(next_offset, header.log_time_ms.get(p, 0), requests[lo:hi])
    if sum(len(part.requests) for part in partitions.values()) != count:
        raise ValueError("requests of partitions the header does not list")
    return partitions


def _to_table(entries: dict[str, Entry], partitions: dict[int, LegacyPartition]) -> Table:
    """The table these format-1 values describe, built with bulk inserts (in key order: fastest)."""
    table = Table()
    db = table.db
    types = {name: i for i, name in enumerate(sorted({e.content_type for e in entries.values()}))}
    db.executemany("INSERT INTO content_types VALUES (?, ?)", [(i, name) for name, i in types.items()])
    used = dict.fromkeys(partitions, 0)
    for key, e in entries.items():
        used[e.version.partition] += len(key.encode("utf-8", "surrogatepass")) + len(e.value) + ENTRY_OVERHEAD_BYTES
    db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)", (
        (key, e.value, types[e.content_type], e.version.partition, e.version.offset, e.expires_at_ms)
        for key, e in sorted(entries.items())))
    codes = {kind: i for i, kind in enumerate(_STORED_KINDS)}
    db.executemany("INSERT OR REPLACE INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)", (
        (request_hash(p, request_id), p, seen_ms, codes[o.kind], o.key,
         None if o.version is None or o.version.partition == p else o.version.partition,
         None if o.version is None else o.version.offset, o.expires_at_ms)
        for p, part in partitions.items() for seen_ms, request_id, o in part.requests))
    db.executemany("INSERT INTO partitions VALUES (?, ?, ?, ?)",
                   [(p, part.next_offset, part.clock_ms, used[p]) for p, part in sorted(partitions.items())])
    return Table(connection=db)
