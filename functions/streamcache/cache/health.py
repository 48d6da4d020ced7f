"""The ``/health`` of a cache instance as a typed value: its phase, what is wrong, and its numbers.

Built by :meth:`streamcache.cache.app.CacheApp.health`; :meth:`Health.to_json` is the body of
``GET /health`` and of the direct invoke ``{"operation": "health"}`` (the OpenAPI document's
``Health`` schema). ``status`` and ``phase`` are the same value, kept both for health checkers that
read either.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class Phase(StrEnum):
    """Where an instance is in its life."""

    STARTING = "starting"  # no request has arrived yet; nothing loaded
    RESTORING = "restoring"  # loading the newest snapshot and replaying the stream's tail
    SERVING = "serving"  # restored; answers reflect every acknowledged write
    DEGRADED = "degraded"  # serving, but acknowledged writes may be missing (``problems`` says why)
    REFUSING = "refusing"  # the log no longer matches the data (``problems`` says why): only /health answers
    # reloading the table in the background (``problems`` says why): default reads are served from the
    # old table, marked stale; strong reads, after= reads and writes are answered 503 restoring
    RECOVERING = "recovering"

    @property
    def restored(self) -> bool:
        """True when requests are answered by the service (during a reload, from the old table)."""
        return self in (Phase.SERVING, Phase.DEGRADED, Phase.RECOVERING)


class ProblemKind(StrEnum):
    """Why an instance is degraded; each has a message that says what an operator should do."""

    SNAPSHOT_AHEAD_OF_LOG = "snapshot_ahead_of_log"  # the stream was recreated, or settings name another
    DATA_LOSS = "data_loss"  # retention dropped records no snapshot covers
    DATA_LOSS_RECORDED = "data_loss_recorded"  # a compactor recorded such a loss earlier; not acknowledged
    LOG_REGRESSION = "log_regression"  # the stream went backwards under a running instance
    PARTITION_COUNT_CHANGED = "partition_count_changed"  # the log's partitions are not the data's: refusing
    SETTINGS_DIFFER = "settings_differ"  # the snapshot was folded with another quota than this instance's
    RELOADING = "reloading"  # the table is being reloaded (a proven log regression, a gap left by retention)


@dataclass(frozen=True)
class HealthProblem:
    kind: ProblemKind
    message: str
    details: dict = field(default_factory=dict)  # records_lost, detected_at_ms, … as the kind has them

    def to_json(self) -> dict:
        return {"kind": self.kind.value, **self.details, "message": self.message}


@dataclass(frozen=True)
class Health:
    phase: Phase
    problems: tuple[HealthProblem, ...]
    cold_start: dict  # the cold start's numbers: snapshot used, records replayed, durations
    instance: str
    version: str
    stream: str
    keys: int
    positions: dict[int, int]
    lag_records: int | None
    staleness_ms: float | None
    staleness_bound_ms: int
    records_applied: int
    records_skipped: int
    log_watch: dict  # log_regressions, log_regression
    records_misplaced: int = 0  # skipped: valid records in another partition than their key's
    bytes_used: int = 0  # the table's accounted size (key + value + 64 B an entry), as the quota counts it
    max_bytes: int | None = None  # the quota (STREAMCACHE_MAX_BYTES); None: no bound
    log_reads: dict = field(default_factory=dict)  # the read pacing: throttled, since, interval_ms, ...

    def with_problem(self, problem: HealthProblem) -> "Health":
        """This health with one more problem: a serving instance with a problem is degraded (one that
        is recovering or refusing says so instead)."""
        phase = Phase.DEGRADED if self.phase is Phase.SERVING else self.phase
        return replace(self, phase=phase, problems=(*self.problems, problem))

    def to_json(self) -> dict:
        return {
            "status": self.phase.value,
            "phase": self.phase.value,
            **self.cold_start,
            "problems": [p.to_json() for p in self.problems],
            "instance": self.instance,
            "version": self.version,
            "stream": self.stream,
            "keys": self.keys,
            "positions": {str(p): o for p, o in self.positions.items()},
            "lag_records": self.lag_records,
            "staleness_ms": self.staleness_ms,
            "staleness_bound_ms": self.staleness_bound_ms,
            "records_applied": self.records_applied,
            "records_skipped": self.records_skipped,
            "records_misplaced": self.records_misplaced,
            "bytes_used": self.bytes_used,
            "max_bytes": self.max_bytes,
            **self.log_watch,
            "log_reads": self.log_reads,
        }
