"""The compactor function's logic: settings parsed once, clients kept while the container is hot.

Invoked directly (no API Gateway), so the platform answers 200 and the status travels in the JSON
answer, which is also written as one JSON log line::

    (empty body) or {"action": "compact"}       -> one compaction (the Resource Scheduler's invoke)
      -> {"status": 200, "action": "compact", "outcome": "written", "object": "snapshots/...", ...}
    an OCI Events event of Object Storage      -> streamcache.compactor.importer.handle_object_event(...)
      {"eventType": "com.oraclecloud.objectstorage.createobject", "data": {...}, ...}

A JSON object with an ``eventType`` (or CloudEvents 1.0 ``type``) never runs a compaction: events
other than Object Storage's are refused. Any other JSON object runs one unless its ``action`` is
something else (the Resource Scheduler's body is configured by the operator; unknown keys are
tolerated so that a schedule never stops compacting over an extra field).

Statuses: 200 done; 400 a body that is none of these (``invalid_json``, ``invalid_body``,
``unknown_action``, ``unsupported_event``); 409 ``snapshot_ahead_of_log`` (compaction refused, see
the message); 500 ``misconfigured`` or ``internal`` (a bug); 503 ``stream_unavailable`` or ``snapshot_store_unavailable`` (retry later). A body,
however malformed, never crashes the function and never changes anything.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

import orjson

from streamcache.adapters.oci_secrets import with_secrets
from streamcache.compactor import compactor_metrics
from streamcache.compactor.compaction import CompactionOutcome, compact
from streamcache.compactor.importer import ImportConfig  # light: the parsing modules only
from streamcache.core.errors import ConfigError
from streamcache.core.snapshot_chain import ChainPolicy
from streamcache.metrics import Metrics, open_metrics
from streamcache.ports import MutationLog, SnapshotStore
from streamcache.replay.progress import Progress
from streamcache.settings import Settings
from streamcache.statuses import INTERNAL, for_error

log = logging.getLogger("streamcache.compactor")

#: Object Storage events go to the importer, which imports new objects under the import prefix and
#: answers "ignored" for the others (deletions, the compactor's own snapshot writes).
OBJECT_EVENT_PREFIX = "com.oraclecloud.objectstorage."


class BadPayload(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_body(body: bytes) -> tuple[str, dict | None]:
    """``("compact", None)`` or ``("import", event)``; raises :class:`BadPayload` for anything else."""
    if not body.strip():
        return "compact", None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPayload("invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadPayload("invalid_body", "the body must be a JSON object: {\"action\": \"compact\"} or an OCI event")
    event_type = doc.get("eventType", doc.get("type"))  # OCI Events (CloudEvents 0.1), or CloudEvents 1.0
    if event_type is not None:
        if not isinstance(event_type, str) or not event_type.startswith(OBJECT_EVENT_PREFIX):
            raise BadPayload("unsupported_event", f"event type {str(event_type)[:200]!r}: only Object Storage "
                                                  f"object events ({OBJECT_EVENT_PREFIX}*) are handled here")
        return "import", doc
    action = doc.get("action", "compact")
    if action != "compact":
        raise BadPayload("unknown_action", f"action {str(action)[:200]!r}: the only action is \"compact\"")
    return "compact", None


class CompactorApp:
    """One compactor container. ``handle`` never raises: every problem becomes a JSON answer."""

    def __init__(self, settings: Settings, store: SnapshotStore | None = None,
                 mutation_log: MutationLog | None = None, progress: Callable[[str], Progress] | None = None,
                 metrics: Metrics | None = None) -> None:
        # The edge: what the compactor needs from its settings, as plain values.
        self.stream_id, self.retention, self.max_bytes = settings.stream_id, settings.retention(), settings.max_bytes
        self.chain = ChainPolicy(settings.snapshot_max_deltas, settings.snapshot_delta_percent / 100)
        self.imports = import_config(settings)
        self._open_store, self._open_log = settings.open_store, settings.open_log
        self._store = store
        self._log = mutation_log
        self._progress = progress or Progress
        self._lock = threading.Lock()  # one compaction at a time per container
        self.metrics = open_metrics(settings, "compactor") if metrics is None else metrics

    @property
    def store(self) -> SnapshotStore:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    @property
    def mutation_log(self) -> MutationLog:
        if self._log is None:
            self._log = self._open_log()
        return self._log

    def handle(self, body: bytes, request_id: str = "") -> dict:
        started = time.perf_counter()
        try:
            action, event = parse_body(body)
        except BadPayload as exc:
            action, answer = "invalid", {"status": 400, "error": exc.code, "message": str(exc)}
        else:
            answer = self._run(action, event)
        answer.setdefault("action", action)
        fields = {"request_id": request_id, "kind": "compactor", "duration_total_ms": round((time.perf_counter() - started) * 1000, 1)}
        compactor_metrics.record(self.metrics, action, answer, fields["duration_total_ms"], self.stream_id,
                                 lambda prefix: self.store.list(prefix))
        level = logging.ERROR if answer["status"] >= 500 or answer["status"] == 409 else (
            logging.WARNING if answer["status"] >= 400 else logging.INFO)
        log.log(level, "compactor %s: %s", action, answer.get("outcome") or answer.get("error") or answer["status"],
                extra={"fields": {**answer, **fields}})
        return answer

    def _run(self, action: str, event: dict | None) -> dict:
        try:
            with self._lock:
                return self.compact() if action == "compact" else self.import_object(event or {})
        except Exception as exc:  # the one table decides; a bug is a JSON 500 rather than the FDK's bare 502
            problem = for_error(exc)
            if problem is INTERNAL:
                log.exception("unhandled error in the compactor (%s)", action)
            return {"status": problem.status, "error": problem.code, "message": problem.message}

    def compact(self) -> dict:
        summary = compact(self.mutation_log, self.store, self.stream_id, self.retention,
                          progress=self._progress("compaction"), max_bytes=self.max_bytes, chain=self.chain)
        answer = {"status": 200, "action": "compact", **summary.to_json()}
        if summary.outcome is CompactionOutcome.REFUSED:
            answer.update(status=409, error="snapshot_ahead_of_log", message=summary.problem)
        elif summary.unacknowledged_losses:
            answer["warning"] = (
                summary.data_loss.describe() if summary.data_loss is not None else
                f"unacknowledged data-loss records: {', '.join(summary.unacknowledged_losses)}; acknowledge "
                "with `streamcache snapshots --acknowledge-data-loss`"
            )
        return answer

    def import_object(self, event: dict) -> dict:
        from streamcache.compactor import importer  # imported on first use: compaction does not need it

        answer = importer.handle_object_event(event, self.imports, self.mutation_log)
        return {"status": 200, "action": "import", **answer}  # logged once, by handle()

    def close(self) -> None:
        for resource in (self._store, self._log):
            if resource is not None:
                resource.close()


def import_config(settings: Settings) -> ImportConfig:
    """What an import needs from the settings: where objects come from, the limits, the source."""
    return ImportConfig(source_url=settings.import_url or settings.snapshot_url,
                        max_value_bytes=settings.max_value_bytes, max_ttl_seconds=settings.max_ttl_seconds,
                        max_record_bytes=settings.max_record_bytes, prefix=settings.import_prefix,
                        event_source=settings.event_source, store_options=settings.snapshot_store_options())


def build_from_env(env=None) -> CompactorApp:
    """The compactor of the function's configuration; it needs a snapshot store."""
    settings = Settings.from_env(with_secrets(os.environ if env is None else env))
    if not settings.snapshot_url:
        raise ConfigError(["STREAMCACHE_SNAPSHOT_URL is required by the compactor (where snapshots live)"])
    return CompactorApp(settings)


def answer_invoke(get_app: Callable[[], CompactorApp], body: bytes, request_id: str = "") -> bytes:
    """The JSON answer to one invoke, whatever happens (func.py's whole job)."""
    try:
        app = get_app()
    except ConfigError as exc:
        problem = for_error(exc)
        answer = {"status": problem.status, "error": problem.code, "message": problem.message, "action": "none"}
        log.error("compactor misconfigured: %s", exc, extra={"fields": {"request_id": request_id, "kind": "compactor", **answer}})
        return orjson.dumps(answer)
    return orjson.dumps(app.handle(body, request_id))
