"""Bulk import: an object created under the import prefix becomes put records on the stream.

The compactor function calls :func:`handle_object_event` with the OCI Events body (oci_events.py).
The object, JSON Lines of ``{"key", "value", "ttl"?, "content_type"?}`` (core/import_lines.py), is
streamed from the store chunk by chunk and split into lines as it arrives, never held whole; valid
lines are encoded (core/records.py) and appended in batches (``MutationLog.append_many``, acks=all);
bad lines are counted and reported (the first :data:`MAX_REPORTED_BAD_LINES`, with line numbers)
while the good ones land.

Idempotence, because OCI may deliver an event twice (and a failed import may be retried):

- every record's request id is derived from the object's identity (namespace, bucket, name, eTag)
  and the line number, so a copy appended again within the log's de-duplication window (120 s of log
  time per partition, ``core/table.DEDUP_WINDOW_MS``) changes nothing;
- once every record is acknowledged, a create-only completion marker ``import-markers/<identity>.json``
  is written beside the imports, and an event whose marker exists is answered as a duplicate without
  reading the object, however late it comes.

Only objects under the import prefix (``STREAMCACHE_IMPORT_PREFIX``, default ``imports/``) are imported: the compactor's own
snapshot writes and the markers also emit object events (oci-facts.md gotcha 19), and they are
answered ``"action": "ignored"``. Answers (the compactor's JSON body; the compactor also logs each one
as a JSON line, so this module does not log)::

    {"status": 200, "action": "import", "object": "imports/a.jsonl", "lines": 3, "imported": 2,
     "bad_lines": [{"line": 2, "reason": "key is missing or not a string"}], "bad_count": 1,
     "skipped_duplicate": false, "duration_ms": 41}

Statuses: 200 done (bad lines do not change it; read ``bad_count``); 400 not an object event we can
act on, an object name no store can hold, or a bucket imports are not read from (``error``,
``message``; nothing appended); 404 the object is gone; 503 the store or the stream failed part-way
(``imported`` says how many records had landed; no marker is written, so a redelivery imports again,
de-duplicated within the window) or the function's OCI settings are unusable.

Which store holds the object (:func:`store_for`): the bucket of ``STREAMCACHE_IMPORT_URL`` if
configured, else the snapshot bucket (``STREAMCACHE_SNAPSHOT_URL``); ``file://<data-dir>/`` under ``streamcache dev``. With an
``oci://`` URL, an event naming any other bucket is refused (400 ``foreign_bucket``), so a misrouted
or forged event cannot make the function read another bucket it has access to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping
from urllib.parse import urlsplit

import orjson

from streamcache.adapters.urls import open_snapshot_store
from streamcache.core import records
from streamcache.core.errors import ConfigError, InvalidRequest, LogUnavailable, ValueTooLarge
from streamcache.core.import_lines import TOO_LONG, BadLine, is_blank, parse_line, split_lines
from streamcache.compactor.object_events import CONTENT_EVENT_TYPES, InvalidObjectEvent, ObjectEvent, parse_object_event
from streamcache.ports import MutationLog
from streamcache.ports import InvalidSnapshotName, SnapshotExists, SnapshotNotFound, SnapshotStore, SnapshotStoreError

MAX_REPORTED_BAD_LINES = 100
MARKER_PREFIX = "import-markers/"
DEFAULT_IMPORT_PREFIX = "imports/"
#: A batch is appended when it holds this many records or this many bytes, whichever comes first.
BATCH_RECORDS = 5000
BATCH_BYTES = 4 * 1024 * 1024
SOURCE_SUFFIX = "/import"  # CloudEvents source of imported records: "<event_source>/import"



@dataclass(frozen=True)
class ImportConfig:
    """What an import needs, as plain values (the compactor's edge builds it from its settings)."""

    #: Where objects to import live: the import URL if configured, else the snapshot store's URL.
    source_url: str
    max_value_bytes: int
    max_ttl_seconds: int
    max_record_bytes: int
    prefix: str = DEFAULT_IMPORT_PREFIX
    event_source: str = records.DEFAULT_SOURCE
    #: Keyword options of :func:`~streamcache.adapters.urls.open_snapshot_store` (OCI profile, endpoint).
    store_options: Mapping[str, object] = field(default_factory=dict)


StoreOpener = Callable[[ObjectEvent, ImportConfig], SnapshotStore]


def handle_object_event(event: dict, config: ImportConfig, mutation_log: MutationLog, *,
                        clock: Callable[[], float] = time.time, open_store: StoreOpener | None = None) -> dict:
    """Import the object an OCI Object Storage event names; return the answer (see the module doc).

    Never raises for bad input or an unavailable store or stream: every outcome is an answer.
    ``clock`` (seconds) dates the records; ``open_store`` replaces :func:`store_for` (tests)."""
    started = time.perf_counter()
    answer = _run(event, config, mutation_log, clock, open_store or store_for)
    answer["duration_ms"] = round((time.perf_counter() - started) * 1000)
    return answer


def _answer(status: int, name: str | None, action: str = "import", **fields: object) -> dict:
    base: dict = {"status": status, "action": action, "object": name, "lines": 0, "imported": 0,
                  "bad_lines": [], "bad_count": 0, "skipped_duplicate": False}
    base.update(fields)
    return base


def _run(event: dict, config: ImportConfig, mutation_log: MutationLog, clock, open_store: StoreOpener) -> dict:
    try:
        obj = parse_object_event(event)
    except InvalidObjectEvent as exc:
        return _answer(400, None, error=exc.code, message=str(exc))
    prefix = config.prefix
    if obj.event_type not in CONTENT_EVENT_TYPES:
        return _answer(200, obj.name, "ignored", reason=f"{obj.event_type} is not a new object")
    if not obj.name.startswith(prefix) or obj.name == prefix:
        return _answer(200, obj.name, "ignored", reason=f"not under the import prefix {prefix!r}")
    if obj.name.startswith(MARKER_PREFIX):  # whatever the prefix: importing markers would loop forever
        return _answer(200, obj.name, "ignored", reason="a completion marker of an earlier import")
    try:
        store = open_store(obj, config)
    except ForeignBucket as exc:
        return _answer(400, obj.name, error=exc.code, message=str(exc))
    except ConfigError as exc:  # the function's settings, not the event: an operator must fix them
        return _answer(503, obj.name, error="import_not_configured", message="; ".join(exc.problems))
    try:
        return _import(obj, store, config, mutation_log, clock)
    finally:
        store.close()


class ForeignBucket(InvalidRequest):
    """The event names a bucket other than the one imports are configured to come from."""

    code = "foreign_bucket"


def store_for(obj: ObjectEvent, config: ImportConfig) -> SnapshotStore:
    """The store that holds ``obj``: the bucket of ``config.source_url``. With ``oci://`` the event
    must name that very bucket, which is then opened at its root (``oci://BUCKET@NAMESPACE/``); a
    ``file://`` URL is the bucket root itself."""
    configured = config.source_url
    if not configured:
        raise ConfigError(["no bucket to import from: set STREAMCACHE_IMPORT_URL or STREAMCACHE_SNAPSHOT_URL"])
    url = configured
    if urlsplit(configured).scheme == "oci":
        # A hostile or misrouted event must not make the function read another bucket it can reach.
        if urlsplit(configured).netloc != f"{obj.bucket}@{obj.namespace}":
            raise ForeignBucket(f"the event names the bucket {obj.bucket}@{obj.namespace}; "
                                f"imports are read from {configured} only")
        url = obj.store_url  # object names in events are full names: the store has no prefix
    return open_snapshot_store(url, **config.store_options)


def marker_name(obj: ObjectEvent) -> str:
    return f"{MARKER_PREFIX}{obj.identity}.json"


def _import(obj: ObjectEvent, store: SnapshotStore, config: ImportConfig, mutation_log: MutationLog, clock) -> dict:
    marker = marker_name(obj)
    try:
        done = _parse_marker(store.get(marker))
        return _answer(200, obj.name, skipped_duplicate=True, **done)
    except SnapshotNotFound:
        pass
    except SnapshotStoreError as exc:
        return _answer(503, obj.name, error="store_unavailable", message=f"reading the completion marker: {exc}")
    try:
        chunks = store.open_stream(obj.name)
    except InvalidSnapshotName as exc:
        return _answer(400, obj.name, error="invalid_object_name", message=str(exc))
    except SnapshotNotFound:
        return _answer(404, obj.name, error="object_not_found", message=f"{obj.name!r} no longer exists")
    except SnapshotStoreError as exc:
        return _answer(503, obj.name, error="store_unavailable", message=str(exc))

    run = _ImportRun(obj, config, mutation_log, clock)
    try:
        run.consume(chunks)
    except SnapshotStoreError as exc:
        return run.answer(503, error="store_unavailable", message=f"reading {obj.name!r}: {exc}")
    except LogUnavailable as exc:
        return run.answer(503, error="log_unavailable", message=str(exc))
    finally:
        chunks.close()
    answer = run.answer(200)
    summary = {k: answer[k] for k in ("object", "lines", "imported", "bad_lines", "bad_count")}
    summary.update(namespace=obj.namespace, bucket=obj.bucket, etag=obj.etag, finished_ms=int(clock() * 1000))
    try:
        store.put_new(marker, orjson.dumps(summary))
    except SnapshotExists:
        pass  # a twin delivery finished first: same records, same outcome
    except SnapshotStoreError as exc:
        answer["warning"] = f"imported, but the completion marker could not be written: {exc}"
    return answer


def _parse_marker(data: bytes) -> dict:
    """The first import's counts from its marker; a marker that exists means done, even unreadable."""
    try:
        done = orjson.loads(data)
    except orjson.JSONDecodeError:
        done = None
    if not isinstance(done, dict):
        return {"warning": "the completion marker is unreadable; the object was imported before"}
    return {k: done[k] for k in ("lines", "imported", "bad_lines", "bad_count") if k in done}


class _ImportRun:
    """One pass over an object: counts, the bad-line report, and the batch being built."""

    def __init__(self, obj: ObjectEvent, config: ImportConfig, mutation_log: MutationLog, clock) -> None:
        self.obj, self.log, self.clock = obj, mutation_log, clock
        # import-<identity>-<line>, appended in line order: the table de-duplicates imported records by
        # the highest line applied per partition (core/import_dedup.py), not with a row per record.
        self.id_prefix = f"import-{obj.identity[:32]}-"
        self.source = config.event_source + SOURCE_SUFFIX
        self.max_value = config.max_value_bytes
        self.max_ttl = config.max_ttl_seconds
        self.max_record = config.max_record_bytes
        self.lines = self.imported = self.bad_count = 0
        self.bad_lines: list[dict] = []
        self.batch: list[tuple[str, bytes]] = []
        self.batch_bytes = 0

    def consume(self, chunks: Iterator[bytes]) -> None:
        for number, line in split_lines(chunks):
            if line is TOO_LONG:
                self.lines += 1
                self.bad(number, "the line is longer than 4 MiB")
                continue
            if is_blank(line):
                continue
            self.lines += 1
            try:
                item = parse_line(line, self.max_value, self.max_ttl)
                now = int(self.clock() * 1000)
                put = records.Put(item.key, item.value, item.content_type, f"{self.id_prefix}{number}", now,
                                  item.expiry(now))
                encoded = records.encode(put, self.source, self.max_record)
            except BadLine as exc:
                self.bad(number, str(exc))
                continue
            except ValueTooLarge as exc:
                self.bad(number, str(exc))
                continue
            self.batch.append((item.key, encoded))
            self.batch_bytes += len(encoded)
            if len(self.batch) >= BATCH_RECORDS or self.batch_bytes >= BATCH_BYTES:
                self.flush()
        self.flush()

    def flush(self) -> None:
        if self.batch:
            self.log.append_many(self.batch)
            self.imported += len(self.batch)
            self.batch, self.batch_bytes = [], 0

    def bad(self, number: int, reason: str) -> None:
        self.bad_count += 1
        if len(self.bad_lines) < MAX_REPORTED_BAD_LINES:
            self.bad_lines.append({"line": number, "reason": reason[:300]})

    def answer(self, status: int, **fields: object) -> dict:
        return _answer(status, self.obj.name, lines=self.lines, imported=self.imported,
                       bad_lines=self.bad_lines, bad_count=self.bad_count, **fields)
