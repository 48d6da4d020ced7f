"""What the compactor tells OCI Monitoring after each invoke, read from its answer.

Posted at the end of every invoke (a compaction runs at most once per schedule, so this is at most a
post a minute), and waited for, bounded, before the answer leaves: the container may be frozen
right after it.

``SnapshotAgeSeconds`` is what the data-loss alarm reads: how long the records that no snapshot
covers may have been waiting. 0 when the compaction leaves the newest snapshot covering the whole
log (``written`` or ``unchanged``); otherwise (refused, failed) now minus the as-of time of the
newest snapshot in the store, read from the object names (a listing, no download). When the store
cannot be listed either, nothing is posted for it, and the absence alarm ("no compaction") speaks.
"""

from __future__ import annotations

import logging
from typing import Callable

from streamcache.core.snapshot_names import newest_first, parse_name, stream_prefix
from streamcache.metrics import Metrics

log = logging.getLogger("streamcache.compactor")

#: How long the answer waits for its post at most (the ingestion call's own timeout is longer).
POST_WAIT_S = 2.0


def record(metrics: Metrics, action: str, answer: dict, duration_ms: float, stream: str,
           list_names: Callable[[str], list[str]]) -> None:
    """Record one invoke's answer and post it."""
    if not metrics.enabled:
        return
    status = int(answer.get("status", 500))
    outcome = str(answer.get("outcome") or answer.get("error") or status)
    metrics.count("CompactorInvokes", action=action, outcome=outcome)
    if action == "compact":
        metrics.observe("CompactionMs", duration_ms)
        if status == 200:
            metrics.count("Compactions", outcome=outcome)
            metrics.count("RecordsFolded", answer.get("records_folded", 0))
            metrics.gauge("TailRecordsAtStart", _tail(answer))
            if answer.get("bytes"):
                metrics.gauge("SnapshotBytes", answer["bytes"])
            metrics.gauge("SnapshotAgeSeconds", 0.0)
        else:
            age = _age_from_store(metrics, stream, list_names)
            if age is not None:
                metrics.gauge("SnapshotAgeSeconds", age)
    elif action == "import" and status == 200:
        metrics.count("ImportedRecords", answer.get("imported", 0))
        metrics.count("ImportBadLines", answer.get("bad_count", 0))
    metrics.flush()
    poster = getattr(metrics, "poster", None)
    if poster is not None:
        poster.wait(POST_WAIT_S)


def _tail(answer: dict) -> int:
    """Records the log held past the base snapshot when the compaction started."""
    before, end = answer.get("positions_before") or {}, answer.get("log_end") or {}
    return sum(max(0, int(end[p]) - int(before.get(p, 0))) for p in end)


def _age_from_store(metrics: Metrics, stream: str, list_names: Callable[[str], list[str]]) -> float | None:
    try:
        names = newest_first(list_names(stream_prefix(stream)), stream)
    except Exception as exc:  # the store is down too: the absence alarm covers it
        log.warning("snapshot age unknown: the store cannot be listed: %s", exc)
        return None
    if not names:
        return None
    return max(0.0, metrics.now() - parse_name(names[0]).as_of_ms / 1000)
