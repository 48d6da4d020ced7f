"""Cold start of a cache instance: newest valid snapshot + the log's tail, in a thread requests wait for.

The first request starts the restore in a background thread and waits for it within its own deadline
budget; so does every request after it until the restore is done. A request whose budget runs out
first is answered ``503 {"error": "restoring"}`` with ``Retry-After: 1`` (``GET /health`` is answered
instead, with ``phase: restoring`` and the progress). A restore that fails (stream or snapshot store
unreachable) is reported to the requests waiting for it and retried by the next request.

The restore: load the newest snapshot that verifies (older ones when the newest is corrupt), read the
data-loss records beside it, capture the log's bounds, plan (:func:`~streamcache.core.restore.plan_restore`),
replay the tail up to the captured end, install the table in the replica. In the plain case the
tail is read while the image loads (:mod:`streamcache.cache.restore_prefetch`). Then the phase is
``serving``, or ``degraded`` when writes may be missing:

- tail truncated: retention dropped records no snapshot covers. The instance serves what there is
  (the snapshot and everything the log still holds) and says which offsets are gone.
- snapshot ahead of log: the stream was recreated (or the settings name the wrong one). The snapshot
  is not loaded; the instance serves what the log holds.
- a data-loss record exists (a compactor met a truncated tail earlier): the snapshot covers the gap,
  the record says what was lost; degraded until an operator acknowledges it.
- the snapshot was folded with another quota than this instance applies: degraded, and said (every
  process must apply the same quota, or they decide puts differently).

The snapshot is checked against the log first (:mod:`streamcache.replay.identity`): a snapshot of
another log is never loaded, whatever offsets the log admits to. A log whose partition count is not
the snapshot's makes the phase ``refusing``: every request but ``/health`` is answered 503
``log_mismatch`` (the restore is tried again at most every :data:`REFUSED_RETRY_S`).

The same restore **reloads** a running instance (:meth:`ColdStart.reload`, asked for by the replica):
when the log proved it went backwards, retention dropped records the instance had not applied, or
the tail grew longer than a request reads (:data:`~streamcache.cache.replica.RELOAD_TAIL_RECORDS`).
The phase is ``recovering`` meanwhile: the old table stays installed and default reads are served
from it, marked stale; everything that needs the log or the new table (strong reads, ``after=``
reads, writes, before anything is appended) is answered 503 ``restoring`` at once. The newest
snapshot that belongs to the log as it now is covers what it can (a gap retention left behind it
disappears); what none covers ends the reload ``degraded`` with the data-loss problem.

Cold-start duration is measured from the start of the process (``/proc/self/stat`` against
``/proc/uptime``; the import of this module where /proc is missing) to the end of the restore.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from typing import Callable

from streamcache.cache.compaction_request import CompactionTrigger, RequestCompaction
from streamcache.cache.health import HealthProblem, Phase, ProblemKind
from streamcache.cache.memory_release import trim_malloc
from streamcache.cache.replica import Replica
from streamcache.cache.restore_prefetch import load_with_tail
from streamcache.core.data_loss import DataLossRecord
from streamcache.core.errors import LogMismatch, Restoring
from streamcache.core.records import Position
from streamcache.core.restore import RestoreAction, RestorePlan, plan_restore
from streamcache.core.table import Table
from streamcache.ports import SnapshotStore
from streamcache.replay.catalog import LoadedSnapshot, Skipped, load_newest_valid, read_losses
from streamcache.replay.fold import CHUNK_RECORDS, apply_decoded, gc_paused, replay
from streamcache.replay.identity import check_header
from streamcache.replay.progress import Progress

log = logging.getLogger("streamcache.restore")



def process_age_s() -> float | None:
    """Seconds since this process started, from /proc; ``None`` where that cannot be read."""
    try:
        with open("/proc/self/stat") as stat:
            text = stat.read()
        with open("/proc/uptime") as uptime:
            up = float(uptime.read().split()[0])
        # Field 22 (starttime, clock ticks after boot); fields are counted after the ")" of comm.
        start_ticks = int(text[text.rindex(")") + 2 :].split()[19])
        return max(0.0, up - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


_AGE_AT_IMPORT = process_age_s()
#: time.monotonic() when the process started (or when this module was imported).
PROCESS_STARTED = time.monotonic() - (_AGE_AT_IMPORT or 0.0)
COLD_START_FROM = "process start" if _AGE_AT_IMPORT is not None else "module import"
#: A restore that refused (the log's partition count is not the data's) is tried again after this.
REFUSED_RETRY_S = 30.0


class _Attempt:
    def __init__(self) -> None:
        self.finished = threading.Event()
        self.error: BaseException | None = None


class ColdStart:
    """Restores ``replica`` once; :meth:`ensure` is what every request calls first."""

    def __init__(
        self,
        replica: Replica,
        stream: str,
        store_factory: Callable[[], SnapshotStore] | None,
        *,
        clock: Callable[[], float] | None = None,
        chunk_records: int = CHUNK_RECORDS,
        process_started: float | None = None,
        compact_after_records: int = 0,
        request_compaction: RequestCompaction | None = None,
    ) -> None:
        """``request_compaction`` asks for a compaction when a restore replayed more than
        ``compact_after_records`` records (0: never); see :mod:`streamcache.cache.compaction_request`."""
        self.replica = replica
        self.stream = stream
        self._store_factory = store_factory
        self._store: SnapshotStore | None = None
        self._clock = clock  # wall clock for the snapshot's age; None: time.time at each call
        self._chunk_records = chunk_records
        self._process_started = PROCESS_STARTED if process_started is None else process_started
        self._lock = threading.Lock()
        self._attempt: _Attempt | None = None
        self.phase = Phase.STARTING
        self.progress: Progress | None = None
        self.snapshot: LoadedSnapshot | None = None
        self.skipped: list[Skipped] = []
        self.plan: RestorePlan | None = None
        self.losses: list[DataLossRecord] = []
        self.records_replayed = 0
        self.cold_start_ms: float | None = None
        self.restore_ms: float | None = None
        self.compaction = CompactionTrigger(compact_after_records, request_compaction)
        self._refused_at: float | None = None
        self.reload_reason: str | None = None  # why the running reload started (phase recovering)
        self.reloads = 0
        replica.reloader = self.reload

    @property
    def done(self) -> bool:
        return self.phase.restored

    def ensure(self, wait_s: float) -> None:
        """Return once the instance is restored. Starts the restore if none is running, waits at most
        ``wait_s`` seconds, then raises :class:`Restoring`, or the error the restore failed with."""
        if self.done:
            return
        with self._lock:
            attempt = self._attempt
            failed = None if attempt is None else attempt.error
            if self.phase is Phase.REFUSING and self.plan is not None:
                assert self._refused_at is not None
                if time.monotonic() - self._refused_at < REFUSED_RETRY_S:
                    raise LogMismatch(self.plan.describe())
                attempt = None  # look again: the operator may have acted
            if attempt is None or failed is not None:
                attempt = self._attempt = _Attempt()
                self.phase = Phase.RESTORING
                threading.Thread(target=self._run, args=(attempt,), name="streamcache-restore", daemon=True).start()
        attempt.finished.wait(max(0.0, wait_s))
        if self.done:
            return
        if self.phase is Phase.REFUSING and self.plan is not None:
            raise LogMismatch(self.plan.describe())
        if attempt.error is not None:
            raise attempt.error
        if failed is not None:  # the retry is still running: what stopped the last attempt says more
            raise failed
        raise Restoring(self.describe_progress())

    def reload(self, reason: str) -> None:
        """Reload the replica's table in the background (see the module's docstring); nothing when a
        restore runs already. Called by every operation that meets a reload still due, so one that
        failed is tried again."""
        with self._lock:
            attempt = self._attempt
            if attempt is not None and not attempt.finished.is_set():
                return
            if self.phase is Phase.REFUSING:
                return  # ensure() decides when to look again
            self.reloads += 1
            self.reload_reason = reason
            self.phase = Phase.RECOVERING
            attempt = self._attempt = _Attempt()
            log.warning("reloading the table in the background: %s", reason,
                        extra={"fields": {"kind": "reload", "reloads": self.reloads}})
            threading.Thread(target=self._run, args=(attempt,), name="streamcache-reload", daemon=True).start()

    def describe_progress(self) -> str:
        return "restoring: " + (self.progress.describe() if self.progress is not None else "starting")

    def _run(self, attempt: _Attempt) -> None:
        try:
            with gc_paused():  # see fold.gc_paused; the restore allocates millions of acyclic objects
                self._restore()
            # The restored table lives as long as the container: keep the collector from scanning it
            # again and again (a full collection of 1M entries takes ~0.3 s, in some request).
            gc.freeze()
            # What the restore freed stays in glibc's arenas unless given back (see memory_release):
            # ~35 MB at 1M keys with a 10,000-record tail, a fifth of what the table holds.
            trim_malloc()
        except BaseException as exc:  # reported to the requests waiting; the next request retries
            attempt.error = exc
            log.error("cold start failed (the next request retries): %s: %s", type(exc).__name__, exc,
                      extra={"fields": {"kind": "cold_start_failed"}})
        finally:
            attempt.finished.set()
        if attempt.error is None and self.done:
            # After the waiting requests are released: a long tail asks for a compaction on its own
            # thread, once, and nothing waits for it.
            self.compaction.after_restore(self.records_replayed)

    def _restore(self) -> None:
        started = time.monotonic()
        self.progress = progress = Progress("restore")
        loaded = fast = None
        log_ = self.replica.log
        if self.phase is Phase.RECOVERING:
            log_.close()  # what the adapter cached (high watermarks, positions) may be of a log that is gone
        if self._store_factory is not None:
            if self._store is None:
                self._store = self._store_factory()
            progress.phase("loading the newest snapshot and reading the log's tail")
            fast = load_with_tail(self._store, self.stream, log_, self.replica.monotonic)
            if fast is None:  # not the plain case: the ordinary path, with every fallback
                result = load_newest_valid(self._store, self.stream, progress)
                loaded, self.skipped, catalog = result.snapshot, result.skipped, result.catalog
            else:
                loaded, self.skipped, catalog = fast.loaded, [], fast.catalog
            self.losses = list(read_losses(self._store, catalog).values())
        if fast is None:
            began_at = self.replica.monotonic()  # before the bounds: writes acknowledged earlier are in them
            bounds = log_.bounds()
            identity = None if loaded is None else check_header(log_, loaded.header, bounds)
            plan = plan_restore(loaded.header if loaded else None, bounds, identity)
        else:
            began_at, plan = fast.began_at, fast.plan
        self.plan = plan
        if plan.refused:
            self._refused_at = time.monotonic()
            self.phase = Phase.REFUSING
            progress.finish(self.phase.value)
            log.error(plan.describe(), extra={"fields": {"kind": "cold_start", "phase": self.phase.value,
                                                         "problem": ProblemKind.PARTITION_COUNT_CHANGED.value}})
            return
        self.snapshot = loaded if plan.snapshot is not None else None
        table = loaded.table if self.snapshot is not None else Table()
        table.quota = self.replica.quota  # before the tail: the quota decides outcomes alike everywhere
        for partition, start in plan.start.items():
            # Where replay starts is where this table stands, even where retention dropped what came
            # before (reported below): later catch-ups must not ask the stream for offsets it lost.
            if start > 0:
                table.skip(Position(partition, start - 1))
        progress.set_total(plan.records_to_replay)
        progress.phase("replaying the log's tail")
        if fast is None or fast.records is None:  # no tail read ahead: read it in chunks
            stats = replay(table, log_, plan.start, plan.end, progress, self._chunk_records)
        else:
            with table.batch():
                stats = apply_decoded(table, fast.records)
            fast.records.clear()
        self.replica.install(table, plan.end, began_at, stats)
        self.records_replayed = stats.read
        if loaded is not None:
            loaded.table = Table()  # the replica owns the table now; keep only the description
        finished = time.monotonic()
        self.restore_ms = (finished - started) * 1000
        if self.cold_start_ms is None:  # a reload is not a cold start
            self.cold_start_ms = (finished - self._process_started) * 1000
        degraded = plan.degraded or bool(self.losses) or self._settings_differ() is not None
        self.phase = Phase.DEGRADED if degraded else Phase.SERVING
        progress.finish(self.phase.value)
        self._log_outcome(plan)

    def _log_outcome(self, plan: RestorePlan) -> None:
        fields = {"kind": "cold_start", "phase": self.phase.value, **self.numbers()}
        if self.phase is Phase.DEGRADED:
            for problem in self.problems():
                log.error(problem.message, extra={"fields": {**fields, "problem": problem.kind.value}})
        log.info("cold start: %s", plan.describe(), extra={"fields": fields})

    def _settings_differ(self) -> str | None:
        """Why the snapshot's quota is not this instance's, or ``None``."""
        header = None if self.snapshot is None else self.snapshot.header
        quota = self.replica.quota
        own = quota.max_bytes if quota is not None else 0
        if header is None or header.max_bytes is None or header.max_bytes == own:
            return None
        return (f"the snapshot {self.snapshot.name} was folded with STREAMCACHE_MAX_BYTES={header.max_bytes} and this "
                f"instance applies {own}: every instance and the compactor must apply the same quota, or they "
                "decide puts differently. Operator: give every function the same setting.")

    def problems(self) -> list[HealthProblem]:
        """What is wrong with the restored data, and what an operator should do (for /health, logs)."""
        plan = self.plan
        if self.phase is Phase.REFUSING and plan is not None and plan.partitions_changed is not None:
            was, now = plan.partitions_changed
            return [HealthProblem(ProblemKind.PARTITION_COUNT_CHANGED, plan.describe(),
                                  {"snapshot_partitions": was, "log_partitions": now})]
        if not self.done:
            return []
        out = []
        if self.phase is Phase.RECOVERING and self.reload_reason is not None:
            out.append(HealthProblem(ProblemKind.RELOADING, self.reload_reason))
        if plan is not None and plan.action is RestoreAction.STREAM_MISMATCH:
            out.append(HealthProblem(ProblemKind.SNAPSHOT_AHEAD_OF_LOG, plan.describe()))
        elif plan is not None and plan.action is RestoreAction.REPLAY_WITH_LOSS:
            out.append(HealthProblem(ProblemKind.DATA_LOSS, plan.describe(), {"records_lost": plan.records_lost}))
        for loss in self.losses:
            out.append(HealthProblem(ProblemKind.DATA_LOSS_RECORDED, loss.describe(),
                                     {"records_lost": loss.records_lost, "detected_at_ms": loss.detected_at_ms}))
        differ = self._settings_differ()
        if differ is not None:
            out.append(HealthProblem(ProblemKind.SETTINGS_DIFFER, differ))
        return out

    def records_left(self) -> int | None:
        """Records still to replay while restoring (``None`` before the plan is made)."""
        if self.plan is None:
            return None
        done = self.records_replayed if self.done else (self.progress.done if self.progress else 0)
        return max(0, self.plan.records_to_replay - done)

    def numbers(self) -> dict:
        """The cold start's part of /health: the snapshot used, what was replayed, how long it took."""
        now_ms = int((self._clock or time.time)() * 1000)
        return {
            "snapshot": None if self.snapshot is None else self.snapshot.describe(now_ms),
            "snapshots_skipped": [s.to_json() for s in self.skipped],
            "records_replayed": self.records_replayed if self.done else (self.progress.done if self.progress else 0),
            "records_to_replay": None if self.plan is None else self.plan.records_to_replay,
            "restore_ms": None if self.restore_ms is None else round(self.restore_ms, 1),
            "cold_start_ms": None if self.cold_start_ms is None else round(self.cold_start_ms, 1),
            "cold_start_from": COLD_START_FROM,
            **self.compaction.numbers(),
        }
