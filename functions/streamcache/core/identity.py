"""Which log a table belongs to: the fingerprint of the last record applied in each partition.

A table (and so a snapshot) says "partition 2 up to offset 41" through its next offsets, but offsets
alone do not name a log: a stream recreated under the same name, or a local broker that lost its
memory, reuses them for other records. So the table also keeps, per partition, the **fingerprint**
of the record it applied last (at ``next_offset - 1``): the request id's hash and the writer's time.
Before anything trusts a table against a log (a cold start loading a snapshot, a compaction folding
onto one, an instance deciding that the log went backwards), the record at that offset is fetched
from the log and compared (:func:`judge`). Like Litestream's generations and etcd's check of a
snapshot against its WAL, a snapshot of another log generation is then never folded onto this one.

Verdicts, per partition:

``same``            the log holds that very record there: same log.
``different``       the log holds another record there: another log (recreated, or another stream).
``gone``            the log ends at or below that offset, or no longer has the partition.
``unverifiable``    nothing to compare: the table applied nothing there, its last record was not one
                    of ours (skipped), or retention dropped the record (then the log's first offset
                    tells whether records were lost: see :mod:`.restore`).

Pure: the caller fetches the records (``MutationLog.records_at``) and passes what it found.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Mapping, NamedTuple

import orjson

from streamcache.core.errors import RecordError
from streamcache.core.records import Mutation, decode


class Fingerprint(NamedTuple):
    """What identifies a record within its partition: its request id's hash (``Table``'s
    ``request_hash``, salted with the partition) and its writer's time."""

    request: int
    ts_ms: int


class Verdict(StrEnum):
    SAME = "same"
    DIFFERENT = "different"
    GONE = "gone"
    UNVERIFIABLE = "unverifiable"

    @property
    def other_log(self) -> bool:
        """True when the table's records are not this log's (the proof a destructive decision needs)."""
        return self in (Verdict.DIFFERENT, Verdict.GONE)


@dataclass(frozen=True)
class PartitionCheck:
    partition: int
    next_offset: int  # the table's
    verdict: Verdict
    detail: str

    def describe(self) -> str:
        return f"partition {self.partition}: {self.detail}"


@dataclass(frozen=True)
class IdentityCheck:
    """Every partition's verdict. ``other_log`` when any partition proves the table is not this log's."""

    partitions: tuple[PartitionCheck, ...]

    @property
    def other_log(self) -> bool:
        return any(c.verdict.other_log for c in self.partitions)

    @property
    def mismatched(self) -> list[PartitionCheck]:
        return [c for c in self.partitions if c.verdict.other_log]

    def verdicts(self) -> dict[int, Verdict]:
        return {c.partition: c.verdict for c in self.partitions}

    def describe(self) -> str:
        shown = self.mismatched or list(self.partitions)
        return "; ".join(c.describe() for c in shown)


def to_check(next_offsets: Mapping[int, int]) -> dict[int, int]:
    """The offsets to fetch to check a table whose next offsets are ``next_offsets``: the last one
    applied in every partition that has one."""
    return {p: n - 1 for p, n in next_offsets.items() if n > 0}


def judge(next_offsets: Mapping[int, int], fingerprints: Mapping[int, Fingerprint | None],
          found: Mapping[int, Mutation | RecordError | None], log_first: Mapping[int, int],
          log_partitions: int, request_hash) -> IdentityCheck:
    """The verdicts for a table at ``next_offsets`` with ``fingerprints`` (per partition, of the record
    at ``next_offset - 1``; ``None``: unknown), given what the log holds at those offsets: ``found[p]``
    is the decoded record, the reason it is not ours, or ``None`` (the log holds none there);
    ``log_first`` the log's first offsets (below them, retention explains a missing record).
    ``request_hash(partition, request_id)`` is the table's hash of request ids."""
    checks = []
    for p, n in sorted(next_offsets.items()):
        if n <= 0:
            continue
        offset = n - 1
        expected = fingerprints.get(p)
        if p >= log_partitions:
            checks.append(PartitionCheck(p, n, Verdict.GONE, f"the log has no partition {p} (the table applied up to offset {offset})"))
            continue
        record = found.get(p)
        if record is None and offset < log_first.get(p, 0):
            checks.append(PartitionCheck(p, n, Verdict.UNVERIFIABLE, f"retention dropped offset {offset}, the record the table applied last"))
        elif record is None:
            checks.append(PartitionCheck(p, n, Verdict.GONE, f"the log holds no record at offset {offset}, which the table applied"))
        elif expected is None:
            checks.append(PartitionCheck(p, n, Verdict.UNVERIFIABLE, f"the table does not know the record at offset {offset}"))
        elif isinstance(record, RecordError):
            checks.append(PartitionCheck(p, n, Verdict.DIFFERENT, f"the record at offset {offset} is not the one the table applied ({record})"))
        elif Fingerprint(request_hash(p, record.request_id), record.ts_ms) != expected:
            checks.append(PartitionCheck(p, n, Verdict.DIFFERENT, f"the record at offset {offset} is another one than the table applied "
                                                                  f"(request {record.request_id!r})"))
        else:
            checks.append(PartitionCheck(p, n, Verdict.SAME, f"offset {offset} holds the record the table applied"))
    return IdentityCheck(tuple(checks))


def decode_found(value: bytes | None) -> Mutation | RecordError | None:
    """What :func:`judge` takes for a record value fetched from the log (``None``: no record)."""
    if value is None:
        return None
    try:
        return decode(value)
    except RecordError as exc:
        return exc


# ---- persisted with the table (a ``meta`` row, so the schema version stays 2) -------------------


def encode_fingerprints(fingerprints: Mapping[int, Fingerprint | None]) -> str:
    return orjson.dumps({str(p): list(f) for p, f in sorted(fingerprints.items()) if f is not None}).decode()


def decode_fingerprints(text: object) -> dict[int, Fingerprint]:
    """The fingerprints a ``meta`` row holds; an absent row (an image of an earlier version) holds none."""
    if text is None:
        return {}
    raw = orjson.loads(text if isinstance(text, (str, bytes)) else str(text))
    return {int(p): Fingerprint(int(r), int(t)) for p, (r, t) in raw.items()}
