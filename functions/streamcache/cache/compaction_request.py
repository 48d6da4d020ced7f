"""Short tails by design: a cold start that replayed a long tail asks for a compaction.

Replaying the log's tail is what a cold start still pays for, record by record. When a restore
replayed more than ``STREAMCACHE_COMPACT_AFTER_RECORDS`` records, the instance asks the compactor
for a compaction, so that the next cold start begins from a newer snapshot. The request is fire and
forget: it runs on its own thread after the restore is done, so neither the cold start nor any
request waits for it; it is made at most once per cold start (per :class:`CompactionTrigger`); a
failure is logged and shown in ``/health`` (``cold_start.compaction_request``), never raised to a
client. Two instances asking at once is harmless: compactions already tolerate each other.

What "ask" means is a plain callable handed in by the edge (:mod:`streamcache.cache.app`): on OCI a
detached invoke of the compactor function; under ``streamcache dev`` the same, against the local
invoke endpoint.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from typing import Callable

log = logging.getLogger("streamcache.restore")

#: Sends one compaction request with this body; returns a reference to it (the invoke's
#: ``opc-request-id``). Raises on failure.
RequestCompaction = Callable[[dict], str]


class RequestState(enum.Enum):
    """Where this cold start's compaction request stands (``/health``: ``compaction_request``)."""

    PENDING = "pending"  # the restore has not finished: nothing decided yet
    OFF = "off"  # STREAMCACHE_COMPACT_AFTER_RECORDS=0
    NOT_NEEDED = "not_needed"  # the tail was short enough
    NOT_CONFIGURED = "not_configured"  # a long tail, but no compactor to ask (no STREAMCACHE_COMPACTOR_FUNCTION_ID)
    SENDING = "sending"
    SENT = "sent"  # the platform accepted it (202)
    FAILED = "failed"  # see ``compaction_request_error``; the next cold start asks again


def decide(records_replayed: int, threshold: int, configured: bool) -> RequestState:
    """What a restore that replayed ``records_replayed`` records should do: ``SENDING`` means ask."""
    if threshold <= 0:
        return RequestState.OFF
    if records_replayed <= threshold:
        return RequestState.NOT_NEEDED
    return RequestState.SENDING if configured else RequestState.NOT_CONFIGURED


class CompactionTrigger:
    """Decides once, after a restore, and sends the request on a daemon thread."""

    def __init__(self, threshold: int, request: RequestCompaction | None) -> None:
        self.threshold = threshold
        self._request = request
        self._lock = threading.Lock()
        self.state = RequestState.PENDING
        self.error: str | None = None
        self.reference: str | None = None
        self.records_replayed: int | None = None
        self.thread: threading.Thread | None = None  # tests join it; nothing else waits for it

    def after_restore(self, records_replayed: int) -> RequestState:
        """Called when a restore finished: the decision. Only the first call decides; later ones
        change nothing and return where the request stands."""
        with self._lock:
            if self.state is not RequestState.PENDING:
                return self.state
            self.records_replayed = records_replayed
            decided = self.state = decide(records_replayed, self.threshold, self._request is not None)
            if decided is RequestState.SENDING:
                self.thread = threading.Thread(target=self._send, args=(records_replayed,),
                                               name="streamcache-compaction-request", daemon=True)
                self.thread.start()
            elif decided is RequestState.NOT_CONFIGURED:
                log.warning("cold start replayed %d records (more than %d) but no compactor is configured to ask "
                            "for a compaction (STREAMCACHE_COMPACTOR_FUNCTION_ID)", records_replayed, self.threshold,
                            extra={"fields": {"kind": "compaction_request", "state": decided.value}})
            return decided  # not self.state: the request's thread may have moved it on already

    def _send(self, records_replayed: int) -> None:
        body = {"action": "compact", "reason": "long_tail", "records_replayed": records_replayed,
                "threshold": self.threshold}
        started = time.perf_counter()
        fields: dict = {"kind": "compaction_request", "records_replayed": records_replayed, "threshold": self.threshold}
        request = self._request
        try:
            if request is None:  # decide() says SENDING only with a request to send
                raise RuntimeError("no compaction request configured")
            self.reference = request(body)
        except Exception as exc:  # reported in /health and the log; a client never sees it
            self.error = f"{type(exc).__name__}: {exc}"
            self.state = RequestState.FAILED
            log.error("asking for a compaction failed: %s", self.error,
                      extra={"fields": {**fields, "state": self.state.value, "error": self.error}})
            return
        self.state = RequestState.SENT
        log.info("cold start replayed %d records (more than %d): asked for a compaction", records_replayed,
                 self.threshold, extra={"fields": {**fields, "state": self.state.value, "reference": self.reference,
                                                   "duration_ms": round((time.perf_counter() - started) * 1000, 1)}})

    def numbers(self) -> dict:
        """The request's part of the cold start's numbers in ``/health``."""
        return {
            "compaction_requested": self.state is RequestState.SENT,
            "compaction_request": self.state.value,
            "compaction_request_error": self.error,
            "compact_after_records": self.threshold,
        }
