"""Names of snapshot objects, which also carry the image's length and checksum.

    snapshots/<stream>/<%016x sum of next offsets>-<%016x as-of ms>-<writer>-<%012x bytes>-<%08x crc32>.db
    snapshots/<stream>/<...the same...>-<%08x crc32>-delta-<parent's writer>.db     (a delta: a chain's link)

The core owns naming; stores only receive names. Fixed-width lowercase hex makes name order log order
(a snapshot that covers more of every partition has a larger offset sum), so a reader picks the
newest by listing, without downloading anything. Two writers of the same positions differ by their
writer id (random per write), and stores refuse to overwrite, so a name never means two objects.
The stream identity (a topic name, a stream OCID, anything) is percent-encoded into one segment.

Why the checksum is in the name: the object is a plain SQLite database (any ``sqlite3`` shell
opens it), so it has no room for a trailer, and a CRC stored inside the image would have to exclude
itself. The name is immutable (stores write create-only) and always at hand when the object is
read, so length + CRC-32 of the whole object there detect truncation and damage before SQLite sees a
byte. The ``.db`` suffix lets a downloaded object open as what it is.

A delta (:mod:`.snapshot_chain`, :mod:`.snapshot_delta`) names the writer id of the link it was folded
onto, so that chains, and which base a retained delta needs, are known from a listing alone.

Names of the earlier format (``…-<writer>.snap``, a self-checking columnar file) are still parsed:
such snapshots are read by :mod:`.snapshot_legacy` and converted. At equal coverage a ``.db`` sorts
after (is newer than) a ``.snap``, so the converted image replaces the old one.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, NamedTuple, Protocol
from urllib.parse import quote, unquote


_WRITER = re.compile(r"[0-9a-z]{1,32}")
_NAME = re.compile(
    r"snapshots/([^/]+)/([0-9a-f]{16})-([0-9a-f]{16})-([0-9a-z]{1,32})"
    r"(?:-([0-9a-f]{12})-([0-9a-f]{8})(?:-delta-([0-9a-z]{1,32}))?\.db|\.snap)"
)
_LIMIT = 1 << 64
#: Format of ``.snap`` objects (columnar, self-checking) and of ``.db`` objects (SQLite image).
LEGACY_FORMAT, IMAGE_FORMAT = 1, 2


class Checksum(NamedTuple):
    """Length and CRC-32 of a whole object."""

    size_bytes: int
    crc32: int


class SnapshotName(NamedTuple):
    """A parsed snapshot object name. Tuple order is log order (newest sorts last)."""

    offsets_total: int
    as_of_ms: int
    format: int
    writer: str
    stream: str
    checksum: Checksum | None = None  # None for the legacy format (it checks itself)
    #: A delta's parent: the writer id of the link it was folded onto (``None``: a full image).
    parent: str | None = None

    @property
    def is_delta(self) -> bool:
        return self.parent is not None

    def __str__(self) -> str:
        head = f"{stream_prefix(self.stream)}{self.offsets_total:016x}-{self.as_of_ms:016x}-{self.writer}"
        if self.checksum is None:
            return head + ".snap"
        delta = "" if self.parent is None else f"-delta-{self.parent}"
        return f"{head}-{self.checksum.size_bytes:012x}-{self.checksum.crc32:08x}{delta}.db"


def stream_prefix(stream: str) -> str:
    """The name prefix under which the snapshots of ``stream`` live."""
    if not stream:
        raise ValueError("a stream identity cannot be empty")
    return f"snapshots/{quote(stream, safe='')}/"


class Covers(Protocol):
    """What a name says of a snapshot (a :class:`~.snapshot.SnapshotHeader` has it)."""

    @property
    def stream(self) -> str: ...

    @property
    def next_offsets(self) -> Mapping[int, int]: ...

    @property
    def as_of_ms(self) -> int: ...


def format_name(header: Covers, writer: str, checksum: Checksum, parent: str | None = None) -> str:
    """The object name of a snapshot with ``header`` and ``checksum`` written by ``writer`` (1-32 of
    ``[0-9a-z]``; a random id per write, so two writers of the same positions never collide);
    ``parent``: for a delta, the writer id of the link it was folded onto (see :mod:`.snapshot_chain`)."""
    if not _WRITER.fullmatch(writer) or (parent is not None and not _WRITER.fullmatch(parent)):
        raise ValueError(f"writer id {writer!r} / {parent!r}: expected 1-32 characters of [0-9a-z]")
    total = sum(header.next_offsets.values())
    if not (0 <= total < _LIMIT and 0 <= header.as_of_ms < _LIMIT):
        raise ValueError("snapshot positions and as-of time must be in [0, 2**64)")
    if not (0 <= checksum.size_bytes < 1 << 48 and 0 <= checksum.crc32 < 1 << 32):
        raise ValueError("snapshot size must be below 2**48 bytes")
    return str(SnapshotName(total, header.as_of_ms, IMAGE_FORMAT, writer, header.stream, checksum, parent))


def parse_name(name: str) -> SnapshotName:
    """Inverse of :func:`format_name` (and reads legacy ``.snap`` names). ``ValueError`` otherwise."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"not a snapshot name: {name!r}")
    quoted, total, as_of, writer, size, crc, parent = match.groups()
    stream = unquote(quoted)
    if quote(stream, safe="") != quoted:
        raise ValueError(f"not a snapshot name (stream not canonically encoded): {name!r}")
    if size is None:
        return SnapshotName(int(total, 16), int(as_of, 16), LEGACY_FORMAT, writer, stream)
    return SnapshotName(int(total, 16), int(as_of, 16), IMAGE_FORMAT, writer, stream, Checksum(int(size, 16), int(crc, 16)),
                        parent)


def newest_first(names: Iterable[str], stream: str) -> list[str]:
    """The snapshot names of ``stream`` among ``names``, newest first; other names are ignored."""
    parsed = []
    for name in names:
        try:
            snapshot = parse_name(name)
        except ValueError:
            continue
        if snapshot.stream == stream:
            parsed.append((snapshot[:4], name))
    return [name for _, name in sorted(parsed, reverse=True)]
