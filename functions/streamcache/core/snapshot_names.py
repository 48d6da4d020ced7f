"""Names of snapshot objects: ``snapshots/<stream>/<%016x sum of next offsets>-<%016x as-of ms>-<writer>.snap``.

The core owns naming; stores only receive names. Fixed-width lowercase hex makes name order log order
(a snapshot that covers more of every partition has a larger offset sum), so a reader picks the
newest by listing, without downloading anything. Two writers of the same positions differ by their
writer id (random per write), and stores refuse to overwrite, so a name never means two objects.
The stream identity (a topic name, a stream OCID, anything) is percent-encoded into one segment.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, NamedTuple, Protocol
from urllib.parse import quote, unquote

_WRITER = re.compile(r"[0-9a-z]{1,32}")
_NAME = re.compile(r"snapshots/([^/]+)/([0-9a-f]{16})-([0-9a-f]{16})-([0-9a-z]{1,32})\.snap")
_LIMIT = 1 << 64


class SnapshotName(NamedTuple):
    """A parsed snapshot object name. Tuple order is log order (newest sorts last)."""

    offsets_total: int
    as_of_ms: int
    writer: str
    stream: str

    def __str__(self) -> str:
        return f"{stream_prefix(self.stream)}{self.offsets_total:016x}-{self.as_of_ms:016x}-{self.writer}.snap"


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


def format_name(header: Covers, writer: str) -> str:
    """The object name of a snapshot with ``header`` written by ``writer`` (1-32 of ``[0-9a-z]``;
    a random id per write, so two writers of the same positions never pick the same name)."""
    if not _WRITER.fullmatch(writer):
        raise ValueError(f"writer id {writer!r}: expected 1-32 characters of [0-9a-z]")
    total = sum(header.next_offsets.values())
    if not (0 <= total < _LIMIT and 0 <= header.as_of_ms < _LIMIT):
        raise ValueError("snapshot positions and as-of time must be in [0, 2**64)")
    return str(SnapshotName(total, header.as_of_ms, writer, header.stream))


def parse_name(name: str) -> SnapshotName:
    """Inverse of :func:`format_name`. Raises ``ValueError`` for any other name."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"not a snapshot name: {name!r}")
    quoted, total, as_of, writer = match.groups()
    stream = unquote(quoted)
    if quote(stream, safe="") != quoted:
        raise ValueError(f"not a snapshot name (stream not canonically encoded): {name!r}")
    return SnapshotName(int(total, 16), int(as_of, 16), writer, stream)


def newest_first(names: Iterable[str], stream: str) -> list[str]:
    """The snapshot names of ``stream`` among ``names``, newest first; other names are ignored."""
    parsed = []
    for name in names:
        try:
            snapshot = parse_name(name)
        except ValueError:
            continue
        if snapshot.stream == stream:
            parsed.append((snapshot, name))
    return [name for _, name in sorted(parsed, reverse=True)]
