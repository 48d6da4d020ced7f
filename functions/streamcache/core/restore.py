"""Restore planning: given the newest valid snapshot and the log's bounds, decide where replay starts.

Pure (Kafka Streams' ``StoreChangelogReader`` and Litestream's ``CalcRestorePlan`` in spirit): the
caller captures the log bounds once, loads the newest snapshot that verifies (falling back to older
ones only when an object is corrupt), and asks :func:`plan_restore` what to do. Two problems are
named, detected here and nowhere else:

``tail_truncated``
    The stream's retention dropped records the snapshot does not cover (the snapshot's next offset
    is below the log's first offset). Those writes are lost. The plan still restores: snapshot, then
    everything the log still holds. The compactor must run well inside the retention period.

``snapshot_ahead_of_log`` (a snapshot of another log)
    The snapshot is not of this log: the record it applied last in some partition is not the one the
    log holds at that offset (:mod:`.identity`: another record, or none because the log ends below
    it, or the log lacks the partition). The stream was recreated, a broker lost its log, or this is
    not the stream the snapshots were made from. The plan does NOT load the snapshot (its versions
    and offsets mean nothing in this log) and replays what the log holds. An older snapshot is no
    way out: it was made from the same old log. Without an identity check (images of an earlier
    version carry no fingerprints), "the snapshot covers offsets beyond the log's end" decides.

``partition_count_changed``
    The log has another number of partitions than the one that placed the snapshot's records (Kafka
    allows adding partitions; OCI Streaming does not). Keys now hash to other partitions, so the
    records before the change and after it cannot be read as one log: the plan refuses
    (:attr:`RestorePlan.refused`), and nothing serves or compacts until an operator acts.

A partition the snapshot does not mention is covered up to offset 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping, Protocol

from streamcache.core.identity import IdentityCheck, Verdict
from streamcache.core.snapshot import SnapshotHeader


class Bounds(Protocol):
    """The log's bounds as captured at the start of the restore (``ports.LogBounds`` fits)."""

    @property
    def first(self) -> Mapping[int, int]: ...

    @property
    def next(self) -> Mapping[int, int]: ...


class RestoreAction(str, Enum):
    REPLAY = "replay"  # load the snapshot (if any), replay the log from its positions
    REPLAY_WITH_LOSS = "replay_with_loss"  # as REPLAY, but records were lost: degraded, say so
    STREAM_MISMATCH = "stream_mismatch"  # ignore the snapshot, replay the log alone: degraded, say so
    PARTITIONS_CHANGED = "partitions_changed"  # the log's partition count is not the snapshot's: refuse


@dataclass(frozen=True)
class RestorePlan:
    """What a cold start does: load ``snapshot`` (``None``: start empty), then replay every partition
    from ``start[p]`` up to ``end[p]`` (exclusive; the log end captured for this restore)."""

    snapshot: SnapshotHeader | None
    start: dict[int, int]
    end: dict[int, int]
    #: Per partition, the offsets ``[a, b)`` that retention dropped and no snapshot covers.
    lost: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: Per partition, ``(snapshot next offset, log next offset or None if the log lacks it)``.
    ahead: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    #: The snapshot that was not used because it is ahead of the log.
    rejected: SnapshotHeader | None = None
    #: What proved the snapshot is of another log (the identity check's words), if one was made.
    proof: str | None = None
    #: ``(the snapshot's partition count, the log's)`` when they differ.
    partitions_changed: tuple[int, int] | None = None

    @property
    def refused(self) -> bool:
        """True when nothing may be served or folded from this log as it is (an operator must act)."""
        return self.partitions_changed is not None

    @property
    def tail_truncated(self) -> bool:
        return bool(self.lost)

    @property
    def snapshot_ahead_of_log(self) -> bool:
        return bool(self.ahead)

    @property
    def action(self) -> RestoreAction:
        if self.refused:
            return RestoreAction.PARTITIONS_CHANGED
        if self.snapshot_ahead_of_log:
            return RestoreAction.STREAM_MISMATCH
        if self.tail_truncated:
            return RestoreAction.REPLAY_WITH_LOSS
        return RestoreAction.REPLAY

    @property
    def degraded(self) -> bool:
        """True when the restored table is not everything that was acknowledged (or may not be)."""
        return self.action is not RestoreAction.REPLAY

    @property
    def records_to_replay(self) -> int:
        """An upper bound on the records replay reads (offsets may have gaps)."""
        return sum(max(0, self.end[p] - s) for p, s in self.start.items())

    @property
    def records_lost(self) -> int:
        return sum(b - a for a, b in self.lost.values())

    def describe(self) -> str:
        """One paragraph for logs and ``/health``: what happened and what an operator should do."""
        if self.action is RestoreAction.PARTITIONS_CHANGED:
            assert self.partitions_changed is not None and self.rejected is not None
            was, now = self.partitions_changed
            return (
                f"PARTITION COUNT CHANGED for stream {self.rejected.stream!r}: its records were placed over "
                f"{was} partitions, the log now has {now}. Keys hash to other partitions now, so no answer "
                "would be right: nothing is served or compacted. Operator: give the stream its "
                f"{was} partitions back (recreate it), or start a new stream and seed it from the last "
                "snapshot (see infra/README.md, 'The stream was recreated')."
            )
        if self.action is RestoreAction.STREAM_MISMATCH:
            assert self.rejected is not None
            where = self.proof or ", ".join(
                f"partition {p}: snapshot at {s}, "
                + ("the log has no such partition" if n is None else f"log ends at {n}")
                for p, (s, n) in sorted(self.ahead.items())
            )
            return (
                f"SNAPSHOT OF ANOTHER LOG for stream {self.rejected.stream!r} ({where}): the stream was "
                "recreated, its broker lost its records, or this is not the stream the snapshots were "
                "made from. The snapshot is not used; serving only what the log holds "
                f"({self.records_to_replay} records). Operator: retire the old snapshots "
                "(`streamcache snapshots --retire-other-log`) to start from this log, optionally seeding "
                "it from one of them (`streamcache restore --from-snapshot NAME`), or point the cache at "
                "the right stream. Compaction refuses meanwhile."
            )
        base = (
            "no snapshot"
            if self.snapshot is None
            else f"snapshot of {self.snapshot.stream!r} at {_positions(self.snapshot.next_offsets)}"
        )
        text = f"restore from {base}, replay {self.records_to_replay} records to {_positions(self.end)}"
        if self.action is RestoreAction.REPLAY_WITH_LOSS:
            lost = sorted(self.lost.items())
            gaps = ", ".join(f"partition {p}: offsets {a} to {b - 1}" for p, (a, b) in lost)
            text = (
                f"DATA LOSS: stream retention dropped {self.records_lost} records that no snapshot "
                f"covers ({gaps}); writes acknowledged there are gone. Then: {text}. "
                "Operator: run the compactor well inside the stream's retention period."
            )
        return text


def plan_restore(snapshot: SnapshotHeader | None, bounds: Bounds, identity: IdentityCheck | None = None) -> RestorePlan:
    """Plan a restore from ``snapshot`` (the newest one that verified, ``None`` if there is none)
    given the log bounds captured for this restore and, when it was made, the check of the snapshot's
    fingerprints against the log (:mod:`.identity`). With the check, only the log's own records
    decide that the snapshot is of another log: a short end in ``bounds`` (a broker whose ListOffsets
    lags) is corrected by a record found, never taken as proof."""
    first, end = dict(bounds.first), dict(bounds.next)
    covered = {} if snapshot is None else snapshot.next_offsets
    if snapshot is not None and snapshot.partition_count is not None and snapshot.partition_count != len(end):
        return RestorePlan(None, {}, end, rejected=snapshot, partitions_changed=(snapshot.partition_count, len(end)))
    verdicts = {} if identity is None else identity.verdicts()
    ahead: dict[int, tuple[int, int | None]] = {}
    for p, offset in covered.items():
        verdict = verdicts.get(p)
        if p not in end:
            ahead[p] = (offset, None)
        elif verdict is Verdict.SAME:
            end[p] = max(end[p], offset)  # the log holds the snapshot's last record: it ends past it
        elif (verdict is not None and verdict.other_log) or (verdict is None and offset > end[p]):
            ahead[p] = (offset, end[p])  # without a verdict (no check made), the end must do
    if ahead:
        proof = None if identity is None or not identity.other_log else identity.describe()
        return RestorePlan(None, {p: first.get(p, 0) for p in end}, end, ahead=ahead, rejected=snapshot, proof=proof)
    start, lost = {}, {}
    for p in end:
        start[p] = max(covered.get(p, 0), first.get(p, 0))
        if covered.get(p, 0) < first.get(p, 0):
            lost[p] = (covered.get(p, 0), first[p])
    return RestorePlan(snapshot, start, end, lost=lost)


def _positions(offsets: Mapping[int, int]) -> str:
    return "{" + ", ".join(f"{p}: {o}" for p, o in sorted(offsets.items())) + "}"
