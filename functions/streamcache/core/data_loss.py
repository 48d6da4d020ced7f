"""Data-loss records: what the compactor leaves in the snapshot store when stream retention dropped
records that no snapshot covers.

A snapshot written after such a loss covers the lost offsets (there is nothing else to fold there, and
the next restore must not trip over the gap again), so on its own it would hide the loss. The record
makes it visible for good: every cold start lists it next to the snapshots and reports the instance
``degraded`` until an operator acknowledges the loss by deleting the record
(``streamcache snapshots --acknowledge-data-loss``). The compactor writes the record *before* the
snapshot that covers the gap, so a compactor killed in between leaves the loss recorded twice at
worst, never hidden.

Name: ``snapshots/<stream>/data-loss-<%016x sum of the first offsets still held>-<writer>.json``,
beside the stream's snapshots (one listing finds both; snapshot parsing ignores it, so pruning never
deletes it). Body: one JSON object, see :meth:`DataLossRecord.to_json`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import orjson

from streamcache.core.snapshot_names import stream_prefix

_WRITER = re.compile(r"[0-9a-z]{1,32}")
_NAME = re.compile(r"data-loss-([0-9a-f]{16})-([0-9a-z]{1,32})\.json")


@dataclass(frozen=True)
class DataLossRecord:
    """Offsets ``[a, b)`` per partition that retention dropped before any snapshot covered them."""

    stream: str
    lost: dict[int, tuple[int, int]]
    detected_at_ms: int
    #: The snapshot the compactor folded from (``None``: there was none), and the one it wrote.
    snapshot_before: str | None
    snapshot_after: str

    @property
    def records_lost(self) -> int:
        """An upper bound: offsets may have had gaps."""
        return sum(b - a for a, b in self.lost.values())

    def describe(self) -> str:
        gaps = ", ".join(f"partition {p}: offsets {a} to {b - 1}" for p, (a, b) in sorted(self.lost.items()))
        return (
            f"DATA LOSS recorded for stream {self.stream!r}: stream retention dropped up to "
            f"{self.records_lost} records that no snapshot covered ({gaps}); writes acknowledged there "
            "are gone. Operator: run the compactor well inside the stream's retention period, then "
            "acknowledge with `streamcache snapshots --acknowledge-data-loss`."
        )

    def to_json(self) -> dict:
        return {
            "kind": "streamcache.data-loss.v1",
            "stream": self.stream,
            "lost": {str(p): [a, b] for p, (a, b) in sorted(self.lost.items())},
            "records_lost": self.records_lost,
            "detected_at_ms": self.detected_at_ms,
            "snapshot_before": self.snapshot_before,
            "snapshot_after": self.snapshot_after,
        }


def loss_name(stream: str, first_offsets: Mapping[int, int], writer: str) -> str:
    """The object name of a data-loss record found when the log began at ``first_offsets``."""
    if not _WRITER.fullmatch(writer):
        raise ValueError(f"writer id {writer!r}: expected 1-32 characters of [0-9a-z]")
    return f"{stream_prefix(stream)}data-loss-{sum(first_offsets.values()):016x}-{writer}.json"


def is_loss_name(name: str, stream: str) -> bool:
    prefix = stream_prefix(stream)
    return name.startswith(prefix) and _NAME.fullmatch(name[len(prefix) :]) is not None


def encode_loss(record: DataLossRecord) -> bytes:
    return orjson.dumps(record.to_json(), option=orjson.OPT_INDENT_2)


def decode_loss(data: bytes) -> DataLossRecord:
    """Parse a data-loss record. Raises ``ValueError`` if ``data`` is not one."""
    try:
        raw = orjson.loads(data)
        if raw["kind"] != "streamcache.data-loss.v1":
            raise ValueError(f"unknown kind {raw['kind']!r}")
        lost = {int(p): (int(a), int(b)) for p, (a, b) in raw["lost"].items()}
        return DataLossRecord(
            stream=str(raw["stream"]),
            lost=lost,
            detected_at_ms=int(raw["detected_at_ms"]),
            snapshot_before=raw["snapshot_before"],
            snapshot_after=str(raw["snapshot_after"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a data-loss record: {exc}") from exc
