"""``streamcache dev``'s data folder (``--data-dir``, default ``./.streamcache``): the local bucket.

    <data-dir>/snapshots/<stream>/<name>.db     snapshots (SQLite images; .snap: the earlier format, converted), as in the OCI bucket
    <data-dir>/snapshots/previous/<stream>/     the two runs before this one, out of every listing
    <data-dir>/imports/                         drop JSON Lines files here to load them (lifecycle.py);
    <data-dir>/imports/done/, imports/failed/   where they go once the compactor answered
    <data-dir>/import-markers/                  the importer's completion markers (importer.py)
    <data-dir>/.lock                            held by the running ``streamcache dev``

The folder is the bucket's root: ``STREAMCACHE_SNAPSHOT_URL=file://<data-dir>``, so snapshot object
names (``snapshots/<stream>/...``) become paths under it, as import objects (``imports/...``) do.

Restart continuity. The local broker keeps its log in memory, so every run starts with an empty
stream. Each run therefore has its own stream identity, ``<topic>.<run id>`` (run id: UTC start time
and a random suffix), so the snapshots of two runs never mix: a snapshot's positions only mean
something in the stream it was made from. At start, the newest snapshot that verifies, across the
earlier runs of the topic (newest run first), is loaded with the core codec, and every entry still
live is appended to the new stream as a put (same value, content type and absolute expiry, a new
request id) before any instance starts; the caller then compacts once, so that the new run has its
own snapshot, and only then moves the earlier runs' folders to ``previous/``.

Versions (ETags) do not survive a restart: a version is a position in a stream, and the new stream
is another one. A stale ``If-Match`` from an earlier run fails with 412, unless by chance the key
landed at the very same partition and offset in the new stream (possible for a key that was written
once, early, in both runs), in which case it matches.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NamedTuple

from streamcache.adapters.directory_store import DirectoryStore
from streamcache.core import records
from streamcache.core.snapshot import SnapshotHeader, parse_name, stream_prefix
from streamcache.core.table import Table
from streamcache.ports import MutationLog, SnapshotStoreError
from streamcache.replay.catalog import load_newest_valid

PREVIOUS = "previous"
KEEP_PREVIOUS_RUNS = 2
RESTORE_SOURCE = "/streamcache/dev-restore"  # CloudEvents source of re-seeded records, for watchers
RESEED_BATCH = 2000  # records per append_many: batched by the producer, acknowledged together
PROGRESS_EVERY = 100_000  # ~19k records/s into the local broker (2 cores): a line every ~5 s
_RUN_ID = r"\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}"


def new_run_id(now: datetime | None = None) -> str:
    """``20251123T205700.123Z-3f9a1c``: sorts by start time; the suffix keeps two runs apart."""
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def run_stream_id(topic: str, run_id: str) -> str:
    return f"{topic}.{run_id}"


def run_of(stream: str, topic: str) -> str | None:
    """The run id if ``stream`` is a run of ``topic`` made by ``streamcache dev``, else ``None``."""
    match = re.fullmatch(re.escape(topic) + r"\.(" + _RUN_ID + ")", stream)
    return match.group(1) if match else None


def snapshot_store_url(data_dir: Path) -> str:
    """``file://<absolute data dir>``: the snapshot store (and import bucket) root."""
    return Path(data_dir).resolve().as_uri()


class DataDirLock:
    """An exclusive lock on ``<data-dir>/.lock`` for the life of one run: two runs in one folder
    would move each other's snapshots away. Released by :meth:`release` or when the process dies."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> "DataDirLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RuntimeError(f"{self.path.parent} is in use by another streamcache dev (pid {holder}); "
                               "stop it or pass another --data-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (harmless, ignored by listings)
            self._fd = None


class RestoreSource(NamedTuple):
    """The snapshot a new run is seeded from."""

    stream: str
    name: str
    header: SnapshotHeader
    table: Table


def earlier_runs(data_dir: Path, topic: str) -> list[str]:
    """Stream ids of this topic's earlier runs that have snapshots in ``snapshots/``, newest run first."""
    streams = set()
    for name in DirectoryStore(data_dir).list("snapshots/"):
        try:
            stream = parse_name(name).stream
        except ValueError:
            continue  # previous/..., temporary files, anything else
        if run_of(stream, topic) is not None:
            streams.add(stream)
    return sorted(streams, key=lambda stream: run_of(stream, topic) or "", reverse=True)


def find_restore_source(data_dir: Path, topic: str, warn: Callable[[str], None]) -> RestoreSource | None:
    """The newest snapshot that verifies, across this topic's earlier runs (newest run first, and
    within a run newest snapshot first: a corrupt one is reported and skipped)."""
    store = DirectoryStore(data_dir)
    for stream in earlier_runs(data_dir, topic):
        try:
            result = load_newest_valid(store, stream)  # the library's rule, exactly as a cold start uses it
        except SnapshotStoreError as exc:
            warn(f"skipping the snapshots of run {stream}: {exc}")
            continue
        for skipped in result.skipped:
            warn(f"skipping snapshot {skipped.name}: {skipped.reason}: {skipped.detail}")
        if result.snapshot is not None:
            loaded = result.snapshot
            return RestoreSource(stream, loaded.name, loaded.header, loaded.table)
    return None


def reseed(log: MutationLog, table: Table, now_ms: int, progress: Callable[[int, int], None] | None = None) -> int:
    """Append every entry of ``table`` that is live at ``now_ms`` to ``log`` as an unconditional put
    (same value, content type and absolute expiry; a new request id); return how many.
    ``progress(done, held)`` is called every :data:`PROGRESS_EVERY` records (about 5 s of work)."""
    batch: list[tuple[str, bytes]] = []
    count = 0
    for key, entry in table.items():
        if not entry.live_at(now_ms):
            continue
        put = records.Put(key, entry.value, entry.content_type, f"restore-{uuid.uuid4().hex}", now_ms,
                          entry.expires_at_ms)
        batch.append((key, records.encode(put, RESTORE_SOURCE)))
        if len(batch) >= RESEED_BATCH:
            count += len(log.append_many(batch))
            batch = []
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(count, len(table))
    if batch:
        count += len(log.append_many(batch))
    return count


def archive_runs(data_dir: Path, topic: str, streams: list[str], keep: int = KEEP_PREVIOUS_RUNS) -> list[str]:
    """Move the snapshot folders of ``streams`` (runs of ``topic``) to ``snapshots/previous/``, out
    of every listing, then keep only the ``keep`` newest runs of ``topic`` there. Returns the
    folders moved to."""
    previous = Path(data_dir) / "snapshots" / PREVIOUS
    moved = []
    for stream in streams:
        folder = Path(data_dir) / stream_prefix(stream).rstrip("/")
        if folder.is_dir():
            previous.mkdir(parents=True, exist_ok=True)
            target = previous / folder.name
            if target.exists():  # the same run archived before, by a start that stopped half-way
                shutil.rmtree(target)
            folder.rename(target)
            moved.append(str(target))
    if previous.is_dir():
        runs = sorted((run_of(p.name, topic), p) for p in previous.iterdir() if p.is_dir() and run_of(p.name, topic))
        for _, old in runs[: max(0, len(runs) - keep)]:
            shutil.rmtree(old, ignore_errors=True)
    return moved
